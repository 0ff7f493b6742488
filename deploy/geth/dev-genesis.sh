#!/bin/sh
# dev-genesis.sh GETH CHAIN_ID [GAS_LIMIT]: prints the genesis of a payflow
# dev chain: geth's own --dev genesis (the forks, system contracts and
# precompiles `geth --dev` runs with) with chain id CHAIN_ID, a block gas
# limit of GAS_LIMIT (default 60000000) and 1e9 coins for geth's built-in
# developer account, which `geth --dev` imports and unlocks in a datadir
# whose keystore is empty. `geth init` it into an empty datadir, then run
# `geth --dev` on that datadir: --dev keeps a chain it finds there.
# scripts/stack.sh and docker-compose.yml both use it (POSIX sh: the geth
# image is Alpine).
set -eu
geth=$1 id=$2 gas=${3:-60000000}
case $id in '' | *[!0-9]*) echo "dev-genesis.sh: chain id must be a number, not '$id'" >&2; exit 2 ;; esac
# geth's developer account: the address of the fixed key utils.DeveloperKey.
dev=71562b71999873db5b286df957af199ec94617f7
out=$("$geth" --dev dumpgenesis 2>/dev/null)
case $out in *'"chainId":1337,'*'"gasLimit":"0x'*'"alloc":{'*) ;; *)
  echo "dev-genesis.sh: unexpected output of \`$geth --dev dumpgenesis\`" >&2; exit 1 ;;
esac
printf '%s\n' "$out" | sed -e "s/\"chainId\":1337,/\"chainId\":$id,/" \
  -e "s/\"gasLimit\":\"0x[0-9a-fA-F]*\"/\"gasLimit\":\"0x$(printf %x "$gas")\"/" \
  -e "s/\"alloc\":{/\"alloc\":{\"$dev\":{\"balance\":\"0x33b2e3c9fd0803ce8000000\"},/"
