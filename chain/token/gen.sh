#!/usr/bin/env bash
# Regenerates the ABI, bytecode and Go bindings of the dev tokens from their
# Solidity sources: TestUSDT.sol (USDT-like: transfer returns nothing) ->
# TestUSDT.abi, TestUSDT.bin, token.go; TestUSDC.sol (standard ERC20:
# transfer returns bool) -> TestUSDC.abi, TestUSDC.bin, testusdc.go.
# Needs npm (solc-js from the npm registry) and abigen from the go-ethereum
# version in go.mod (make gen-token builds it into ./bin). Run: make gen-token
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund solc@0.8.26 >/dev/null)
for c in TestUSDT:token.go TestUSDC:testusdc.go; do
  name=${c%%:*} out=${c#*:}
  node "$work/node_modules/solc/solc.js" --optimize --abi --bin -o "$work/out-$name" "$name.sol"
  cp "$work/out-$name"/*"$name.abi" "$name.abi"
  cp "$work/out-$name"/*"$name.bin" "$name.bin"
  "$root/bin/abigen" --abi "$name.abi" --bin "$name.bin" --pkg token --type "$name" --out "$out"
done
