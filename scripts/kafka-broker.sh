#!/usr/bin/env bash
# kafka-broker.sh - run a real, single-node Apache Kafka broker (KRaft mode,
# combined broker+controller) for the mvrepair integration tests.
#
# Kafka is fetched only from Maven Central (org.apache.kafka:kafka_2.13 and its
# runtime dependencies, resolved with Maven); no Kafka tarball, no Docker.
#
# Usage:
#   scripts/kafka-broker.sh start [--version V] [--port P] [--controller-port C]
#                                 [--security plaintext|sasl_ssl|ssl]
#                                 [--internal-port I] [--tls-dir DIR]
#                                 [--sasl-user NAME] [--set KEY=VALUE]...
#   scripts/kafka-broker.sh stop
#   scripts/kafka-broker.sh status
#   scripts/kafka-broker.sh versions
#   scripts/kafka-broker.sh kill9 | restart | pause | resume
#
#   start     fetch Kafka V (first time only), format a fresh KRaft data dir,
#             start the broker in the background and wait until it serves
#             requests (ApiVersions + FindCoordinator); prints
#             "kafka broker V listening on 127.0.0.1:P". On failure prints the
#             last 50 log lines and exits non-zero.
#   stop      SIGTERM the broker, SIGKILL after 30 s; idempotent.
#   status    print whether the broker runs and answers.
#   versions  print the newest 4.x and 3.9.x on Maven Central, as
#             "4.x <version>" and "3.9.x <version>".
#
#   Faults, for the fault suite (internal/faulttest, KAFKA_BROKER_CONTROL):
#   kill9     SIGKILL the running broker (a crash: no clean shutdown) and wait
#             until it is gone; its data dir is kept.
#   restart   start the broker of the last `start` again on its data dir as
#             it is (no format: the topics, records and group offsets of
#             before), with the same version, ports and settings, and wait
#             until it serves requests; a running broker is stopped first.
#   pause     SIGSTOP the broker (frozen: connections stay open, nothing is
#             answered, like a long GC pause or a hung host).
#   resume    SIGCONT a paused broker.
#
#   --version V   Kafka version (default: $MVREPAIR_KAFKA_VERSION, else 4.4.0).
#                 "latest" / "latest-4" = newest 4.x, "latest-3.9" = newest
#                 3.9.x on Maven Central (needs network).
#   --port P      client listener port on 127.0.0.1 (PLAINTEXT unless --security)
#                 (default: $MVREPAIR_KAFKA_PORT, else $PORT, else 19092).
#   --controller-port C
#                 CONTROLLER listener port on 127.0.0.1
#                 (default: $MVREPAIR_KAFKA_CONTROLLER_PORT, else P+1).
#   --set K=V     extra server.properties line (repeatable, wins over defaults).
#   --security S  protocol of the client listener on P (default plaintext):
#                   plaintext  PLAINTEXT, no authentication.
#                   sasl_ssl   SASL_SSL: TLS with the certificate of
#                              deploy/gen-certs.sh, SASL SCRAM-SHA-512 (also
#                              SCRAM-SHA-256 and PLAIN) for user NAME, whose
#                              credentials are created with Kafka's own
#                              `kafka-storage format --add-scram`.
#                   ssl        SSL with client certificates required (mTLS).
#                 A secured broker keeps a PLAINTEXT listener on
#                 127.0.0.1:I for itself (inter-broker traffic, readiness
#                 probes); clients are told only about P. start then prints
#                 the client settings (MVREPAIR_* lines, also written to
#                 $KDIR/client.env), writes $KDIR/test.env (the KAFKA_* test
#                 variables, see .ci/run) and $KDIR/client.properties (for
#                 Kafka's Java tools, --command-config).
#   --internal-port I  the PLAINTEXT listener of a secured broker
#                 (default P+2).
#   --tls-dir DIR certificates and secrets of a secured broker, made or
#                 reused by deploy/gen-certs.sh (default $KDIR/tls, new on
#                 every start; the SASL password is DIR/sasl.password).
#   --sasl-user NAME  SASL user created at format time (default mvrepair).
#
# Environment:
#   MVREPAIR_CACHE          cache root (default ~/.cache/mvrepair); jars go to
#                           $MVREPAIR_CACHE/kafka/<V>/libs and are reused
#                           offline on later starts.
#   MVREPAIR_KAFKA_DIR      broker state dir (default /tmp/mvrepair-kafka):
#                           server.properties, kafka.pid, logs/, data/.
#                           Wiped on every start (only if it is empty or was
#                           created by this script).
#   MVREPAIR_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 120).
#   MVREPAIR_KAFKA_HEAP     JVM heap options (default "-Xms128m -Xmx512m").
#   MVREPAIR_KAFKA_JAVA_OPTS extra JVM options.
#   MVREPAIR_MAVEN_REPO     repository for `versions` (default Maven Central).
#   MVREPAIR_MVN_ARGS       extra arguments for mvn (e.g. "-s settings.xml").
#   JAVA_HOME               java to use (default: java on PATH).
#
# Exit status: 0 on success; `status` exits 1 unless a broker is running and
# answering Kafka requests.

