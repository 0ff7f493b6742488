#!/usr/bin/env bash
# payflow's local stack without Docker (SPEC §5): MariaDB, RabbitMQ, the
# Temporal dev server and a geth --dev chain on loopback, data under .dev/,
# then migrations, the test token, dev wallets, the worker and the starter.
#
#   scripts/stack.sh up      install what is missing, start what is not running
#   scripts/stack.sh down    stop what `up` started (by the pid files in .dev/pids)
#   scripts/stack.sh status  show what runs
#   scripts/stack.sh refresh restart the worker/starter whose binary or config changed
#   scripts/stack.sh restart-payflow          rebuild and restart the worker and the starter
#   scripts/stack.sh start-payflow worker|starter   start one of them if it is not running
#
# Idempotent: a second `up` only checks and starts nothing that already runs.
set -euo pipefail

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
HTTP_PORT=${PAYFLOW_HTTP_PORT:-8380}
BLOCK_PERIOD=${PAYFLOW_BLOCK_PERIOD:-1}
CONFIRMATIONS=${PAYFLOW_CONFIRMATIONS:-3}
TEMPORAL_CLI_VERSION=v1.5.1

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

running() { # name -> 0 if its pid file names a live process
  local f=$PIDS/$1.pid
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_for() { # description, seconds, command...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up in ${secs}s (logs in $LOGS)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local missing=()
  command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt)"
    as_root apt-get update -qq
    # Keep the packages' own init scripts from starting system-wide daemons;
    # the policy-rc.d that does so is removed again when apt-get ends.
    as_root "$ROOT/scripts/without-service-starts.sh" \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_tools() {
  mkdir -p "$BIN"
  if [[ ! -x $BIN/temporal ]]; then
    log "building the Temporal CLI $TEMPORAL_CLI_VERSION into ./bin (first run only)"
    GOBIN=$BIN go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
  fi
  local gethv
  gethv=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/ethereum/go-ethereum)
  if [[ ! -x $BIN/geth || ! -f $BIN/.geth-$gethv ]]; then
    log "building geth $gethv into ./bin (first run only)"
    (cd "$ROOT" && GOBIN=$BIN go install "github.com/ethereum/go-ethereum/cmd/geth@$gethv")
    rm -f "$BIN"/.geth-* && touch "$BIN/.geth-$gethv"
  fi
  log "building payflow binaries"
  (cd "$ROOT" && go build -o "$BIN/" ./workers ./starter ./cmd/payflowctl)
  mv -f "$BIN/workers" "$BIN/payflow-worker" 2>/dev/null || true
  mv -f "$BIN/starter" "$BIN/payflow-starter" 2>/dev/null || true
}

start_mariadb() {
  local data=$DEV/mysql sock=$DEV/mysql.sock
  if running mariadb; then return; fi
  if [[ ! -d $data/mysql ]]; then
    log "initialising MariaDB in $data"
    mkdir -p "$data"
    mariadb-install-db --no-defaults --datadir="$data" --user="$(id -un)" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOGS/mariadb-install.log" 2>&1
  fi
  log "starting MariaDB on 127.0.0.1:$MYSQL_PORT"
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
  if running rabbitmq; then return; fi
  mkdir -p "$DEV/rabbitmq" "$LOGS/rabbitmq"
  [[ -f $DEV/rabbitmq/enabled_plugins ]] || echo '[].' >"$DEV/rabbitmq/enabled_plugins"
  [[ -f $DEV/rabbitmq/rabbitmq.conf ]] || printf 'loopback_users.guest = true\nlisteners.tcp.default = 127.0.0.1:%s\n' "$AMQP_PORT" >"$DEV/rabbitmq/rabbitmq.conf"
  log "starting RabbitMQ on 127.0.0.1:$AMQP_PORT"
  (rabbit_env; nohup /usr/lib/rabbitmq/bin/rabbitmq-server >>"$LOGS/rabbitmq.log" 2>&1 &
   echo $! >"$PIDS/rabbitmq.pid")
  wait_for RabbitMQ 120 port_open "$AMQP_PORT"
}

start_temporal() {
  if running temporal; then return; fi
  log "starting the Temporal dev server on 127.0.0.1:$TEMPORAL_PORT (UI :$TEMPORAL_UI_PORT)"
  local sa=() name type
  while read -r name type _; do
    [[ -z $name || $name == \#* ]] && continue
    sa+=(--search-attribute "$name=$type")
  done <"$ROOT/deploy/search-attributes.txt"
  nohup "$BIN/temporal" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    --db-filename "$DEV/temporal.db" --log-level warn "${sa[@]}" \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
    --dynamic-config-value frontend.enableUpdateWorkflowExecution=true \
    --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
    --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
    >>"$LOGS/temporal.log" 2>&1 &
  echo $! >"$PIDS/temporal.pid"
  wait_for Temporal 90 "$BIN/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"
}

start_geth() {
  if running geth; then return; fi
  log "starting geth --dev (block period ${BLOCK_PERIOD}s) HTTP :$ETH_HTTP_PORT WS :$ETH_WS_PORT"
  nohup "$BIN/geth" --dev --dev.period "$BLOCK_PERIOD" --datadir "$DEV/geth" \
    --http --http.addr 127.0.0.1 --http.port "$ETH_HTTP_PORT" --http.api eth,net,web3,txpool \
    --ws --ws.addr 127.0.0.1 --ws.port "$ETH_WS_PORT" --ws.api eth,net,web3 \
    --nodiscover --maxpeers 0 --port 0 --authrpc.port 0 --verbosity 2 --rpc.txfeecap 0 \
    --dev.gaslimit 60000000 --txpool.globalslots 20000 --txpool.accountslots 20000 \
    --txpool.globalqueue 20000 --txpool.accountqueue 20000 \
    >>"$LOGS/geth.log" 2>&1 &
  echo $! >"$PIDS/geth.pid"
  wait_for geth 60 port_open "$ETH_WS_PORT"
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
  install_packages
  install_tools
  start_mariadb
  start_rabbitmq
  start_temporal
  start_geth
  "$BIN/payflowctl" devstack \
    -dir "$DEV" \
    -mysql-dsn "payflow:payflow@tcp(127.0.0.1:$MYSQL_PORT)/payflow?parseTime=true&loc=UTC&multiStatements=true&interpolateParams=true" \
    -amqp-url "amqp://guest:guest@127.0.0.1:$AMQP_PORT/" \
    -temporal-address "127.0.0.1:$TEMPORAL_PORT" -temporal-ui-url "http://127.0.0.1:$TEMPORAL_UI_PORT" \
    -eth-rpc-url "http://127.0.0.1:$ETH_HTTP_PORT" -eth-ws-url "ws://127.0.0.1:$ETH_WS_PORT" \
    -confirmations "$CONFIRMATIONS" -http-addr "127.0.0.1:$HTTP_PORT"
  start_payflow worker "$BIN/payflow-worker"
  start_payflow starter "$BIN/payflow-starter"
  log "stack is up; details in $DEV/stack.json, logs in $LOGS"
  status
  echo "Temporal Web UI: http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows"
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
  stop_one starter
  stop_one worker
  stop_one geth
  stop_one temporal
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
  for n in mariadb rabbitmq temporal geth worker starter; do
    if running "$n"; then echo "$n: running (pid $(cat "$PIDS/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

usage() { die "usage: $0 up|down|status|refresh|restart-payflow|start-payflow worker|starter"; }

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
  *) usage ;;
esac
