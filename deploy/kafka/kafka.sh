#!/usr/bin/env bash
# Run a single-node Apache Kafka broker (KRaft) from jars on Maven Central.
#
#   kafka.sh start    fetch the jars if needed, format storage once, start, wait until ready
#   kafka.sh stop     stop the broker started from this run dir (idempotent)
#   kafka.sh status   exit 0 if the broker is running and answers a metadata request
#
# Environment:
#   CARETEAM_KAFKA_PORT             client (PLAINTEXT) port on 127.0.0.1, default 9092
#   CARETEAM_KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1, default PORT+1
#   CARETEAM_KAFKA_RUN_DIR          config, data, logs and pid file, default deploy/kafka/run
#   CARETEAM_KAFKA_HEAP_OPTS        JVM heap flags, default "-Xms128m -Xmx512m"
#   CARETEAM_KAFKA_START_TIMEOUT    seconds to wait for readiness, default 90
#   CARETEAM_KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL, default 30
# For one node of a multi-broker cluster (deploy/cluster/cluster.sh sets these):
#   CARETEAM_KAFKA_TEMPLATE         server.properties template, default the single-node one here
#   CARETEAM_KAFKA_NODE_ID          this node's id, default 1
#   CARETEAM_KAFKA_QUORUM_VOTERS    controller.quorum.voters, default this node alone
#   CARETEAM_KAFKA_CLUSTER_ID       the cluster id to format storage with, default a new one
set -euo pipefail

KAFKA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$KAFKA_DIR/pom.xml"
TEMPLATE="${CARETEAM_KAFKA_TEMPLATE:-$KAFKA_DIR/server.properties.template}"
LIB_DIR="$KAFKA_DIR/target/lib"
LIB_STAMP="$LIB_DIR/.pom.sha256"

PORT="${CARETEAM_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CARETEAM_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
RUN_DIR="${CARETEAM_KAFKA_RUN_DIR:-$KAFKA_DIR/run}"
HEAP_OPTS="${CARETEAM_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
START_TIMEOUT="${CARETEAM_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${CARETEAM_KAFKA_STOP_TIMEOUT:-30}"
NODE_ID="${CARETEAM_KAFKA_NODE_ID:-1}"
QUORUM_VOTERS="${CARETEAM_KAFKA_QUORUM_VOTERS:-$NODE_ID@127.0.0.1:$CONTROLLER_PORT}"

mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
CONFIG="$RUN_DIR/server.properties"
LOG4J_CONFIG="$RUN_DIR/log4j.properties"
TOOLS_LOG4J_CONFIG="$RUN_DIR/tools-log4j.properties"
DATA_DIR="$RUN_DIR/data"
LOG_DIR="$RUN_DIR/logs"
PID_FILE="$RUN_DIR/kafka.pid"
BOOTSTRAP="127.0.0.1:$PORT"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The JVM flags of Kafka's bin/kafka-run-class.sh that matter here (G1 tuned for
# short pauses, headless), minus JMX and GC logging, plus a heap sized for tests.
JVM_OPTS=(
  -server
  -XX:+UseG1GC
  -XX:MaxGCPauseMillis=20
  -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent
  -XX:MaxInlineLevel=15
  -Djava.awt.headless=true
)

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Materialise the classpath in target/lib. Maven runs only when the jars are missing
# or pom.xml changed; it downloads into ~/.m2 and copies from there.
fetch_jars() {
  local want
  want="$(sha256_of "$POM")"
  if [[ -f "$LIB_STAMP" && "$(cat "$LIB_STAMP")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: Maven is needed once to fetch the Kafka jars"
  mkdir -p "$KAFKA_DIR/target"
  # Brokers in other run dirs share target/lib: one fetch at a time.
  exec 8>"$KAFKA_DIR/target/.fetch.lock"
  flock 8
  if [[ -f "$LIB_STAMP" && "$(cat "$LIB_STAMP")" == "$want" ]]; then
    exec 8>&-
    return 0
  fi
  log "fetching Kafka jars with Maven (once; cached in ~/.m2 and $LIB_DIR)"
  local tmp="$KAFKA_DIR/target/lib.tmp.$$" mvn_log="$KAFKA_DIR/target/mvn.log"
  rm -rf "$tmp"
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    tail -n 40 "$mvn_log" >&2
    rm -rf "$tmp"
    die "Maven could not fetch the Kafka jars (full output: $mvn_log)"
  fi
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  exec 8>&-
}

write_configs() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  sed -e "s|@PORT@|$PORT|g" \
      -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$DATA_DIR|g" \
      -e "s|@NODE_ID@|$NODE_ID|g" \
      -e "s|@QUORUM_VOTERS@|$QUORUM_VOTERS|g" \
      "$TEMPLATE" >"$CONFIG"

  # Kafka's config/log4j.properties, folded into one size-capped file.
  cat >"$LOG4J_CONFIG" <<'EOF'
log4j.rootLogger=INFO, kafkaAppender
log4j.appender.kafkaAppender=org.apache.log4j.RollingFileAppender
log4j.appender.kafkaAppender.File=${kafka.logs.dir}/server.log
log4j.appender.kafkaAppender.MaxFileSize=20MB
log4j.appender.kafkaAppender.MaxBackupIndex=2
log4j.appender.kafkaAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.kafkaAppender.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.kafka.authorizer.logger=WARN
EOF

  # The admin tools used for formatting and the readiness probe: warnings only, to stderr.
  cat >"$TOOLS_LOG4J_CONFIG" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

run_tool() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$TOOLS_LOG4J_CONFIG" \
    -cp "$LIB_DIR/*" "$@"
}

format_storage() {
  # meta.properties is written by a successful format; a formatted dir is kept as is.
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  local cluster_id="${CARETEAM_KAFKA_CLUSTER_ID:-}"
  if [[ -z "$cluster_id" ]]; then
    cluster_id="$(run_tool kafka.tools.StorageTool random-uuid | tail -n 1)"
  fi
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid printed no cluster id"
  log "formatting $DATA_DIR (cluster id $cluster_id)"
  run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" >&2
}

# The pid from the pid file, if that process is alive and is our broker (not a
# recycled pid): its command line names kafka.Kafka and this run dir's config.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *" kafka.Kafka $CONFIG"* ]] || return 1
  echo "$pid"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Ready means a real round trip: a metadata request that lists this broker (in KRaft
# only unfenced brokers are listed), followed by ApiVersions to it.
metadata_ok() {
  port_open "$PORT" || return 1
  local out
  out="$(timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j.configuration="file:$TOOLS_LOG4J_CONFIG" \
    -cp "$LIB_DIR/*" kafka.admin.BrokerApiVersionsCommand \
    --bootstrap-server "$BOOTSTRAP" 2>/dev/null)" || return 1
  [[ "$out" == *"(id: $NODE_ID "* ]]
}

print_log_tail() {
  local f
  for f in "$LOG_DIR/kafka.out" "$LOG_DIR/server.log"; do
    if [[ -s "$f" ]]; then
      log "---- last lines of $f ----"
      tail -n 40 "$f" >&2
    fi
  done
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      print_log_tail
      rm -f "$PID_FILE"
      die "broker exited during start-up"
    fi
    # Probe with a JVM only once the port is open: each probe costs a JVM start.
    if port_open "$PORT"; then
      if metadata_ok; then
        return 0
      fi
      sleep 1
    else
      sleep 0.2
    fi
  done
  print_log_tail
  die "broker not ready after ${START_TIMEOUT}s (pid $pid still running; stop it with: $0 stop)"
}

cmd_start() {
  local started=$SECONDS pid
  if pid="$(broker_pid)"; then
    wait_ready "$pid"
    log "already running (pid $pid) on $BOOTSTRAP"
    return 0
  fi
  rm -f "$PID_FILE"
  command -v java >/dev/null || die "java not found: Java 17 is needed"
  local p
  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $p on 127.0.0.1 is taken by another process; set CARETEAM_KAFKA_PORT / CARETEAM_KAFKA_CONTROLLER_PORT"
    fi
  done

  fetch_jars
  write_configs
  format_storage

  # Kafka writes its own logs through log4j; stdout/stderr keep JVM crashes only.
  # stdin/stdout/stderr are detached so a caller waiting on our output never hangs.
  nohup java $HEAP_OPTS "${JVM_OPTS[@]}" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -Dlog4j.configuration="file:$LOG4J_CONFIG" \
    -cp "$LIB_DIR/*" \
    kafka.Kafka "$CONFIG" \
    </dev/null >"$LOG_DIR/kafka.out" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started pid $pid; waiting for $BOOTSTRAP (up to ${START_TIMEOUT}s)"
  wait_ready "$pid"
  log "ready on $BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT) in $((SECONDS - started))s"
}

cmd_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still running after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if ! pid="$(broker_pid)"; then
    log "not running"
    return 1
  fi
  if ! metadata_ok; then
    log "pid $pid running but $BOOTSTRAP not ready"
    return 1
  fi
  log "running (pid $pid) and ready on $BOOTSTRAP"
}

# start and stop on one run dir are serialised, so two callers never race to
# format or to start two brokers.
lock_run_dir() {
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

case "${1:-}" in
  start) lock_run_dir; cmd_start ;;
  stop) lock_run_dir; cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