set -euo pipefail

DEFAULT_VERSION=4.4.0
CACHE_ROOT="${MVREPAIR_CACHE:-$HOME/.cache/mvrepair}/kafka"
KDIR="${MVREPAIR_KAFKA_DIR:-/tmp/mvrepair-kafka}"
MAVEN_REPO="${MVREPAIR_MAVEN_REPO:-https://repo1.maven.org/maven2}"
START_TIMEOUT="${MVREPAIR_KAFKA_START_TIMEOUT:-120}"
HEAP_OPTS="${MVREPAIR_KAFKA_HEAP:--Xms128m -Xmx512m}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
LOG4J2_FALLBACK=2.24.3   # log4j2 shipped with Kafka 4.0 (used if the pom has none)
RELOAD4J_VERSION=1.2.25  # log4j 1.x backend shipped with Kafka 3.9
MARKER=".mvrepair-kafka"      # marks KDIR as ours (safe to wipe)
PID_FILE="$KDIR/kafka.pid"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GEN_CERTS="$SCRIPT_DIR/../deploy/gen-certs.sh"
STATE_FILE="$KDIR/broker.state"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

log()  { printf 'kafka-broker: %s\n' "$*" >&2; }
die()  { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
}

# ---------------------------------------------------------------- versions --

metadata_versions() {
  local url="$MAVEN_REPO/org/apache/kafka/kafka_2.13/maven-metadata.xml" xml
  if command -v curl >/dev/null 2>&1; then
    xml=$(curl -fsSL --retry 3 --max-time 60 "$url") || die "cannot fetch $url"
  elif command -v wget >/dev/null 2>&1; then
    xml=$(wget -qO- --timeout=60 "$url") || die "cannot fetch $url"
  else
    die "need curl or wget to read $url"
  fi
  sed -n 's:.*<version>\([^<]*\)</version>.*:\1:p' <<<"$xml"
}

newest() { # $1 = ERE for the version line, stdin = versions
  grep -E "$1" | sort -V | tail -n 1
}

cmd_versions() {
  local all v4 v39
  all=$(metadata_versions)
  v4=$(newest '^4\.[0-9]+\.[0-9]+$' <<<"$all")
  v39=$(newest '^3\.9\.[0-9]+$' <<<"$all")
  [[ -n $v4 && -n $v39 ]] || die "could not parse maven-metadata.xml"
  printf '4.x %s\n3.9.x %s\n' "$v4" "$v39"
}

resolve_version_alias() {
  case "$1" in
    latest|latest-4) metadata_versions | newest '^4\.[0-9]+\.[0-9]+$' ;;
    latest-3.9)      metadata_versions | newest '^3\.9\.[0-9]+$' ;;
    *)               printf '%s\n' "$1" ;;
  esac
}

# ------------------------------------------------------------- resolution --

write_pom() { # $1 = file, $2.. = groupId:artifactId:version
  local f=$1 gav g a v
  shift
  {
    cat <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by mvrepair scripts/kafka-broker.sh -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mvrepair.local</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
EOF
    for gav in "$@"; do
      IFS=: read -r g a v <<<"$gav"
      printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$g" "$a" "$v"
    done
    printf '  </dependencies>\n</project>\n'
  } >"$f"
}

mvn_copy() { # $1 = pom, $2 = output dir, $3.. = extra flags
  local pom=$1 out=$2
  shift 2
  local mlog="${pom%/*}/mvn.log"
  local -a margs=()
  read -r -a margs <<<"${MVREPAIR_MVN_ARGS:-}"
  if ! mvn -B -q -Dstyle.color=never ${margs[@]+"${margs[@]}"} -f "$pom" "$DEP_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$out" "$@" >>"$mlog" 2>&1; then
    log "mvn failed; last lines of $mlog:"
    tail -n 30 "$mlog" | sed 's/\x1b\[[0-9;]*m//g' >&2
    return 1
  fi
}

jar_has() { # $1 = jar, $2 = entry name (zip central directory is plain text)
  LC_ALL=C grep -aqF "$2" "$1" 2>/dev/null
}

find_jar() { # $1 = dir, $2 = glob (first match)
  local f
  for f in "$1"/$2; do [[ -e $f ]] && { printf '%s\n' "$f"; return 0; }; done
  return 1
}

