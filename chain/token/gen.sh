#!/usr/bin/env bash
# Regenerates TestUSDT.abi, TestUSDT.bin and token.go from TestUSDT.sol.
# Needs npm (solc-js from the npm registry) and abigen from the go-ethereum
# version in go.mod (make tools builds it into ./bin). Run: make gen-token
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --no-audit --no-fund solc@0.8.26 >/dev/null)
node "$work/node_modules/solc/solc.js" --optimize --abi --bin -o "$work/out" TestUSDT.sol
cp "$work"/out/*TestUSDT.abi TestUSDT.abi
cp "$work"/out/*TestUSDT.bin TestUSDT.bin
"$root/bin/abigen" --abi TestUSDT.abi --bin TestUSDT.bin --pkg token --type TestUSDT --out token.go
