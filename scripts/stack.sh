#!/usr/bin/env bash
# payflow's local stack without Docker: MariaDB, RabbitMQ, the
# Temporal dev server and two geth --dev chains on loopback (ETH, chain id
# 1337, and BSC, chain id 1397, native coin BNB), data under .dev/, then
# migrations, the test tokens (USDT and USDC on each chain), dev wallets
# (the same addresses on both chains), Prometheus, local-kms (a
# local implementation of the AWS KMS API, data in .dev/kms), payflow-signer
# (the one process with keys, on .dev/signer/signer.sock), the worker and the
# starter.
#
#   scripts/stack.sh up      install what is missing, start what is not running
#                            (TEMPORAL=cluster: the Temporal server on PostgreSQL
#                            instead of the dev server; PAYFLOW_WORKERS=N: N workers)
#   scripts/stack.sh down    stop what `up` started (by the pid files in .dev/pids)
#   scripts/stack.sh status  show what runs
#   scripts/stack.sh refresh restart the signer/worker/starter whose binary or config changed
#   scripts/stack.sh restart-payflow          rebuild and restart the signer, the worker and the starter
#   scripts/stack.sh start-payflow signer|worker|worker-N|starter   start one of them if it is not running
#   scripts/stack.sh stop-payflow signer|worker|worker-N|starter    stop one of them
#   scripts/stack.sh stop-node eth|bsc        stop one chain's geth (tests of a node that is down)
#   scripts/stack.sh start-node eth|bsc       start it again if it is not running
#   scripts/stack.sh start-kms                build (if missing) and start local-kms if it is not running
#   scripts/stack.sh start-btcd               build btcd (and payflowctl) if missing, start btcd and its miner
#   scripts/stack.sh stop-btcd                stop btcd and its miner (its chain stays in .dev/btcd)
#   scripts/stack.sh start-temporal           start Temporal only (TEMPORAL=cluster: with PostgreSQL)
#   scripts/stack.sh stop-temporal            stop Temporal (and the cluster's PostgreSQL)
#
# PAYFLOW_DEV_DIR (default .dev), PAYFLOW_BIN_DIR (default ./bin) and the
# PAYFLOW_*_PORT variables below run a second, separate stack beside the first.
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
BIN=${PAYFLOW_BIN_DIR:-$ROOT/bin}
PIDS=$DEV/pids
LOGS=$DEV/logs

MYSQL_PORT=${PAYFLOW_MYSQL_PORT:-3316}
AMQP_PORT=${PAYFLOW_AMQP_PORT:-5682}
AMQP_DIST_PORT=${PAYFLOW_AMQP_DIST_PORT:-25682}
# A second stack's RabbitMQ needs its own Erlang node name on the same host.
AMQP_NODE=${PAYFLOW_AMQP_NODE:-payflow@localhost}
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
SIGNER_METRICS_PORT=${PAYFLOW_SIGNER_METRICS_PORT:-8384}
# btcd, the Bitcoin simnet node: JSON-RPC over plain HTTP on loopback.
BTC_RPC_PORT=${PAYFLOW_BTC_RPC_PORT:-18334}
BTC_BLOCK_PERIOD=${PAYFLOW_BTC_BLOCK_PERIOD:-3}
BLOCK_PERIOD=${PAYFLOW_BLOCK_PERIOD:-1}
CONFIRMATIONS=${PAYFLOW_CONFIRMATIONS:-3}
TEMPORAL_CLI_VERSION=v1.5.1
# TEMPORAL=cluster (make up TEMPORAL=cluster) runs a Temporal server built
# from go.temporal.io/server on PostgreSQL 15 instead of the dev server; see
# start_temporal_cluster.
TEMPORAL_SERVER_VERSION=v1.32.1
# The cluster's Web UI: Temporal's UI server (the dev server's UI is built
# into the CLI). v2.55.0 is the newest whose go.mod asks for no newer Go than
# this machine's 1.26.8.
TEMPORAL_UI_SERVER_VERSION=v2.55.0
TEMPORAL_SHARDS=${PAYFLOW_TEMPORAL_SHARDS:-4}
POSTGRES_PORT=${PAYFLOW_POSTGRES_PORT:-5442}
PG_BIN=/usr/lib/postgresql/15/bin
# PAYFLOW_WORKERS runs that many worker processes (worker, worker-2, ...).
WORKERS=${PAYFLOW_WORKERS:-1}
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6
# btcd is built from its own module (go install module@version): payflow's
# go.mod holds the older btcd packages its client code uses, with which the
# node's JSON-RPC is compatible.
BTCD_VERSION=v0.26.2
MYSQL_DSN="payflow:payflow@tcp(127.0.0.1:$MYSQL_PORT)/payflow?parseTime=true&loc=UTC&multiStatements=true&interpolateParams=true"
# payflow-signer's socket: its directory is the signer's alone (0700).
SIGNER_SOCKET=$DEV/signer/signer.sock

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
  local f=$PIDS/$1.pid pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  # A process killed a moment ago may be a zombie until init reaps it.
  kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]
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
  if [[ $(temporal_kind) == cluster && ! -x $PG_BIN/postgres ]]; then missing+=(postgresql-15); fi
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