# Main class of the storage formatting tool for this lib dir.
storage_tool_class() { # $1 = libs dir
  local j
  for j in "$1"/kafka_2.13-*.jar; do
    jar_has "$j" 'kafka/tools/StorageTool.class' && { echo kafka.tools.StorageTool; return 0; }
  done
  for j in "$1"/*.jar; do
    jar_has "$j" 'org/apache/kafka/tools/StorageTool.class' && { echo org.apache.kafka.tools.StorageTool; return 0; }
  done
  return 1
}

# Resolve kafka_2.13:V + runtime deps + an SLF4J logging backend into the cache.
ensure_libs() { # $1 = version; prints libs dir
  local v=$1 vdir="$CACHE_ROOT/$1" libs="$CACHE_ROOT/$1/libs" tmp api core
  if [[ -f $libs/.complete ]]; then
    printf '%s\n' "$libs"; return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (needed once to fetch Kafka $v)"
  mkdir -p "$vdir"
  tmp=$(mktemp -d "$vdir/libs.tmp.XXXXXX")
  log "resolving org.apache.kafka:kafka_2.13:$v from Maven (cached in $libs)"
  write_pom "$vdir/pom.xml" "org.apache.kafka:kafka_2.13:$v"
  if ! mvn_copy "$vdir/pom.xml" "$tmp"; then
    rm -rf "$tmp"
    [[ -d $libs ]] || rm -rf "$vdir"   # do not leave a cache entry for a bad version
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$v"
  fi
  [[ -f $tmp/kafka_2.13-$v.jar ]] || { rm -rf "$tmp"; die "kafka_2.13-$v.jar missing after resolution"; }

  # Extra artifacts a standalone KRaft broker needs but kafka_2.13 does not
  # declare: an SLF4J binding (the distribution tarball ships one) and, should
  # StorageTool ever leave the core jar, kafka-tools.
  local -a extra=()
  api=$(find_jar "$tmp" 'slf4j-api-*.jar') || { rm -rf "$tmp"; die "slf4j-api not among kafka deps"; }
  api=${api##*/slf4j-api-}; api=${api%.jar}
  local bridge=log4j-slf4j-impl
  [[ $api == 1.* ]] || bridge=log4j-slf4j2-impl
  if (( ${v%%.*} >= 4 )); then
    # Kafka 4.x logs through log4j2 (kafka.utils/Log4jController uses its
    # core API). 4.4+ declares log4j-api/core (via kafka-server), 4.0-4.3 do
    # not; the SLF4J bridge is never declared.
    if core=$(find_jar "$tmp" 'log4j-core-*.jar'); then
      core=${core##*/log4j-core-}; core=${core%.jar}
      extra+=("org.apache.logging.log4j:$bridge:$core")
    else
      core=$LOG4J2_FALLBACK
      extra+=("org.apache.logging.log4j:log4j-api:$core" "org.apache.logging.log4j:log4j-core:$core"
              "org.apache.logging.log4j:$bridge:$core")
    fi
  else
    # Kafka 3.x: the tarball uses reload4j (log4j 1.x API, also needed by
    # kafka.utils.Log4jController).
    extra+=("org.slf4j:slf4j-reload4j:$api" "ch.qos.reload4j:reload4j:$RELOAD4J_VERSION")
  fi
  if ! storage_tool_class "$tmp" >/dev/null; then
    extra+=("org.apache.kafka:kafka-tools:$v")
  fi
  write_pom "$vdir/pom-extra.xml" "${extra[@]}"
  if [[ ${extra[*]} == *kafka-tools* ]]; then
    mvn_copy "$vdir/pom-extra.xml" "$tmp" || { rm -rf "$tmp"; die "Maven could not resolve ${extra[*]}"; }
  else
    mvn_copy "$vdir/pom-extra.xml" "$tmp" -DexcludeTransitive=true \
      || { rm -rf "$tmp"; die "Maven could not resolve ${extra[*]}"; }
  fi
  storage_tool_class "$tmp" >/dev/null || { rm -rf "$tmp"; die "no StorageTool class found for Kafka $v"; }

  touch "$tmp/.complete"
  rm -rf "$libs"
  mv "$tmp" "$libs"
  printf '%s\n' "$libs"
}

# ---------------------------------------------------------------- process --

read_pid() {
  [[ -f $PID_FILE ]] || return 1
  local p
  p=$(<"$PID_FILE")
  [[ $p =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$p"
}

# True if $1 is alive and is our broker JVM (guards against pid reuse).
is_our_broker() {
  local p=$1
  kill -0 "$p" 2>/dev/null || return 1
  if [[ -r /proc/$p/cmdline ]]; then
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"kafka.Kafka $KDIR/server.properties"* ]] || return 1
  fi
  return 0
}

running_pid() {
  local p
  p=$(read_pid) || return 1
  is_our_broker "$p" || return 1
  printf '%s\n' "$p"
}

