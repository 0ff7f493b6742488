#!/usr/bin/env bash
# payflow's local stack without Docker: MariaDB, RabbitMQ, the
# Temporal dev server and two geth --dev chains on loopback (ETH, chain id
# 1337, and BSC, chain id 1397, native coin BNB), data under .dev/, then
# migrations, the test tokens (USDT and USDC on each chain), dev wallets
# (the same addresses on both chains), Prometheus, local-kms (a
# local implementation of the AWS KMS API, data in .dev/kms), the worker and
# the starter.
#
#   scripts/stack.sh up      install what is missing, start what is not running
#   scripts/stack.sh down    stop what `up` started (by the pid files in .dev/pids)
#   scripts/stack.sh status  show what runs
#   scripts/stack.sh refresh restart the worker/starter whose binary or config changed
#   scripts/stack.sh restart-payflow          rebuild and restart the worker and the starter
#   scripts/stack.sh start-payflow worker|starter   start one of them if it is not running
#   scripts/stack.sh stop-node eth|bsc        stop one chain's geth (tests of a node that is down)
#   scripts/stack.sh start-node eth|bsc       start it again if it is not running
#   scripts/stack.sh start-kms                build (if missing) and start local-kms if it is not running
#
# Idempotent: a second `up` only checks and starts nothing that already runs.
set -euo pipefail