# build_btcd starts building btcd and btcctl into ./bin in the background,
# if missing, and sets BTCD_BUILD to the build's pid; wait_btcd_build waits
# for it. Like local-kms, it builds beside the other tools.
BTCD_BUILD=
build_btcd() {
  mkdir -p "$BIN"
  if [[ ! -x $BIN/btcd || ! -x $BIN/btcctl || ! -f $BIN/.btcd-$BTCD_VERSION ]]; then
    step "btcd $BTCD_VERSION: building btcd and btcctl into ./bin in the background (first run only)"
    (GOBIN=$BIN go_build btcd "$ROOT" install "github.com/btcsuite/btcd@$BTCD_VERSION" \
      "github.com/btcsuite/btcd/cmd/btcctl@$BTCD_VERSION" &&
      rm -f "$BIN"/.btcd-* && touch "$BIN/.btcd-$BTCD_VERSION") &
    BTCD_BUILD=$!
  else
    step "btcd $BTCD_VERSION: built"
  fi
}

wait_btcd_build() {
  if [[ -n $BTCD_BUILD ]]; then
    wait "$BTCD_BUILD" || die "btcd: its build in the background failed (see above)"
    BTCD_BUILD=
  fi
}

install_tools() {
  mkdir -p "$BIN"
  build_kms
  build_btcd
  if [[ $(temporal_kind) == cluster ]]; then build_temporal_server; fi
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
  step "payflow binaries: building the signer, the worker, the starter and payflowctl"
  go_build payflow "$ROOT" build -o "$BIN/" ./workers ./starter ./cmd/payflowctl ./cmd/payflow-signer
  mv -f "$BIN/workers" "$BIN/payflow-worker" 2>/dev/null || true
  mv -f "$BIN/starter" "$BIN/payflow-starter" 2>/dev/null || true
  wait_kms
  wait_btcd_build
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
  export HOME=$DEV/rabbitmq RABBITMQ_NODENAME=$AMQP_NODE \
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

# ensure_search_attributes registers with a running Temporal the search
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
        >/dev/null || die "registering search attribute $name with Temporal"
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

# --- TEMPORAL=cluster: the Temporal server on PostgreSQL -------------------

# temporal_kind prints the Temporal that `up` runs: $TEMPORAL (dev or
# cluster) when set, else the one this stack ran last (.dev/temporal.kind,
# written when one starts: a plain `make up` or `make test` after `make up
# TEMPORAL=cluster` keeps the cluster, also after a crash or `make down`),
# else the dev server.
temporal_kind() {
  if [[ -n ${TEMPORAL:-} ]]; then echo "$TEMPORAL"
  elif [[ -f $DEV/temporal.kind ]]; then cat "$DEV/temporal.kind"
  else echo dev; fi
}

# build_temporal_server starts building, in the background, what the
# cluster runs and is missing from ./bin: temporal-server and
# temporal-sql-tool of go.temporal.io/server@$TEMPORAL_SERVER_VERSION, and
# temporal-ui-server of github.com/temporalio/ui-server/v2@$TEMPORAL_UI_SERVER_VERSION;
# it sets TEMPORAL_SERVER_BUILD to the build's pid, and wait_temporal_server
# waits for it. `go install module@version` builds each module on its own
# go.mod, ignoring payflow's around it (run from .dev/temporal-build, where it
# puts the binaries before they are renamed): payflow's go.mod never names
# them. Niced: the server is a large build (1,758 packages) on a small machine.
TEMPORAL_SERVER_BUILD=
build_temporal_server() {
  local v=$TEMPORAL_SERVER_VERSION uv=$TEMPORAL_UI_SERVER_VERSION dir=$DEV/temporal-build server=1 ui=1
  mkdir -p "$BIN"
  [[ -x $BIN/temporal-server && -x $BIN/temporal-sql-tool && -f $BIN/.temporal-server-$v ]] && server=0
  [[ -x $BIN/temporal-ui-server && -f $BIN/.temporal-ui-server-$uv ]] && ui=0
  if ((!server && !ui)); then
    step "Temporal server $v and UI server $uv: built"
    return
  fi
  step "Temporal server $v and UI server $uv: building into ./bin in the background (first run only, 10-30 minutes)"
  mkdir -p "$dir/server" "$dir/ui"
  (renice -n 19 -p "$BASHPID" >/dev/null
   if ((server)); then
     GOBIN=$dir/server go_build temporal-server "$dir" install \
       "go.temporal.io/server/cmd/server@$v" "go.temporal.io/server/cmd/tools/sql@$v" &&
       mv -f "$dir/server/server" "$BIN/temporal-server" && mv -f "$dir/server/sql" "$BIN/temporal-sql-tool" &&
       rm -f "$BIN"/.temporal-server-* && touch "$BIN/.temporal-server-$v" || exit 1
   fi
   if ((ui)); then
     GOBIN=$dir/ui go_build temporal-ui-server "$dir" install "github.com/temporalio/ui-server/v2/cmd/server@$uv" &&
       mv -f "$dir/ui/server" "$BIN/temporal-ui-server" &&
       rm -f "$BIN"/.temporal-ui-server-* && touch "$BIN/.temporal-ui-server-$uv" || exit 1
   fi) &
  TEMPORAL_SERVER_BUILD=$!
}

wait_temporal_server() {
  if [[ -n $TEMPORAL_SERVER_BUILD ]]; then
    wait "$TEMPORAL_SERVER_BUILD" || die "the Temporal server: its build in the background failed (see above)"
    TEMPORAL_SERVER_BUILD=
  fi
}

# pg runs a PostgreSQL 15 program; as the postgres user when this script runs
# as root, which PostgreSQL refuses.
pg() {
  local prog=$PG_BIN/$1
  shift
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$prog" "$@"; else "$prog" "$@"; fi
}

# start_postgres starts the cluster's own PostgreSQL 15 on
# 127.0.0.1:$POSTGRES_PORT (TCP only, no socket), data in .dev/postgres,
# superuser temporal/temporal. A server that was SIGKILLed recovers from its
# WAL on this start.
start_postgres() {
  local data=$DEV/postgres pw
  if running postgres; then step "PostgreSQL 15: running"; return; fi
  [[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 is not installed ($PG_BIN/postgres)"
  if [[ ! -f $data/PG_VERSION ]]; then
    log "initialising PostgreSQL 15 in $data"
    mkdir -p "$data"
    chmod 700 "$data"
    pw=$(mktemp)
    echo temporal >"$pw"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$data" "$pw"; fi
    pg initdb -D "$data" -U temporal --pwfile="$pw" --auth=scram-sha-256 -E UTF8 --no-locale \
      >"$LOGS/postgres-init.log" 2>&1 || { rm -f "$pw"; die "initdb failed (log in $LOGS/postgres-init.log)"; }
    rm -f "$pw"
  fi
  touch "$LOGS/postgres.log"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$LOGS/postgres.log"; fi
  step "PostgreSQL 15: starting on 127.0.0.1:$POSTGRES_PORT (data in $data)"
  pg pg_ctl start -D "$data" -l "$LOGS/postgres.log" -w -t 120 \
    -o "-p $POSTGRES_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200" \
    >>"$LOGS/postgres.log" 2>&1 || die "PostgreSQL did not start (log in $LOGS/postgres.log)"
  head -n 1 "$data/postmaster.pid" >"$PIDS/postgres.pid"
}

# stop_postgres stops PostgreSQL with a fast shutdown (sessions closed, no
# waiting for them to end), else as stop_one stops the others.
stop_postgres() {
  if running postgres; then
    log "stopping postgres ($(cat "$PIDS/postgres.pid"))"
    if pg pg_ctl stop -D "$DEV/postgres" -m fast -w -t 60 >>"$LOGS/postgres.log" 2>&1; then
      rm -f "$PIDS/postgres.pid"
    fi
  fi
  stop_one postgres
}

psql_temporal() { # database sql
  PGPASSWORD=temporal "$PG_BIN/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U temporal -d "$1" -v ON_ERROR_STOP=1 -qtAc "$2"
}

# setup_temporal_schema creates the temporal and temporal_visibility
# databases on a new PostgreSQL and brings their schemas to the server's
# version (update-schema applies only the versions a database lacks). The
# schemas are the ones temporal-sql-tool embeds: those of its module, the
# server's.
setup_temporal_schema() {
  local db out=$LOGS/temporal-sql-tool.log
  sql_tool() { # database command...
    local db=$1
    shift
    "$BIN/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p "$POSTGRES_PORT" -u temporal --pw temporal --db "$db" "$@" >>"$out" 2>&1
  }
  for db in temporal temporal_visibility; do
    if [[ $(psql_temporal postgres "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
      log "creating the $db database"
      sql_tool "$db" create-database || die "creating $db (log in $out)"
      sql_tool "$db" setup-schema -v 0.0 || die "setting up $db (log in $out)"
    fi
    # temporal -> postgresql/v12/temporal, temporal_visibility -> postgresql/v12/visibility
    sql_tool "$db" update-schema --schema-name "postgresql/v12/${db#temporal_}" || die "updating the schema of $db (log in $out)"
  done
}

# write_temporal_cluster_config writes .dev/temporal-cluster/config.yaml from
# deploy/temporal/cluster.tmpl.yaml. Its ports follow the frontend's as
# Temporal's own defaults follow 7233: history +1, matching +2, worker +6,
# HTTP API +10, and each service's membership port 300 below its gRPC port.
write_temporal_cluster_config() {
  local dir=$DEV/temporal-cluster p=$TEMPORAL_PORT
  mkdir -p "$dir"
  cp "$ROOT/deploy/temporal/dynamicconfig.yaml" "$dir/dynamicconfig.yaml"
  sed -e "s|%SHARDS%|$TEMPORAL_SHARDS|" -e "s|%POSTGRES_PORT%|$POSTGRES_PORT|g" \
    -e "s|%METRICS_PORT%|$TEMPORAL_METRICS_PORT|" -e "s|%FRONTEND_PORT%|$p|g" -e "s|%HTTP_PORT%|$((p + 10))|" \
    -e "s|%HISTORY_PORT%|$((p + 1))|" -e "s|%MATCHING_PORT%|$((p + 2))|" -e "s|%WORKER_PORT%|$((p + 6))|" \
    -e "s|%FRONTEND_MEMBERSHIP_PORT%|$((p - 300))|" -e "s|%HISTORY_MEMBERSHIP_PORT%|$((p - 299))|" \
    -e "s|%MATCHING_MEMBERSHIP_PORT%|$((p - 298))|" -e "s|%WORKER_MEMBERSHIP_PORT%|$((p - 294))|" \
    -e "s|%DYNAMIC_CONFIG%|$dir/dynamicconfig.yaml|" \
    "$ROOT/deploy/temporal/cluster.tmpl.yaml" >"$dir/config.yaml"
}

# shards_in_db prints the shard count a temporal database was set up with (0
# for none yet): the server refuses to start on another.
shards_in_db() { psql_temporal temporal "SELECT count(*) FROM shards" 2>/dev/null || echo 0; }

# start_temporal_cluster runs the Temporal server on PostgreSQL: the four
# services in one process, frontend on 127.0.0.1:$TEMPORAL_PORT like the dev
# server's, so stack.json and payflow's config are the same for both. It
# registers the default namespace and payflow's search attributes, and
# starts the Web UI (the dev server's is built into the CLI; the cluster's is
# Temporal's UI server, beside it). A server killed with SIGKILL leaves only a stale pid file: its
# state is PostgreSQL's, and this start takes the shards over again.
start_temporal_cluster() {
  local have
  start_postgres
  if running temporal-server; then
    step "Temporal server (cluster): running"
    ensure_search_attributes
    start_temporal_ui
    return
  fi
  wait_temporal_server
  setup_temporal_schema
  have=$(shards_in_db)
  if ((have > 0 && have != TEMPORAL_SHARDS)); then
    die "the temporal database holds $have history shards, not PAYFLOW_TEMPORAL_SHARDS=$TEMPORAL_SHARDS: the count is fixed once set (make down; rm -rf $DEV/postgres for a new cluster)"
  fi
  write_temporal_cluster_config
  step "Temporal server (cluster, $TEMPORAL_SHARDS history shards, PostgreSQL :$POSTGRES_PORT): starting on 127.0.0.1:$TEMPORAL_PORT (UI :$TEMPORAL_UI_PORT, metrics :$TEMPORAL_METRICS_PORT)"
  nohup "$BIN/temporal-server" --config-file "$DEV/temporal-cluster/config.yaml" --allow-no-auth start \
    >>"$LOGS/temporal-server.log" 2>&1 &
  echo $! >"$PIDS/temporal-server.pid"
  echo "$TEMPORAL_METRICS_PORT" >"$PIDS/temporal.metrics-port"
  wait_for "Temporal server" 180 "$BIN/temporal" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT"
  if ! "$BIN/temporal" operator namespace describe --address "127.0.0.1:$TEMPORAL_PORT" --namespace default >/dev/null 2>&1; then
    log "registering the default namespace"
    "$BIN/temporal" operator namespace create --address "127.0.0.1:$TEMPORAL_PORT" --namespace default --retention 72h \
      >/dev/null || die "registering the default namespace"
  fi
  # A new namespace reaches every service's cache within seconds.
  wait_for "the default namespace" 60 "$BIN/temporal" operator search-attribute list --address "127.0.0.1:$TEMPORAL_PORT" --namespace default
  ensure_search_attributes
  start_temporal_ui
}

# start_temporal_ui starts the cluster's Web UI on 127.0.0.1:$TEMPORAL_UI_PORT
# (the dev server's port), its config written to .dev/temporal-ui/config.
start_temporal_ui() {
  local dir=$DEV/temporal-ui
  if running temporal-ui; then return; fi
  mkdir -p "$dir/config"
  printf 'temporalGrpcAddress: 127.0.0.1:%s\nhost: 127.0.0.1\nport: %s\nenableUi: true\ndefaultNamespace: default\n' \
    "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" >"$dir/config/payflow.yaml"
  log "Temporal Web UI: starting on 127.0.0.1:$TEMPORAL_UI_PORT"
  nohup "$BIN/temporal-ui-server" --root "$dir" --env payflow start >>"$LOGS/temporal-ui.log" 2>&1 &
  echo $! >"$PIDS/temporal-ui.pid"
  wait_for "the Temporal Web UI" 30 port_open "$TEMPORAL_UI_PORT"
}

# switch_temporal_kind refuses an unknown TEMPORAL and, when the other kind
# runs (it holds the frontend's port), stops it and the worker and the
# starter connected to it: `make up TEMPORAL=cluster` on a running dev stack
# is one command. The workflows of the kind stopped stay in its store
# (.dev/temporal.db, .dev/postgres) and come back with it.
switch_temporal_kind() {
  case $(temporal_kind) in
    dev)
      if running temporal-server; then
        log "switching from the Temporal cluster to the dev server: the cluster's workflows stay in $DEV/postgres"
        stop_one starter; stop_workers; stop_one temporal-ui; stop_one temporal-server; stop_postgres
        rm -f "$PIDS/temporal.metrics-port"
      fi ;;
    cluster)
      if running temporal; then
        log "switching from the Temporal dev server to the cluster: the dev server's workflows stay in $DEV/temporal.db"
        stop_one starter; stop_workers; stop_one temporal
        rm -f "$PIDS/temporal.metrics-port"
      fi ;;
    *) die "TEMPORAL=$TEMPORAL: dev (the default) or cluster" ;;
  esac
}

# start_temporal_kind starts the Temporal of temporal_kind and remembers it.
# A switch to the cluster waits for its build first, the dev server still
# serving meanwhile.
start_temporal_kind() {
  if [[ $(temporal_kind) == cluster ]]; then wait_temporal_server; fi
  switch_temporal_kind
  temporal_kind >"$DEV/temporal.kind.tmp"
  mv "$DEV/temporal.kind.tmp" "$DEV/temporal.kind"
  if [[ $(temporal_kind) == cluster ]]; then start_temporal_cluster; else start_temporal; fi
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
# deploy/prometheus/prometheus.tmpl.yml (scraping the worker, the starter, the
# signer and Temporal; rules from deploy/prometheus/alerts.yml), checks it with promtool
# and starts Prometheus, or reloads a running one whose config or rules changed.
start_prometheus() {
  local dir=$DEV/prometheus conf=$DEV/prometheus/prometheus.yml sum
  mkdir -p "$dir/data"
  local targets= name
  # Several workers: one target each, in the template's ["@WORKER@"] list.
  for name in $(workers); do targets+=${targets:+'", "'}$(worker_http_addr "$name"); done
  sed -e "s|@WORKER@|$targets|" -e "s|@STARTER@|127.0.0.1:$STARTER_METRICS_PORT|" -e "s|@SIGNER@|127.0.0.1:$SIGNER_METRICS_PORT|" \
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

# --- btcd: the Bitcoin dev node ---------------------------------------------
#
# simnet, not regtest: btcd deletes its regtest database at every start, so a
# regtest chain survives neither a restart nor a SIGKILL; simnet is btcd's
# other private network with the same dev rules (generate, minimum
# difficulty, coinbase maturity 100) and keeps its chain (docs/bitcoin.md).

BTCD_DIR=$DEV/btcd
# At the first start btcd mines up to this height: segwit is a BIP9
# deployment on simnet (voting windows of 100 blocks: active from block 300)
# and coinbase outputs are spendable 100 blocks deep, so from here on the
# faucet's P2WPKH coinbases can be spent.
BTC_START_HEIGHT=432

# btc_rpc method [params] calls btcd's JSON-RPC with the credentials in
# .dev/btcd/curl.conf (never on a command line) and prints the result (a
# number or a string; not for arrays or objects).
btc_rpc() {
  local out
  out=$(curl -fsS -m 60 -K "$BTCD_DIR/curl.conf" -H 'content-type: text/plain' \
    --data "{\"jsonrpc\":\"1.0\",\"id\":\"stack\",\"method\":\"$1\",\"params\":${2:-[]}}" \
    "http://127.0.0.1:$BTC_RPC_PORT") || return 1
  sed -n 's/.*"result":"\{0,1\}\([^,}"]*\).*/\1/p' <<<"$out"
}

# btcd_config writes btcd's config file and the credentials around it:
# .dev/btcd/rpc-credentials (USER:PASSWORD, made once, read by devstack),
# curl.conf (the same, for btc_rpc and the miner), btcctl.conf (for
# `bin/btcctl -C .dev/btcd/btcctl.conf getblockcount`) and btcd.conf, all
# 0600. The mining address is the faucet's, whose key devstack keeps in
# secrets.json (payflowctl btc-faucet makes it on the first run).
btcd_config() {
  local creds=$BTCD_DIR/rpc-credentials user pass faucet
  mkdir -p "$BTCD_DIR" "$LOGS/btcd"
  chmod 700 "$BTCD_DIR"
  if [[ ! -s $creds ]]; then
    (umask 077; echo "payflow:$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$creds")
  fi
  IFS=: read -r user pass <"$creds"
  faucet=$("$BIN/payflowctl" btc-faucet -dir "$DEV" -network simnet) || die "payflowctl btc-faucet failed"
  (umask 077
   printf 'user = "%s:%s"\n' "$user" "$pass" >"$BTCD_DIR/curl.conf"
   printf 'simnet=1\nnotls=1\nrpcuser=%s\nrpcpass=%s\nrpcserver=127.0.0.1:%s\n' "$user" "$pass" "$BTC_RPC_PORT" >"$BTCD_DIR/btcctl.conf"
   cat >"$BTCD_DIR/btcd.conf" <<CONF
[Application Options]
simnet=1
datadir=$BTCD_DIR/data
logdir=$LOGS/btcd
txindex=1
addrindex=1
nolisten=1
rpclisten=127.0.0.1:$BTC_RPC_PORT
notls=1
rpcuser=$user
rpcpass=$pass
miningaddr=$faucet
CONF
  )
}

# start_btcd starts btcd on simnet (see docs/bitcoin.md for the flags) and
# its miner. At the first start it mines to BTC_START_HEIGHT.
start_btcd() {
  if running btcd; then step "btcd (Bitcoin simnet): running"; start_btc_miner; return; fi
  if port_open "$BTC_RPC_PORT"; then
    die "port $BTC_RPC_PORT is taken by another process; stop it or set PAYFLOW_BTC_RPC_PORT"
  fi
  btcd_config
  step "btcd (Bitcoin simnet): starting, JSON-RPC on 127.0.0.1:$BTC_RPC_PORT, a block every ${BTC_BLOCK_PERIOD}s (data in $BTCD_DIR/data)"
  nohup "$BIN/btcd" --configfile="$BTCD_DIR/btcd.conf" >>"$LOGS/btcd.log" 2>&1 &
  echo $! >"$PIDS/btcd.pid"
  wait_for btcd 120 btc_rpc getblockcount
  local n
  n=$(btc_rpc getblockcount)
  if ((n < BTC_START_HEIGHT)); then
    log "  mining $((BTC_START_HEIGHT - n)) blocks on simnet: segwit activates, the faucet's coinbases mature"
    btc_rpc generate "[$((BTC_START_HEIGHT - n))]" >/dev/null || die "btcd refused to mine (log: $LOGS/btcd.log)"
  fi
  start_btc_miner
}

# start_btc_miner mines one simnet block every BTC_BLOCK_PERIOD seconds
# (btcd's generate, to the faucet's address): a shell loop rather than a Go
# helper, because it is one curl call in a loop, has nothing to build, and
# outlives a restart of btcd (a call that fails while btcd is down is
# retried at the next period). btcd's own --generate would mine flat out.
# While $BTCD_DIR/miner.paused exists it mines nothing (stack.json's
# miner_pause_file: a test holds a payment unconfirmed with it).
start_btc_miner() {
  if running btcd-miner; then return; fi
  rm -f "$BTCD_DIR/miner.paused" # a test that died pausing it
  nohup bash -c 'while :; do
      [ -e "$3" ] || curl -fsS -m 30 -K "$0" -H "content-type: text/plain" \
        --data "{\"jsonrpc\":\"1.0\",\"id\":\"miner\",\"method\":\"generate\",\"params\":[1]}" "$1" >/dev/null 2>&1
      sleep "$2"
    done' "$BTCD_DIR/curl.conf" "http://127.0.0.1:$BTC_RPC_PORT" "$BTC_BLOCK_PERIOD" "$BTCD_DIR/miner.paused" >/dev/null 2>&1 &
  echo $! >"$PIDS/btcd-miner.pid"
}

stop_btcd() {
  stop_one btcd-miner
  stop_one btcd
}

# workers prints the names of the worker processes: worker, then worker-2 to
# worker-$PAYFLOW_WORKERS, and any other worker-N that has a pid file (one
# started with a larger PAYFLOW_WORKERS, so down and status still see it).
workers() {
  local i f
  {
    echo worker
    for ((i = 2; i <= WORKERS; i++)); do echo "worker-$i"; done
    for f in "$PIDS"/worker-*.pid; do [[ -e $f ]] && basename "$f" .pid; done
  } | awk '!seen[$0]++'
}

# worker_http_addr name prints the ledger API and /metrics address of a
# worker process: config.json's http_addr for the first, 127.0.0.1:$HTTP_PORT+N
# for worker-N (8382 for worker-2).
worker_http_addr() {
  case $1 in
    worker-*) echo "127.0.0.1:$((HTTP_PORT + ${1#worker-}))" ;;
    *) echo "127.0.0.1:$HTTP_PORT" ;;
  esac
}

start_workers() {
  local name
  for name in $(workers); do start_payflow "$name" "$BIN/payflow-worker"; done
}

stop_workers() {
  local name
  for name in $(workers); do stop_one "$name"; done
}

start_payflow() { # name binary
  local name=$1 bin=$2
  if running "$name"; then return; fi
  log "starting $name"
  (set -a; . "$DEV/payflow.env"; set +a
   # Only payflow-signer reaches keys: the worker and the starter get no
   # master key, even from a payflow.env an older devstack wrote.
   unset PAYFLOW_MASTER_KEY
   if [[ $name == worker-* ]]; then
     export PAYFLOW_HTTP_ADDR; PAYFLOW_HTTP_ADDR=$(worker_http_addr "$name")
     # A profiling listener asked for (host:port) moves up by one per worker.
     if [[ -n ${PAYFLOW_PPROF_ADDR:-} ]]; then
       PAYFLOW_PPROF_ADDR=${PAYFLOW_PPROF_ADDR%:*}:$((${PAYFLOW_PPROF_ADDR##*:} + ${name#worker-} - 1))
     fi
   fi
   nohup "$bin" -config "$DEV/config.json" >>"$LOGS/$name.log" 2>&1 &
   echo $! >"$PIDS/$name.pid")
  payflow_sum "$bin" >"$PIDS/$name.sum"
}

# payflow_sum is what a worker or the starter runs on: its binary, the
# config and the secrets of payflow.env (a new API token restarts them).
payflow_sum() {
  cat "$1" "$DEV/config.json" "$DEV/payflow.env" 2>/dev/null | sha256sum | cut -d" " -f1
}

# start_signer starts payflow-signer on $SIGNER_SOCKET, /metrics also on
# 127.0.0.1:$SIGNER_METRICS_PORT. It runs before devstack writes config.json
# (devstack creates the dev wallets' keys through it) and so is told the
# database and local-kms directly; it reads its chains from config.json once
# there (at its restart after devstack, or at the first request naming one).
# It gets none of payflow.env's secrets.
start_signer() {
  local bin=$BIN/payflow-signer
  if running signer; then return; fi
  log "starting signer"
  mkdir -p "$(dirname "$SIGNER_SOCKET")"
  chmod 700 "$(dirname "$SIGNER_SOCKET")"
  (export PAYFLOW_CONFIG=$DEV/config.json PAYFLOW_MYSQL_DSN=$MYSQL_DSN PAYFLOW_KMS_ENDPOINT=http://127.0.0.1:$KMS_PORT \
     PAYFLOW_SIGNER_SOCKET=$SIGNER_SOCKET PAYFLOW_SIGNER_METRICS_ADDR=127.0.0.1:$SIGNER_METRICS_PORT
   unset PAYFLOW_MASTER_KEY PAYFLOW_SIGN_KEY PAYFLOW_AMQP_URL
   nohup "$bin" >>"$LOGS/signer.log" 2>&1 &
   echo $! >"$PIDS/signer.pid")
  { cat "$bin"; cat "$DEV/config.json" 2>/dev/null || true; } | sha256sum | cut -d" " -f1 >"$PIDS/signer.sum"
  # Up when it answers its status on the socket; a signer that exits
  # (a bad configuration, a state it cannot open) fails the start.
  local i
  for ((i = 0; i < 300; i++)); do
    if ! running signer; then
      tail -n 5 "$LOGS/signer.log" >&2
      die "payflow-signer exited (log: $LOGS/signer.log)"
    fi
    if curl -fsS -m 2 --unix-socket "$SIGNER_SOCKET" http://signer/v1/status >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "payflow-signer does not answer on $SIGNER_SOCKET after 60s (log: $LOGS/signer.log)"
}

up() {
  mkdir -p "$DEV" "$PIDS" "$LOGS"
  STEPS=17
  case $(temporal_kind) in
    dev) ;;
    cluster) STEPS=19 ;;
    *) die "TEMPORAL=$TEMPORAL: dev (the default) or cluster" ;;
  esac
  install_packages
  install_tools
  start_mariadb
  start_rabbitmq
  start_temporal_kind
  start_node eth
  start_node bsc
  start_kms
  start_btcd
  # devstack talks to the signer: a signer running an older build than
  # ./bin's is restarted first.
  if running signer && [[ "$(cat "$BIN/payflow-signer" "$DEV/config.json" 2>/dev/null | sha256sum | cut -d" " -f1)" != "$(cat "$PIDS/signer.sum" 2>/dev/null)" ]]; then
    stop_one signer
  fi
  if running signer; then step "payflow-signer: running"; else step "payflow-signer: starting on $SIGNER_SOCKET (metrics 127.0.0.1:$SIGNER_METRICS_PORT)"; fi
  start_signer
  step "dev data: migrations, test tokens, dev wallets and config on both chains (payflowctl devstack)"
  # stack.json's metrics_urls names every worker: worker-N by -worker.
  local name more_workers=()
  for name in $(workers); do
    if [[ $name == worker-* ]]; then more_workers+=(-worker "$name=$(worker_http_addr "$name")"); fi
  done
  heartbeat "preparing dev data" "$BIN/payflowctl" devstack \
    -dir "$DEV" \
    -mysql-dsn "payflow:payflow@tcp(127.0.0.1:$MYSQL_PORT)/payflow?parseTime=true&loc=UTC&multiStatements=true&interpolateParams=true" \
    -amqp-url "amqp://guest:guest@127.0.0.1:$AMQP_PORT/" \
    -temporal-address "127.0.0.1:$TEMPORAL_PORT" -temporal-ui-url "http://127.0.0.1:$TEMPORAL_UI_PORT" \
    -chain "ETH,ETH,http://127.0.0.1:$ETH_HTTP_PORT,ws://127.0.0.1:$ETH_WS_PORT" \
    -chain "BSC,BNB,http://127.0.0.1:$BSC_HTTP_PORT,ws://127.0.0.1:$BSC_WS_PORT" \
    -confirmations "$CONFIRMATIONS" -http-addr "127.0.0.1:$HTTP_PORT" \
    -metrics-addr "127.0.0.1:$STARTER_METRICS_PORT" -prometheus-url "http://127.0.0.1:$PROMETHEUS_PORT" \
    -kms-endpoint "http://127.0.0.1:$KMS_PORT" -signer-socket "$SIGNER_SOCKET" \
    -signer-metrics-addr "127.0.0.1:$SIGNER_METRICS_PORT" \
    -btc-rpc-url "http://127.0.0.1:$BTC_RPC_PORT" -btc-credentials "$BTCD_DIR/rpc-credentials" "${more_workers[@]}"
  # The signer reads the chains devstack wrote.
  stop_one signer
  start_signer
  start_prometheus
  step "worker and starter"
  refresh
  start_workers
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
  stop_workers
  stop_one signer
  stop_one geth-bsc
  stop_one geth
  stop_btcd
  stop_one kms
  stop_one temporal
  stop_one temporal-ui
  stop_one temporal-server
  stop_postgres
  rm -f "$PIDS/temporal.metrics-port"
  if running rabbitmq; then
    (rabbit_env; /usr/lib/rabbitmq/bin/rabbitmqctl -n "$AMQP_NODE" stop >/dev/null 2>&1 || true)
  fi
  stop_one rabbitmq
  stop_one mariadb
}

# refresh restarts the signer, the worker or the starter if its binary
# changed since it started (make test runs the code under test, not
# yesterday's build).
refresh() {
  local name bin
  if running signer && [[ "$(cat "$BIN/payflow-signer" "$DEV/config.json" | sha256sum | cut -d" " -f1)" != "$(cat "$PIDS/signer.sum" 2>/dev/null)" ]]; then
    log "signer binary or config changed; restarting it"
    stop_one signer
    start_signer
  fi
  for name in $(workers) starter; do
    bin=$BIN/payflow-${name%%-[0-9]*}
    if running "$name" && [[ "$(payflow_sum "$bin")" != "$(cat "$PIDS/$name.sum" 2>/dev/null)" ]]; then
      log "$name binary or config changed; restarting it"
      stop_one "$name"
      start_payflow "$name" "$bin"
    fi
  done
}

status() {
  local n
  show() { if running "$1"; then echo "$1: running (pid $(cat "$PIDS/$1.pid"))"; else echo "$1: stopped"; fi; }
  for n in mariadb rabbitmq temporal geth geth-bsc btcd btcd-miner kms prometheus signer worker starter; do
    case $n in
      temporal) if [[ $(temporal_kind) == cluster ]]; then show postgres; show temporal-server; show temporal-ui; continue; fi ;;
      worker) for n in $(workers); do show "$n"; done; continue ;;
    esac
    show "$n"
  done
}

usage() { die "usage: $0 up|down|status|refresh|restart-payflow|start-payflow signer|worker|worker-N|starter|stop-payflow signer|worker|worker-N|starter|stop-node eth|bsc|start-node eth|bsc|start-kms|start-btcd|stop-btcd|start-temporal|stop-temporal"; }

case ${1:-} in
  up) up ;;
  refresh) refresh ;;
  down) down ;;
  status) status ;;
  restart-payflow)
    # The workers that ran run again, however many PAYFLOW_WORKERS says now.
    ran=$(workers)
    stop_one starter; stop_workers; stop_one signer; install_tools
    start_signer
    for name in $ran; do start_payflow "$name" "$BIN/payflow-worker"; done
    start_workers; start_payflow starter "$BIN/payflow-starter" ;;
  start-payflow)
    case ${2:-} in
      signer) mkdir -p "$PIDS" "$LOGS"; start_signer ;;
      worker | starter) mkdir -p "$PIDS" "$LOGS"; start_payflow "$2" "$BIN/payflow-$2" ;;
      worker-[0-9]*) mkdir -p "$PIDS" "$LOGS"; start_payflow "$2" "$BIN/payflow-worker" ;;
      *) usage ;;
    esac ;;
  stop-payflow)
    case ${2:-} in
      signer | worker | worker-[0-9]* | starter) stop_one "$2"; rm -f "$PIDS/$2.sum" ;;
      *) usage ;;
    esac ;;
  stop-node) stop_node "${2:-}" ;;
  start-node) mkdir -p "$PIDS" "$LOGS"; start_node "${2:-}" ;;
  start-kms) mkdir -p "$PIDS" "$LOGS"; build_kms; wait_kms; start_kms ;;
  # start-btcd: btcd alone (and payflowctl, which keeps the faucet's key).
  start-btcd)
    mkdir -p "$PIDS" "$LOGS"; build_btcd
    go_build payflowctl "$ROOT" build -o "$BIN/payflowctl" ./cmd/payflowctl
    wait_btcd_build; start_btcd ;;
  stop-btcd) stop_btcd ;;
  # start-temporal: only Temporal (TEMPORAL=cluster: building the server and
  # starting PostgreSQL if needed); stop-temporal stops either kind.
  start-temporal)
    mkdir -p "$PIDS" "$LOGS"
    if [[ $(temporal_kind) == cluster ]]; then build_temporal_server; fi
    start_temporal_kind ;;
  stop-temporal) stop_one temporal; stop_one temporal-ui; stop_one temporal-server; stop_postgres; rm -f "$PIDS/temporal.metrics-port" ;;
  *) usage ;;
esac