state_get() { # $1 = key
  [[ -f $STATE_FILE ]] || return 1
  sed -n "s/^$1=//p" "$STATE_FILE" | head -n 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Sends one raw Kafka request (printf-escaped bytes, header v1 with
# correlation id 42) over bash /dev/tcp and prints the error code of the
# response (its first int16 field) as 4 hex digits; fails on no/garbled reply.
kafka_request() { # $1 = port, $2 = request bytes (printf format)
  local out
  local -a b
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "$2" >&3
    head -c 10 <&3 | od -An -tx1' _ "$1" "$2" 2>/dev/null) || return 1
  # response: int32 size, int32 correlation id, int16 error code
  read -r -a b <<<"$out"
  [[ ${#b[@]} -eq 10 && "${b[4]}${b[5]}${b[6]}${b[7]}" == 0000002a ]] || return 1
  printf '%s%s\n' "${b[8]}" "${b[9]}"
}

# ApiVersions v0 answered without error: the broker serves requests.
kafka_probe() { # $1 = port
  [[ $(kafka_request "$1" '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x2a\xff\xff') == 0000 ]]
}

# FindCoordinator v0 for a dummy group answered without error. On a fresh
# broker the first call creates __consumer_offsets and returns
# COORDINATOR_NOT_AVAILABLE (15) for a moment; clients such as kafka-go then
# back off for seconds, so start waits for this to succeed once.
group_coordinator_ready() { # $1 = port
  # key "mvrepair-warmup" (15 bytes); 10 header + 2 + 15 = 27 bytes
  [[ $(kafka_request "$1" '\x00\x00\x00\x1b\x00\x0a\x00\x00\x00\x00\x00\x2a\xff\xff\x00\x0fmvrepair-warmup') == 0000 ]]
}

show_failure_logs() { # $@ = files (default: broker logs)
  local f
  (( $# )) || set -- "$KDIR/logs/server.log" "$KDIR/kafka.out"
  for f in "$@"; do
    if [[ -s $f ]]; then
      log "last 50 lines of $f:"
      tail -n 50 "$f" >&2
    fi
  done
}

random_cluster_id() {
  # 16 random bytes, URL-safe base64 without padding (Kafka Uuid format);
  # avoid a leading '-' so the id is never mistaken for a CLI flag.
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ ${#id} -eq 22 && $id != -* && $id != AAAAAAAAAAAAAAAAAAAAA[AQ] ]] && break
  done
  printf '%s\n' "$id"
}

prepare_dir() {
  if [[ -e $KDIR ]]; then
    [[ -d $KDIR ]] || die "$KDIR exists and is not a directory"
    if [[ ! -e $KDIR/$MARKER ]] && [[ -n $(ls -A "$KDIR") ]]; then
      die "$KDIR is not empty and was not created by this script; refusing to wipe it (set MVREPAIR_KAFKA_DIR)"
    fi
    rm -rf "${KDIR:?}"
  fi
  mkdir -p "$KDIR/logs" "$KDIR/data"
  : >"$KDIR/$MARKER"
}

# Security settings of the broker being started (see cmd_start).
SECURITY=plaintext   # plaintext | sasl_ssl | ssl
IPORT=               # PLAINTEXT listener of a secured broker
TLS_DIR=             # gen-certs.sh output of a secured broker
SASL_USER=mvrepair

# The client listener's name and protocol (the same word, upper-cased).
client_listener() { tr '[:lower:]' '[:upper:]' <<<"$SECURITY"; }

write_server_properties() { # $1 = major version, $2 = port, $3 = controller port, $4.. = overrides
  local major=$1 port=$2 cport=$3
  shift 3
  {
    echo "# generated by mvrepair scripts/kafka-broker.sh"
    echo "process.roles=broker,controller"
    echo "node.id=1"
    if (( major >= 4 )); then
      echo "controller.quorum.bootstrap.servers=127.0.0.1:$cport"
    else
      echo "controller.quorum.voters=1@127.0.0.1:$cport"
    fi
    if [[ $SECURITY == plaintext ]]; then
      echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
      echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
      echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
      echo "inter.broker.listener.name=PLAINTEXT"
    else
      # Clients get only the secured listener in metadata (they connected to
      # it); the broker talks to itself over INTERNAL, on loopback.
      local l
      l=$(client_listener)
      echo "listeners=$l://127.0.0.1:$port,INTERNAL://127.0.0.1:$IPORT,CONTROLLER://127.0.0.1:$cport"
      echo "advertised.listeners=$l://127.0.0.1:$port,INTERNAL://127.0.0.1:$IPORT"
      echo "listener.security.protocol.map=$l:$l,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
      echo "inter.broker.listener.name=INTERNAL"
      local ks_pw
      ks_pw=$(<"$TLS_DIR/keystore.password")
      echo "ssl.keystore.type=PKCS12"
      echo "ssl.keystore.location=$TLS_DIR/broker.keystore.p12"
      echo "ssl.keystore.password=$ks_pw"
      echo "ssl.key.password=$ks_pw"
      echo "ssl.truststore.type=PKCS12"
      echo "ssl.truststore.location=$TLS_DIR/broker.truststore.p12"
      echo "ssl.truststore.password=$ks_pw"
      if [[ $SECURITY == ssl ]]; then
        echo "listener.name.ssl.ssl.client.auth=required"
      else
        local pw lname=${l,,}
        pw=$(<"$TLS_DIR/sasl.password")
        echo "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
        echo "listener.name.$lname.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        echo "listener.name.$lname.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        echo "listener.name.$lname.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER=\"$pw\";"
      fi
    fi
    echo "controller.listener.names=CONTROLLER"
    echo "log.dirs=$KDIR/data"
    echo "num.partitions=1"
    echo "default.replication.factor=1"
    echo "min.insync.replicas=1"
    echo "offsets.topic.replication.factor=1"
    echo "offsets.topic.num.partitions=1"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "transaction.state.log.num.partitions=1"
    if (( major >= 4 )); then
      echo "share.coordinator.state.topic.replication.factor=1"
      echo "share.coordinator.state.topic.min.isr=1"
    fi
    echo "group.initial.rebalance.delay.ms=0"
    echo "group.min.session.timeout.ms=1000"
    echo "auto.create.topics.enable=false"
    echo "delete.topic.enable=true"
    echo "num.network.threads=2"
    echo "num.io.threads=4"
    echo "background.threads=4"
    echo "num.recovery.threads.per.data.dir=1"
    echo "log.retention.check.interval.ms=300000"
    local kv
    for kv in "$@"; do echo "$kv"; done
  } >"$KDIR/server.properties"
}

write_log_config() { # $1 = major version
  if (( $1 >= 4 )); then
    cat >"$KDIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = \${sys:mvrepair.kafka.logfile}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
  else
    cat >"$KDIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=\${mvrepair.kafka.logfile}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  fi
}

log_opts() { # $1 = major version, $2 = log file
  if (( $1 >= 4 )); then
    printf '%s\n' "-Dlog4j2.configurationFile=$KDIR/log4j2.properties"
  else
    printf '%s\n' "-Dlog4j.configuration=file:$KDIR/log4j.properties"
  fi
  printf '%s\n' "-Dmvrepair.kafka.logfile=$2"
}

# launch_broker VERSION LIBS MAJOR PORT CPORT PROBE_PORT: start the broker of
# $KDIR/server.properties in the background (its data dir as it is: start
# formats it first, restart does not) and wait until it serves requests.
# Sets pid; exits non-zero (with the last log lines) on failure.
launch_broker() {
  local version=$1 libs=$2 major=$3 port=$4 cport=$5 probe_port=$6 o
  # Minimal JVM flags, in the spirit of kafka-run-class.sh, sized for CI.
  local -a jvm=()
  read -r -a jvm <<<"$HEAP_OPTS"
  jvm+=(
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    "-Dkafka.logs.dir=$KDIR/logs"
  )
  while IFS= read -r o; do jvm+=("$o"); done < <(log_opts "$major" "$KDIR/logs/server.log")
  local -a extra_opts=()
  read -r -a extra_opts <<<"${MVREPAIR_KAFKA_JAVA_OPTS:-}"
  jvm+=(${extra_opts[@]+"${extra_opts[@]}"})

  # server.log is appended to across restarts: look for the start line
  # only in what this run writes.
  local log_from=0
  [[ -f $KDIR/logs/server.log ]] && log_from=$(stat -c %s "$KDIR/logs/server.log")
  log "starting Kafka $version (KRaft, broker+controller) on 127.0.0.1:$port, controller 127.0.0.1:$cport"
  nohup "$JAVA" "${jvm[@]}" -cp "$libs/*" kafka.Kafka "$KDIR/server.properties" \
    </dev/null >"$KDIR/kafka.out" 2>&1 &
  pid=$!
  echo "$pid" >"$PID_FILE"
  disown "$pid" 2>/dev/null || true

  local deadline=$((SECONDS + START_TIMEOUT)) started=0
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup"
      show_failure_logs
      rm -f "$PID_FILE"
      exit 1
    fi
    if (( !started )) && { tail -c +$((log_from + 1)) "$KDIR/logs/server.log" 2>/dev/null; cat "$KDIR/kafka.out" 2>/dev/null; } |
        grep -qE 'Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)'; then
      started=1
    fi
    if (( started == 1 )) && kafka_probe "$probe_port"; then
      started=2
    fi
    if (( started == 2 )) && group_coordinator_ready "$probe_port"; then
      started=3
    fi
    if (( started == 3 )) && { [[ $SECURITY == plaintext ]] || tls_probe "$port"; }; then
      break
    fi
    if (( SECONDS >= deadline )); then
      log "broker not ready after ${START_TIMEOUT}s"
      show_failure_logs
      stop_pid "$pid"
      exit 1
    fi
    sleep 0.25
  done
}

cmd_start() {
  local version="${MVREPAIR_KAFKA_VERSION:-$DEFAULT_VERSION}"
  local port="${MVREPAIR_KAFKA_PORT:-${PORT:-19092}}"
  local cport="${MVREPAIR_KAFKA_CONTROLLER_PORT:-}"
  local tls_dir=""
  local -a overrides=()
  while (( $# )); do
    case "$1" in
      --version) [[ $# -ge 2 ]] || die "--version needs a value"; version=$2; shift 2 ;;
      --version=*) version=${1#*=}; shift ;;
      --port) [[ $# -ge 2 ]] || die "--port needs a value"; port=$2; shift 2 ;;
      --port=*) port=${1#*=}; shift ;;
      --controller-port) [[ $# -ge 2 ]] || die "--controller-port needs a value"; cport=$2; shift 2 ;;
      --controller-port=*) cport=${1#*=}; shift ;;
      --set) [[ $# -ge 2 && $2 == *=* ]] || die "--set needs KEY=VALUE"; overrides+=("$2"); shift 2 ;;
      --set=*) overrides+=("${1#*=}"); shift ;;
      --security) [[ $# -ge 2 ]] || die "--security needs a value"; SECURITY=$2; shift 2 ;;
      --security=*) SECURITY=${1#*=}; shift ;;
      --internal-port) [[ $# -ge 2 ]] || die "--internal-port needs a value"; IPORT=$2; shift 2 ;;
      --internal-port=*) IPORT=${1#*=}; shift ;;
      --tls-dir) [[ $# -ge 2 ]] || die "--tls-dir needs a value"; tls_dir=$2; shift 2 ;;
      --tls-dir=*) tls_dir=${1#*=}; shift ;;
      --sasl-user) [[ $# -ge 2 ]] || die "--sasl-user needs a value"; SASL_USER=$2; shift 2 ;;
      --sasl-user=*) SASL_USER=${1#*=}; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown start option: $1" ;;
    esac
  done
  if ! [[ $port =~ ^[0-9]+$ ]] || (( port < 1 || port > 65535 )); then
    die "bad port: $port"
  fi
  cport=${cport:-$((port + 1))}
  if ! [[ $cport =~ ^[0-9]+$ ]] || (( cport < 1 || cport > 65535 || cport == port )); then
    die "bad controller port: $cport"
  fi
  SECURITY=${SECURITY,,}
  case $SECURITY in
    plaintext) IPORT="" ;;
    sasl_ssl|ssl)
      IPORT=${IPORT:-$((port + 2))}
      if ! [[ $IPORT =~ ^[0-9]+$ ]] || (( IPORT < 1 || IPORT > 65535 || IPORT == port || IPORT == cport )); then
        die "bad internal port: $IPORT"
      fi
      [[ $SASL_USER =~ ^[A-Za-z0-9._-]+$ ]] || die "bad SASL user name: $SASL_USER (want [A-Za-z0-9._-])"
      [[ -x $GEN_CERTS ]] || die "$GEN_CERTS not found (needed for --security $SECURITY)"
      ;;
    *) die "bad --security: $SECURITY (want plaintext, sasl_ssl or ssl)" ;;
  esac
  # the port that answers plain Kafka requests (readiness probes)
  local probe_port=${IPORT:-$port}
  version=$(resolve_version_alias "$version")
  [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([.-][A-Za-z0-9.-]+)?$ ]] || die "bad version: $version"
  local major=${version%%.*} minor=${version#*.}
  minor=${minor%%.*}
  (( major > 3 || (major == 3 && minor >= 3) )) || die "Kafka $version: only 3.3+ (KRaft production-ready) is supported"

  local pid
  if pid=$(running_pid); then
    if [[ $(state_get version) == "$version" && $(state_get port) == "$port" && $(state_get security) == "$SECURITY" ]]; then
      echo "kafka broker $version listening on 127.0.0.1:$port (already running, pid $pid)"
      [[ $SECURITY == plaintext ]] || print_client_settings
      return 0
    fi
    die "a broker is already running (pid $pid, $(state_get version) on port $(state_get port), $(state_get security)); run '$0 stop' first"
  fi

  command -v "$JAVA" >/dev/null 2>&1 || die "java not found"
  local jv
  jv=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  if (( major >= 4 )) && [[ -n $jv ]] && (( ${jv%%.*} < 17 )); then
    die "Kafka $version needs Java 17+, found $jv"
  fi

  local libs tool t0 t1
  t0=$(date +%s.%N)
  libs=$(ensure_libs "$version")
  tool=$(storage_tool_class "$libs")

  port_in_use "$port" && die "127.0.0.1:$port is already in use"
  port_in_use "$cport" && die "127.0.0.1:$cport (controller) is already in use"
  [[ -n $IPORT ]] && port_in_use "$IPORT" && die "127.0.0.1:$IPORT (internal listener) is already in use"

  prepare_dir
  if [[ $SECURITY != plaintext ]]; then
    TLS_DIR=${tls_dir:-$KDIR/tls}
    if ! "$GEN_CERTS" "$TLS_DIR" 2>"$KDIR/logs/gen-certs.log"; then
      show_failure_logs "$KDIR/logs/gen-certs.log"
      die "deploy/gen-certs.sh failed"
    fi
    TLS_DIR=$(cd "$TLS_DIR" && pwd)
    [[ -s $TLS_DIR/broker.truststore.p12 ]] || die "$TLS_DIR/broker.truststore.p12 missing (needs keytool or openssl 3.2+)"
  fi
  (umask 077; write_server_properties "$major" "$port" "$cport" ${overrides[@]+"${overrides[@]}"})
  write_log_config "$major"
  printf 'version=%s\nport=%s\ncontroller_port=%s\nlibs=%s\nsecurity=%s\nprobe_port=%s\ntls_dir=%s\nsasl_user=%s\n' \
    "$version" "$port" "$cport" "$libs" "$SECURITY" "$probe_port" "$TLS_DIR" "$SASL_USER" >"$STATE_FILE"

  local cluster_id
  cluster_id=$(random_cluster_id)
  local -a fmt=(format -t "$cluster_id" -c "$KDIR/server.properties")
  (( major >= 4 )) && fmt+=(--standalone)
  if [[ $SECURITY == sasl_ssl ]]; then
    # SCRAM credentials go into the bootstrap metadata (KIP-900, Kafka 3.5+):
    # the user exists before the first client connects. The password is on
    # this short-lived command line only (the log below does not show it).
    local pw
    pw=$(<"$TLS_DIR/sasl.password")
    fmt+=(--add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$pw]"
          --add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$pw]")
  fi
  log "formatting $KDIR/data (cluster id $cluster_id) with $tool"
  local -a fmt_jvm=(-Xmx256m -XX:TieredStopAtLevel=1)
  local o
  while IFS= read -r o; do fmt_jvm+=("$o"); done < <(log_opts "$major" "$KDIR/logs/storage-format.log")
  if ! "$JAVA" "${fmt_jvm[@]}" -cp "$libs/*" "$tool" "${fmt[@]}" >"$KDIR/format.log" 2>&1; then
    log "storage format failed"
    show_failure_logs "$KDIR/format.log" "$KDIR/logs/storage-format.log"
    exit 1
  fi

  launch_broker "$version" "$libs" "$major" "$port" "$cport" "$probe_port"
  t1=$(date +%s.%N)
  log "ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')s (pid $pid, logs in $KDIR/logs)"
  if [[ $SECURITY == plaintext ]]; then
    echo "kafka broker $version listening on 127.0.0.1:$port"
  else
    echo "kafka broker $version listening on 127.0.0.1:$port ($(client_listener))"
    write_client_files "$port"
    print_client_settings
  fi
}

# tls_probe PORT: a TLS handshake with the broker's listener verifies against
# the CA (and, for --security ssl, presents the client certificate).
tls_probe() { # $1 = port
  command -v openssl >/dev/null 2>&1 || return 0
  local -a a=(-connect "127.0.0.1:$1" -CAfile "$TLS_DIR/ca.pem" -verify_return_error -verify_ip 127.0.0.1)
  [[ $SECURITY == ssl ]] && a+=(-cert "$TLS_DIR/client.pem" -key "$TLS_DIR/client.key")
  timeout 10 openssl s_client "${a[@]}" </dev/null >/dev/null 2>&1
}

# write_client_files PORT: the settings a client of the secured listener
# needs, as MVREPAIR_* variables (client.env), as the KAFKA_* variables the
# integration tests read (test.env, with the password: mode 0600), and as a
# Java client properties file (client.properties, also 0600).
write_client_files() { # $1 = port
  local port=$1 proto pw=""
  proto=$(client_listener)
  [[ $SECURITY == sasl_ssl ]] && pw=$(<"$TLS_DIR/sasl.password")
  {
    echo "MVREPAIR_KAFKA_BROKERS=127.0.0.1:$port"
    echo "MVREPAIR_KAFKA_TLS_ENABLED=true"
    echo "MVREPAIR_KAFKA_TLS_CA_FILE=$TLS_DIR/ca.pem"
    if [[ $SECURITY == ssl ]]; then
      echo "MVREPAIR_KAFKA_TLS_CERT_FILE=$TLS_DIR/client.pem"
      echo "MVREPAIR_KAFKA_TLS_KEY_FILE=$TLS_DIR/client.key"
    else
      echo "MVREPAIR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
      echo "MVREPAIR_KAFKA_SASL_USERNAME=$SASL_USER"
      echo "MVREPAIR_KAFKA_SASL_PASSWORD_FILE=$TLS_DIR/sasl.password"
    fi
  } >"$KDIR/client.env"
  (
    umask 077
    {
      echo "KAFKA_BROKERS=127.0.0.1:$port"
      echo "KAFKA_SECURITY_PROTOCOL=$proto"
      echo "KAFKA_TLS_CA_FILE=$TLS_DIR/ca.pem"
      if [[ $SECURITY == ssl ]]; then
        echo "KAFKA_TLS_CERT_FILE=$TLS_DIR/client.pem"
        echo "KAFKA_TLS_KEY_FILE=$TLS_DIR/client.key"
      else
        echo "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
        echo "KAFKA_SASL_USERNAME=$SASL_USER"
        echo "KAFKA_SASL_PASSWORD=$pw"
      fi
    } >"$KDIR/test.env"
    {
      echo "bootstrap.servers=127.0.0.1:$port"
      echo "security.protocol=$proto"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$TLS_DIR/ca.pem"
      if [[ $SECURITY == ssl ]]; then
        echo "ssl.keystore.type=PKCS12"
        echo "ssl.keystore.location=$TLS_DIR/client.keystore.p12"
        echo "ssl.keystore.password=$(<"$TLS_DIR/keystore.password")"
      else
        echo "sasl.mechanism=SCRAM-SHA-512"
        echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$SASL_USER\" password=\"$pw\";"
      fi
    } >"$KDIR/client.properties"
  )
}

print_client_settings() {
  echo "client settings (also in $KDIR/client.env; KAFKA_* test variables in $KDIR/test.env):"
  sed 's/^/  /' "$KDIR/client.env"
}

stop_pid() { # $1 = pid
  local p=$1 i
  kill -CONT "$p" 2>/dev/null || true   # a paused broker cannot act on SIGTERM
  kill -TERM "$p" 2>/dev/null || true
  for (( i = 0; i < 300; i++ )); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$p" 2>/dev/null; then
    log "broker $p did not stop within 30s; sending SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
    for (( i = 0; i < 50; i++ )); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$PID_FILE"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    log "stopping broker (pid $pid)"
    stop_pid "$pid"
    echo "kafka broker stopped"
  else
    rm -f "$PID_FILE"
    echo "kafka broker not running"
  fi
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    local port
    local pport sec
    port=$(state_get port)
    pport=$(state_get probe_port) || true
    sec=$(state_get security) || true
    if kafka_probe "${pport:-$port}"; then
      echo "kafka broker $(state_get version) running (pid $pid) on 127.0.0.1:$port (${sec:-plaintext})"
      return 0
    fi
    echo "kafka broker $(state_get version) process running (pid $pid) but 127.0.0.1:$port does not answer"
    return 1
  fi
  echo "kafka broker not running"
  return 1
}

cmd_kill9() {
  local pid i
  pid=$(running_pid) || die "no broker running (nothing to kill)"
  kill -KILL "$pid" 2>/dev/null || true
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && die "broker $pid still alive 10s after SIGKILL"
  rm -f "$PID_FILE"
  echo "kafka broker killed (SIGKILL, pid $pid); data kept in $KDIR/data"
}

cmd_restart() {
  local pid version port cport libs probe_port major t0 t1
  [[ -f $STATE_FILE && -f $KDIR/server.properties && -d $KDIR/data ]] ||
    die "no broker to restart in $KDIR (run '$0 start' first)"
  if pid=$(running_pid); then
    log "stopping broker (pid $pid) before the restart"
    stop_pid "$pid"
  fi
  version=$(state_get version); port=$(state_get port); cport=$(state_get controller_port)
  libs=$(state_get libs); probe_port=$(state_get probe_port)
  SECURITY=$(state_get security); TLS_DIR=$(state_get tls_dir)
  [[ -f $libs/.complete ]] || die "the jars of Kafka $version are gone from $libs"
  major=${version%%.*}
  port_in_use "$port" && die "127.0.0.1:$port is already in use"
  port_in_use "$cport" && die "127.0.0.1:$cport (controller) is already in use"
  t0=$(date +%s.%N)
  launch_broker "$version" "$libs" "$major" "$port" "$cport" "$probe_port"
  t1=$(date +%s.%N)
  log "ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')s (pid $pid, logs in $KDIR/logs)"
  echo "kafka broker $version restarted on 127.0.0.1:$port (data kept)"
}

cmd_signal() { # $1 = STOP|CONT, $2 = what it does (for the message)
  local pid
  pid=$(running_pid) || die "no broker running"
  kill -"$1" "$pid" || die "cannot send SIG$1 to $pid"
  echo "kafka broker $2 (SIG$1, pid $pid)"
}

main() {
  local cmd=${1:-}
  (( $# )) && shift
  case "$cmd" in
    start)    cmd_start "$@" ;;
    stop)     cmd_stop ;;
    status)   cmd_status ;;
    versions) cmd_versions ;;
    kill9)    cmd_kill9 ;;
    restart)  cmd_restart ;;
    pause)    cmd_signal STOP paused ;;
    resume)   cmd_signal CONT resumed ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
