#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) without Docker.
#   deploy/kafka/kafka.sh fetch|start|stop|status|restart|wipe
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_HOME_DIR (deploy/kafka/run),
#              KAFKA_HEAP (512m), KAFKA_START_TIMEOUT seconds (60).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
run_dir=${KAFKA_HOME_DIR:-$here/run}
heap=${KAFKA_HEAP:-512m}
timeout=${KAFKA_START_TIMEOUT:-60}
jars=$here/jars
data_dir=$run_dir/data-$port
config=$run_dir/server-$port.properties
pid_file=$run_dir/kafka-$port.pid
log_file=$run_dir/kafka-$port.log

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

fetch() {
  if [ -f "$jars/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "maven (mvn) is needed to fetch the broker jars"; exit 1; }
  command -v java >/dev/null || { log "java is needed to run the broker"; exit 1; }
  log "fetching the Kafka broker jars from Maven Central into $jars"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies
  touch "$jars/.complete"
}

running_pid() {
  [ -f "$pid_file" ] || return 1
  local pid
  pid=$(cat "$pid_file")
  kill -0 "$pid" 2>/dev/null && ps -o args= -p "$pid" | grep -q kafka.Kafka && { echo "$pid"; return 0; }
  return 1
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

ready() {
  # The port opens before the broker can serve metadata; the broker logs this line once it serves.
  answers && grep -q "Kafka Server started" "$log_file" 2>/dev/null
}

start() {
  fetch
  mkdir -p "$run_dir"
  if pid=$(running_pid); then log "already running (pid $pid, port $port)"; return 0; fi
  if answers; then log "port $port is taken by another process"; exit 1; fi
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@DATA_DIR@#$data_dir#g" \
    "$here/server.properties.in" >"$config"
  if [ ! -f "$data_dir/meta.properties" ]; then
    log "formatting storage in $data_dir"
    java -Dlog4j.configuration="file:$here/log4j.properties" -cp "$jars/*" kafka.tools.StorageTool format -t "$(java -Dlog4j.configuration="file:$here/log4j.properties" -cp "$jars/*" kafka.tools.StorageTool random-uuid)" \
      -c "$config" --ignore-formatted >/dev/null
  fi
  log "starting broker on 127.0.0.1:$port (log: $log_file)"
  : >"$log_file"
  KAFKA_LOG4J_OPTS= nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$here/log4j.properties" -Dkafka.logs.dir="$run_dir" \
    -cp "$jars/*" kafka.Kafka "$config" >>"$log_file" 2>&1 </dev/null &
  local started=$!
  echo "$started" >"$pid_file"
  local waited=0
  until ready; do
    # kill -0, not running_pid: until nohup has exec'd java, the process does not look like kafka.Kafka yet.
    if ! kill -0 "$started" 2>/dev/null; then log "broker exited; last lines of $log_file:"; tail -20 "$log_file" >&2; exit 1; fi
    if [ "$waited" -ge $((timeout * 5)) ]; then log "broker did not start within ${timeout}s"; tail -20 "$log_file" >&2; exit 1; fi
    sleep 0.2; waited=$((waited + 1))
  done
  log "broker ready on 127.0.0.1:$port"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$pid_file"; return 0; fi
  log "stopping broker (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "broker did not stop in 30s; killing it"; kill -9 "$pid"; fi
  rm -f "$pid_file"
}

status() {
  if pid=$(running_pid); then echo "running (pid $pid, 127.0.0.1:$port)"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  wipe) stop; rm -rf "$data_dir"; log "removed $data_dir" ;;
  *) echo "usage: $0 fetch|start|stop|restart|status|wipe" >&2; exit 2 ;;
esac