# The servers started here must not inherit the caller's descriptors: a lock
# held with flock(1) around `restart-payflow`, say, would be held by the
# worker for as long as it runs. (255 is the script bash is reading.)
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if ((fd > 2 && fd != 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEV=${PAYFLOW_DEV_DIR:-$ROOT/.dev}
BIN=$ROOT/bin
PIDS=$DEV/pids
LOGS=$DEV/logs

MYSQL_PORT=${PAYFLOW_MYSQL_PORT:-3316}
AMQP_PORT=${PAYFLOW_AMQP_PORT:-5682}
AMQP_DIST_PORT=${PAYFLOW_AMQP_DIST_PORT:-25682}
TEMPORAL_PORT=${PAYFLOW_TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${PAYFLOW_TEMPORAL_UI_PORT:-8233}
ETH_HTTP_PORT=${PAYFLOW_ETH_HTTP_PORT:-8545}
ETH_WS_PORT=${PAYFLOW_ETH_WS_PORT:-8546}
ETH_CHAIN_ID=${PAYFLOW_ETH_CHAIN_ID:-1337}
BSC_HTTP_PORT=${PAYFLOW_BSC_HTTP_PORT:-8547}
BSC_WS_PORT=${PAYFLOW_BSC_WS_PORT:-8548}
BSC_CHAIN_ID=${PAYFLOW_BSC_CHAIN_ID:-1397}
HTTP_PORT=${PAYFLOW_HTTP_PORT:-8380}
STARTER_METRICS_PORT=${PAYFLOW_STARTER_METRICS_PORT:-8381}
TEMPORAL_METRICS_PORT=${PAYFLOW_TEMPORAL_METRICS_PORT:-8234}
PROMETHEUS_PORT=${PAYFLOW_PROMETHEUS_PORT:-9090}
KMS_PORT=${PAYFLOW_KMS_PORT:-8390}
BLOCK_PERIOD=${PAYFLOW_BLOCK_PERIOD:-1}
CONFIRMATIONS=${PAYFLOW_CONFIRMATIONS:-3}
TEMPORAL_CLI_VERSION=v1.5.1
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# step announces the next phase of `up` with its number ("step 3/11: ..."),
# so a first run that builds for minutes says where it is.
STEP=0 STEPS=0
step() {
  STEP=$((STEP + 1))
  if ((STEPS)); then log "step $STEP/$STEPS: $*"; else log "$*"; fi
}

running() { # name -> 0 if its pid file names a live process
  local f=$PIDS/$1.pid
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_for() { # description, seconds, command...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ((i > 0 && i % 50 == 0)); then log "  ... waiting for $what: $((i / 5))s of at most ${secs}s"; fi
    sleep 0.2
  done
  die "$what did not come up in ${secs}s (logs in $LOGS)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# head_number port prints the head block number of the node on port.
head_number() {
  local h
  h=$(curl -fsS -m 2 -H 'content-type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "http://127.0.0.1:$1" |
    sed -n 's/.*"result":"0x\([0-9a-fA-F]*\)".*/\1/p')
  [[ -n $h ]] && echo $((16#$h))
}

# head_above port n succeeds once the node on port is past block n.
head_above() { local h; h=$(head_number "$1") && ((h > $2)); }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# heartbeat label command... runs command and says every 15 s that it still
# runs (apt and devstack are quiet for minutes on a first run). The ticker
# stops with the command, or within 15 s of this script's end.
heartbeat() {
  local label=$1 ticker rc=0
  shift
  (start=$SECONDS; while sleep 15 && kill -0 $$ 2>/dev/null; do log "  ... still $label: $((SECONDS - start))s"; done) &
  ticker=$!
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  return "$rc"
}

# go_build label dir go-subcommand args... runs `go <subcommand> -v args` in
# dir and, while it builds, says every 10 s how many of the packages it
# compiled (the total is what the binaries link, from a `-n` dry run; cached
# packages are not compiled again, so a warm build finishes early). The
# output goes to .dev/logs/build-<label>.log; its tail is shown on failure.
go_build() {
  local label=$1 dir=$2 sub=$3; shift 3
  local out=$LOGS/build-$label.log total start=$SECONDS
  total=$(cd "$dir" && go "$sub" -n "$@" 2>&1 |
    awk '/importcfg\.link << /{f=1; next} f && /^EOF/{f=0} f && /^packagefile /{sub(/=.*/, "", $2); if (!seen[$2]++) n++} END{print n+0}') || true
  : >"$out"
  if ! (cd "$dir" && go "$sub" -v "$@" 2>&1) | build_progress "$label" "${total:-0}" "$out"; then
    tail -n 30 "$out" >&2
    die "building $label failed (output in $out)"
  fi
  log "  $label built in $((SECONDS - start))s"
}

# build_progress label total log: copies `go -v` output (stdin) to log, counts
# its package lines and reports progress every 10 s, also while one package
# or the link takes long and nothing is printed.
build_progress() {
  local label=$1 total=$2 out=$3 n=0 start=$SECONDS last=$SECONDS line
  while :; do
    if IFS= read -r -t 2 line; then
      printf '%s\n' "$line" >>"$out"
      [[ $line == *' '* || $line == '#'* ]] || n=$((n + 1))
    elif (($? <= 128)); then
      break # end of input; a timeout is > 128
    fi
    if ((SECONDS - last >= 10)); then
      last=$SECONDS
      if ((total)); then
        log "  ... still building $label: $n/$total packages compiled, $((SECONDS - start))s"
      else
        log "  ... still building $label: $n packages compiled, $((SECONDS - start))s"
      fi
    fi
  done
}

install_packages() {
  local missing=() norec=()
  command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
  # prometheus also brings promtool (make test checks the alert rules with
  # it); its recommended prometheus-node-exporter is of no use here.
  command -v prometheus >/dev/null && command -v promtool >/dev/null || norec+=(prometheus)
  if ((${#missing[@]} + ${#norec[@]})); then
    step "Debian packages: installing ${missing[*]} ${norec[*]} (apt, first run only)"
    as_root apt-get update -qq
    # Keep the packages' own init scripts from starting system-wide daemons;
    # the policy-rc.d that does so is removed again when apt-get ends.
    if ((${#missing[@]})); then
      heartbeat "installing ${missing[*]}" as_root "$ROOT/scripts/without-service-starts.sh" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ((${#norec[@]})); then
      heartbeat "installing ${norec[*]}" as_root "$ROOT/scripts/without-service-starts.sh" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${norec[@]}" >/dev/null
    fi
  else
    step "Debian packages: installed"
  fi
}

# build_kms starts building local-kms into ./bin in the background, if it is
# missing, and sets KMS_BUILD to the build's pid; wait_kms waits for it. The
# build runs beside the other tools' (its own module: they share no package).
KMS_BUILD=
build_kms() {
  mkdir -p "$BIN"
  if [[ ! -x $BIN/local-kms || ! -f $BIN/.local-kms-$LOCAL_KMS_VERSION ]]; then
    step "local-kms $LOCAL_KMS_VERSION: building into ./bin in the background (first run only)"
    (GOBIN=$BIN go_build local-kms "$ROOT" install "github.com/nsmithuk/local-kms@$LOCAL_KMS_VERSION" &&
      rm -f "$BIN"/.local-kms-* && touch "$BIN/.local-kms-$LOCAL_KMS_VERSION") &
    KMS_BUILD=$!
  else
    step "local-kms $LOCAL_KMS_VERSION: built"
  fi
}

wait_kms() {
  if [[ -n $KMS_BUILD ]]; then
    wait "$KMS_BUILD" || die "local-kms: its build in the background failed (see above)"
    KMS_BUILD=
  fi
}

install_tools() {
  mkdir -p "$BIN"
  build_kms
  if [[ ! -x $BIN/temporal ]]; then
    step "Temporal CLI $TEMPORAL_CLI_VERSION: building into ./bin (first run only, several minutes)"
    GOBIN=$BIN go_build temporal-cli "$ROOT" install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
  else
    step "Temporal CLI $TEMPORAL_CLI_VERSION: built"
  fi
  local gethv
  gethv=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/ethereum/go-ethereum)
  if [[ ! -x $BIN/geth || ! -f $BIN/.geth-$gethv ]]; then
    step "geth $gethv: building into ./bin (first run only, a few minutes)"
    GOBIN=$BIN go_build geth "$ROOT" install "github.com/ethereum/go-ethereum/cmd/geth@$gethv"
    rm -f "$BIN"/.geth-* && touch "$BIN/.geth-$gethv"
  else
    step "geth $gethv: built"
  fi
  step "payflow binaries: building the worker, the starter and payflowctl"
  go_build payflow "$ROOT" build -o "$BIN/" ./workers ./starter ./cmd/payflowctl
  mv -f "$BIN/workers" "$BIN/payflow-worker" 2>/dev/null || true
  mv -f "$BIN/starter" "$BIN/payflow-starter" 2>/dev/null || true
  wait_kms
}

start_mariadb() {
  local data=$DEV/mysql sock=$DEV/mysql.sock
  if running mariadb; then step "MariaDB: running"; return; fi
  if [[ ! -d $data/mysql ]]; then
    log "initialising MariaDB in $data"
    mkdir -p "$data"
    mariadb-install-db --no-defaults --datadir="$data" --user="$(id -un)" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOGS/mariadb-install.log" 2>&1
  fi
  step "MariaDB: starting on 127.0.0.1:$MYSQL_PORT"
  nohup mariadbd --no-defaults --datadir="$data" --socket="$sock" --port="$MYSQL_PORT" \
    --bind-address=127.0.0.1 --user="$(id -un)" --pid-file="$PIDS/mariadb.pid" \
    --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=1 --max-connections=500 \
    --log-error="$LOGS/mariadb.err" >>"$LOGS/mariadb.log" 2>&1 &
  wait_for MariaDB 60 mariadb-admin --no-defaults --socket="$sock" -uroot ping
  mariadb --no-defaults --socket="$sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS payflow CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'payflow'@'127.0.0.1' IDENTIFIED BY 'payflow';
CREATE USER IF NOT EXISTS 'payflow'@'localhost' IDENTIFIED BY 'payflow';
GRANT ALL ON payflow.* TO 'payflow'@'127.0.0.1';
GRANT ALL ON payflow.* TO 'payflow'@'localhost';
GRANT ALL ON \`payflow\_test\_%\`.* TO 'payflow'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

rabbit_env() {
  export HOME=$DEV/rabbitmq RABBITMQ_NODENAME=payflow@localhost \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$AMQP_PORT RABBITMQ_DIST_PORT=$AMQP_DIST_PORT \
    RABBITMQ_MNESIA_BASE=$DEV/rabbitmq/mnesia RABBITMQ_LOG_BASE=$LOGS/rabbitmq \
    RABBITMQ_CONFIG_FILE=$DEV/rabbitmq/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$DEV/rabbitmq/enabled_plugins \
    RABBITMQ_PID_FILE=$PIDS/rabbitmq.pid ERL_EPMD_ADDRESS=127.0.0.1
}

start_rabbitmq() {
  if running rabbitmq; then step "RabbitMQ: running"; return; fi
  mkdir -p "$DEV/rabbitmq" "$LOGS/rabbitmq"
  [[ -f $DEV/rabbitmq/enabled_plugins ]] || echo '[].' >"$DEV/rabbitmq/enabled_plugins"
  [[ -f $DEV/rabbitmq/rabbitmq.conf ]] || printf 'loopback_users.guest = true\nlisteners.tcp.default = 127.0.0.1:%s\n' "$AMQP_PORT" >"$DEV/rabbitmq/rabbitmq.conf"
  step "RabbitMQ: starting on 127.0.0.1:$AMQP_PORT"
  (rabbit_env; nohup /usr/lib/rabbitmq/bin/rabbitmq-server >>"$LOGS/rabbitmq.log" 2>&1 &
   echo $! >"$PIDS/rabbitmq.pid")
  wait_for RabbitMQ 120 port_open "$AMQP_PORT"
}

# ensure_search_attributes registers with a running dev server the search
# attributes of deploy/search-attributes.txt it does not have yet (one added
# since the server started).
ensure_search_attributes() {
  local have name type
  have=$("$BIN/temporal" operator search-attribute list --address "127.0.0.1:$TEMPORAL_PORT" 2>/dev/null) || return 0
  while read -r name type _; do
    [[ -z $name || $name == \#* ]] && continue
    if ! grep -qw "$name" <<<"$have"; then
      log "registering search attribute $name"
      "$BIN/temporal" operator search-attribute create --address "127.0.0.1:$TEMPORAL_PORT" --name "$name" --type "$type" \
        >/dev/null || die "registering search attribute $name with the Temporal dev server"
    fi
  done <"$ROOT/deploy/search-attributes.txt"
}

start_temporal() {
  if running temporal; then step "Temporal dev server: running"; ensure_search_attributes; return; fi
  step "Temporal dev server: starting on 127.0.0.1:$TEMPORAL_PORT (UI :$TEMPORAL_UI_PORT, metrics :$TEMPORAL_METRICS_PORT)"
  local sa=() name type
  while read -r name type _; do
    [[ -z $name || $name == \#* ]] && continue
    sa+=(--search-attribute "$name=$type")
  done <"$ROOT/deploy/search-attributes.txt"
  nohup "$BIN/temporal" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --metrics-port "$TEMPORAL_METRICS_PORT" --db-filename "$DEV/temporal.db" --log-level warn "${sa[@]}" \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
    --dynamic-config-value frontend.enableUpdateWorkflowExecution=true \
    --dynamic-config-value system.forceSearchAttributesCacheRefreshOnRead=false \
    --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
    --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
    >>"$LOGS/temporal.log" 2>&1 &
  echo $! >"$PIDS/temporal.pid"
  echo "$TEMPORAL_METRICS_PORT" >"$PIDS/temporal.metrics-port"
  wait_for Temporal 90 "$BIN/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"
}

# start_geth name chain datadir chain-id http-port ws-port starts one dev
# chain: geth --dev on a datadir initialised from deploy/geth/dev-genesis.sh
# (geth's dev genesis with the chain id), LevelDB with the hash state scheme
# in archive mode, so the chain survives a SIGKILL (geth writes every
# block's state, and LevelDB hands each write to the OS; with Pebble and the
# path scheme, geth --dev comes back at block 1). A datadir made before
# (no genesis.json in it: Pebble, path scheme) keeps running as it was.
# Without geth's log index (--history.logs.disable): payflow asks eth_getLogs
# for every Transfer of its tokens over a few recent blocks, which the node
# answers from the blocks' blooms and receipts without the index, while
# keeping the index (its current map rewritten on every block) cost a dev
# node a tenth of a core even when idle, and more than a whole core for
# minutes after each restart (measured; docs/bench-log/2026-11-21-levers.md).
start_geth() {
  local name=$1 chain=$2 dir=$3 chain_id=$4 http_port=$5 ws_port=$6
  local persist=(--db.engine leveldb --state.scheme hash --gcmode archive)
  if running "$name"; then step "geth --dev $chain: running"; return; fi
  if [[ ! -d $dir/geth/chaindata ]]; then
    log "initialising the $chain chain (chain id $chain_id) in $dir"
    mkdir -p "$dir"
    "$ROOT/deploy/geth/dev-genesis.sh" "$BIN/geth" "$chain_id" >"$dir/genesis.json.tmp"
    mv "$dir/genesis.json.tmp" "$dir/genesis.json"
    "$BIN/geth" --datadir "$dir" "${persist[@]}" init "$dir/genesis.json" >>"$LOGS/$name.log" 2>&1 ||
      die "geth init of $dir failed (log in $LOGS/$name.log)"
  elif [[ ! -f $dir/genesis.json ]]; then
    log "warning: $dir predates the crash-safe geth settings: its chain does not survive a SIGKILL (make down; rm -rf .dev for a new stack)"
    persist=()
  elif ! grep -q "\"chainId\":$chain_id," "$dir/genesis.json"; then
    die "$dir holds a chain whose id is not $chain_id (see $dir/genesis.json); remove $dir for a new $chain chain"
  fi
  step "geth --dev $chain: starting (chain id $chain_id, block period ${BLOCK_PERIOD}s) HTTP :$http_port WS :$ws_port"
  nohup "$BIN/geth" --dev --dev.period "$BLOCK_PERIOD" --datadir "$dir" "${persist[@]}" \
    --http --http.addr 127.0.0.1 --http.port "$http_port" --http.api eth,net,web3,txpool \
    --ws --ws.addr 127.0.0.1 --ws.port "$ws_port" --ws.api eth,net,web3 \
    --nodiscover --maxpeers 0 --port 0 --authrpc.port 0 --verbosity 2 --rpc.txfeecap 0 --history.logs.disable \
    --txpool.globalslots 20000 --txpool.accountslots 20000 \
    --txpool.globalqueue 20000 --txpool.accountqueue 20000 \
    >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  wait_for "geth $chain" 600 port_open "$ws_port"
  # A restarted node of a grown chain opens its ports, then seals no block
  # and answers eth_getLogs with timeouts for a minute or more (measured 80 s
  # on a 600 MB chain, with or without the log index): up means mining.
  local first
  wait_for "geth $chain answering" 600 head_number "$http_port"
  first=$(head_number "$http_port")
  wait_for "geth $chain sealing blocks" 600 head_above "$http_port" "$first"
}

# start_node eth|bsc starts a dev chain's node; stop_node stops it.
start_node() {
  case ${1:-} in
    eth | ETH) start_geth geth ETH "$DEV/geth" "$ETH_CHAIN_ID" "$ETH_HTTP_PORT" "$ETH_WS_PORT" ;;
    bsc | BSC) start_geth geth-bsc BSC "$DEV/geth-bsc" "$BSC_CHAIN_ID" "$BSC_HTTP_PORT" "$BSC_WS_PORT" ;;
    *) usage ;;
  esac
}

stop_node() {
  case ${1:-} in
    eth | ETH) stop_one geth ;;
    bsc | BSC) stop_one geth-bsc ;;
    *) usage ;;
  esac
}

# temporal_metrics_port prints the port of the Temporal dev server's own
# /metrics: the one `up` started it with or, for a server started before
# stack.sh passed --metrics-port (a random port then), the one it serves on.
temporal_metrics_port() {
  local f=$PIDS/temporal.metrics-port p
  if [[ -f $f ]]; then cat "$f"; return; fi
  if running temporal && command -v ss >/dev/null; then
    for p in $(ss -ltnpH | awk -v pid="pid=$(cat "$PIDS/temporal.pid")," 'index($0, pid) {n = split($4, a, ":"); print a[n]}'); do
      if [[ $(curl -fsS -m 2 "http://127.0.0.1:$p/metrics" 2>/dev/null | head -c 200) == *'# HELP'* ]]; then
        echo "$p" >"$f"
        echo "$p"
        return
      fi
    done
  fi
  echo "$TEMPORAL_METRICS_PORT"
}

# start_prometheus writes .dev/prometheus/prometheus.yml from
# deploy/prometheus/prometheus.tmpl.yml (scraping the worker, the starter and
# Temporal; rules from deploy/prometheus/alerts.yml), checks it with promtool
# and starts Prometheus, or reloads a running one whose config or rules changed.
start_prometheus() {
  local dir=$DEV/prometheus conf=$DEV/prometheus/prometheus.yml sum
  mkdir -p "$dir/data"
  sed -e "s|@WORKER@|127.0.0.1:$HTTP_PORT|" -e "s|@STARTER@|127.0.0.1:$STARTER_METRICS_PORT|" \
    -e "s|@TEMPORAL@|127.0.0.1:$(temporal_metrics_port)|" -e "s|@RULES_DIR@|$ROOT/deploy/prometheus|" \
    "$ROOT/deploy/prometheus/prometheus.tmpl.yml" >"$conf"
  if ! promtool check config "$conf" >"$LOGS/promtool.log" 2>&1; then
    cat "$LOGS/promtool.log" >&2
    die "the Prometheus configuration $conf is not valid"
  fi
  sum=$(cat "$conf" "$ROOT/deploy/prometheus/alerts.yml" | sha256sum | cut -d" " -f1)
  if running prometheus; then
    if [[ $sum == "$(cat "$PIDS/prometheus.sum" 2>/dev/null)" ]]; then
      step "Prometheus: running"
    else
      step "Prometheus: configuration or rules changed; reloading"
      kill -HUP "$(cat "$PIDS/prometheus.pid")"
      echo "$sum" >"$PIDS/prometheus.sum"
    fi
    return
  fi
  # Debian's package enables a system-wide prometheus.service on :9090; where
  # systemd starts it, this one could not listen, and the tests would talk to it.
  if port_open "$PROMETHEUS_PORT"; then
    die "port $PROMETHEUS_PORT is taken by another process (Debian's prometheus.service? \`systemctl disable --now prometheus\`); or set PAYFLOW_PROMETHEUS_PORT"
  fi
  step "Prometheus: starting on 127.0.0.1:$PROMETHEUS_PORT (data in $dir/data)"
  nohup prometheus --config.file="$conf" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --storage.tsdb.retention.time=15d \
    >>"$LOGS/prometheus.log" 2>&1 &
  echo $! >"$PIDS/prometheus.pid"
  echo "$sum" >"$PIDS/prometheus.sum"
  wait_for Prometheus 60 curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

# start_kms starts local-kms on 127.0.0.1:$KMS_PORT with its keys in
# .dev/kms (LevelDB; they survive a restart) and, if an operator writes one,
# the seed file .dev/kms/seed.yaml (local-kms's format: keys it creates at
# start unless they exist). local-kms has no listen-address setting: it
# listens on every interface, so the port is the dev machine's to guard.
start_kms() {
  local dir=$DEV/kms
  if running kms; then step "local-kms: running"; return; fi
  if port_open "$KMS_PORT"; then
    die "port $KMS_PORT is taken by another process; stop it or set PAYFLOW_KMS_PORT"
  fi
  mkdir -p "$dir/data"
  step "local-kms: starting on 127.0.0.1:$KMS_PORT (data in $dir/data)"
  (export PORT=$KMS_PORT KMS_DATA_PATH=$dir/data KMS_SEED_PATH=$dir/seed.yaml KMS_REGION=eu-west-2 KMS_ACCOUNT_ID=111122223333
   nohup "$BIN/local-kms" >>"$LOGS/kms.log" 2>&1 &
   echo $! >"$PIDS/kms.pid")
  wait_for local-kms 30 port_open "$KMS_PORT"
}

start_payflow() { # name binary
  local name=$1 bin=$2
  if running "$name"; then return; fi
  log "starting $name"
  (set -a; . "$DEV/payflow.env"; set +a
   nohup "$bin" -config "$DEV/config.json" >>"$LOGS/$name.log" 2>&1 &
   echo $! >"$PIDS/$name.pid")
  cat "$bin" "$DEV/config.json" | sha256sum | cut -d" " -f1 >"$PIDS/$name.sum"
}

up() {
  mkdir -p "$DEV" "$PIDS" "$LOGS"
  STEPS=14
  install_packages
  install_tools
  start_mariadb
  start_rabbitmq
  start_temporal
  start_node eth
  start_node bsc
  start_kms
  step "dev data: migrations, test tokens, dev wallets and config on both chains (payflowctl devstack)"
  heartbeat "preparing dev data" "$BIN/payflowctl" devstack \
    -dir "$DEV" \
    -mysql-dsn "payflow:payflow@tcp(127.0.0.1:$MYSQL_PORT)/payflow?parseTime=true&loc=UTC&multiStatements=true&interpolateParams=true" \
    -amqp-url "amqp://guest:guest@127.0.0.1:$AMQP_PORT/" \
    -temporal-address "127.0.0.1:$TEMPORAL_PORT" -temporal-ui-url "http://127.0.0.1:$TEMPORAL_UI_PORT" \
    -chain "ETH,ETH,http://127.0.0.1:$ETH_HTTP_PORT,ws://127.0.0.1:$ETH_WS_PORT" \
    -chain "BSC,BNB,http://127.0.0.1:$BSC_HTTP_PORT,ws://127.0.0.1:$BSC_WS_PORT" \
    -confirmations "$CONFIRMATIONS" -http-addr "127.0.0.1:$HTTP_PORT" \
    -metrics-addr "127.0.0.1:$STARTER_METRICS_PORT" -prometheus-url "http://127.0.0.1:$PROMETHEUS_PORT" \
    -kms-endpoint "http://127.0.0.1:$KMS_PORT"
  start_prometheus
  step "worker and starter"
  start_payflow worker "$BIN/payflow-worker"
  start_payflow starter "$BIN/payflow-starter"
  log "stack is up; details in $DEV/stack.json, logs in $LOGS"
  status
  echo "Temporal Web UI: http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows"
  echo "Prometheus: http://127.0.0.1:$PROMETHEUS_PORT (targets: /classic/targets, alerts: /classic/alerts)"
}

stop_one() {
  local name=$1 f=$PIDS/$1.pid pid i
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name ($pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_one prometheus
  stop_one starter
  stop_one worker
  stop_one geth-bsc
  stop_one geth
  stop_one kms
  stop_one temporal
  rm -f "$PIDS/temporal.metrics-port"
  if running rabbitmq; then
    (rabbit_env; /usr/lib/rabbitmq/bin/rabbitmqctl -n payflow@localhost stop >/dev/null 2>&1 || true)
  fi
  stop_one rabbitmq
  stop_one mariadb
}

# refresh restarts the worker or the starter if its binary changed since it
# started (make test runs the code under test, not yesterday's build).
refresh() {
  local name bin
  for name in worker starter; do
    bin=$BIN/payflow-$name
    if running "$name" && [[ "$(cat "$bin" "$DEV/config.json" | sha256sum | cut -d" " -f1)" != "$(cat "$PIDS/$name.sum" 2>/dev/null)" ]]; then
      log "$name binary or config changed; restarting it"
      stop_one "$name"
      start_payflow "$name" "$bin"
    fi
  done
}

status() {
  local n
  for n in mariadb rabbitmq temporal geth geth-bsc kms prometheus worker starter; do
    if running "$n"; then echo "$n: running (pid $(cat "$PIDS/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

usage() { die "usage: $0 up|down|status|refresh|restart-payflow|start-payflow worker|starter|stop-node eth|bsc|start-node eth|bsc|start-kms"; }

case ${1:-} in
  up) up ;;
  refresh) refresh ;;
  down) down ;;
  status) status ;;
  restart-payflow) stop_one starter; stop_one worker; install_tools; start_payflow worker "$BIN/payflow-worker"; start_payflow starter "$BIN/payflow-starter" ;;
  start-payflow)
    case ${2:-} in
      worker | starter) mkdir -p "$PIDS" "$LOGS"; start_payflow "$2" "$BIN/payflow-$2" ;;
      *) usage ;;
    esac ;;
  stop-node) stop_node "${2:-}" ;;
  start-node) mkdir -p "$PIDS" "$LOGS"; start_node "${2:-}" ;;
  start-kms) mkdir -p "$PIDS" "$LOGS"; build_kms; wait_kms; start_kms ;;
  *) usage ;;
esac
