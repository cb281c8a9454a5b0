#!/bin/sh
# create-topics.sh - create the five topics mvrepair uses, once, before the
# consumers start (the topic-init service of docker-compose.yml).
#
# It creates what service.TopicSpecs would (docs/design.md §6-§7), so the consumers
# can run with MVREPAIR_KAFKA_CREATE_TOPICS=false:
#   input, catalog, DLQ  kafka.partitions partitions
#   edit log             1 partition (the journal is one total order),
#                        retention.ms = kafka.edit_log_retention_ms (-1: forever),
#                        cleanup.policy=delete, max.message.bytes =
#                        kafka.edit_log_max_message_bytes (an MV with 10k
#                        partitions must journal)
#   snapshots            1 partition, cleanup.policy=compact (checkpoints:
#                        the latest record per MV), the same record limit
# all with kafka.replication_factor. Existing topics are left alone
# (--if-not-exists), but an edit log with more than one partition is an error.
#
# Configuration: the consumer's own variables, with the consumer's defaults.
#   MVREPAIR_KAFKA_BROKERS                 bootstrap brokers (required)
#   MVREPAIR_KAFKA_PARTITIONS              default 6
#   MVREPAIR_KAFKA_REPLICATION_FACTOR      default 1
#   MVREPAIR_KAFKA_EDIT_LOG_RETENTION_MS   default -1
#   MVREPAIR_KAFKA_EDIT_LOG_MAX_MESSAGE_BYTES  default 16777216
#   MVREPAIR_KAFKA_TOPICS_INPUT            default partition-version-changed
#   MVREPAIR_KAFKA_TOPICS_CATALOG          default mv-catalog
#   MVREPAIR_KAFKA_TOPICS_EDIT_LOG         default mv-edit-log
#   MVREPAIR_KAFKA_TOPICS_DLQ              default mv-repair-dlq
#   MVREPAIR_KAFKA_TOPICS_SNAPSHOTS        default mv-snapshots
# and, for a secured cluster, the consumer's connection settings, turned into
# a Java client properties file passed as --command-config:
#   MVREPAIR_KAFKA_TLS_ENABLED             true: SSL or SASL_SSL
#   MVREPAIR_KAFKA_TLS_CA_FILE             PEM truststore (else the JVM's CAs)
#   MVREPAIR_KAFKA_TLS_CERT_FILE, MVREPAIR_KAFKA_TLS_KEY_FILE
#                                          client certificate (mTLS)
#   MVREPAIR_KAFKA_SASL_MECHANISM          none (default), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
#   MVREPAIR_KAFKA_SASL_USERNAME
#   MVREPAIR_KAFKA_SASL_PASSWORD_FILE      (or MVREPAIR_KAFKA_SASL_PASSWORD)
# (MVREPAIR_KAFKA_TLS_INSECURE_SKIP_VERIFY is refused: the Java tool cannot
# skip verification; MVREPAIR_KAFKA_TLS_SERVER_NAME is not used.)
#   TOPICS_CMD       kafka-topics.sh to run (default /opt/kafka/bin/kafka-topics.sh)
#   TOPICS_ATTEMPTS  tries per kafka-topics.sh call (default 5)
#   TOPICS_RETRY_SECONDS  pause between tries (default 3)
#
# POSIX sh: the apache/kafka image is Alpine-based (busybox sh).
set -eu

topics_cmd=${TOPICS_CMD:-/opt/kafka/bin/kafka-topics.sh}
attempts=${TOPICS_ATTEMPTS:-5}
retry_seconds=${TOPICS_RETRY_SECONDS:-3}

brokers=$(printf '%s' "${MVREPAIR_KAFKA_BROKERS:-}" | tr -d ' \t')
partitions=${MVREPAIR_KAFKA_PARTITIONS:-6}
replication_factor=${MVREPAIR_KAFKA_REPLICATION_FACTOR:-1}
retention_ms=${MVREPAIR_KAFKA_EDIT_LOG_RETENTION_MS:--1}
input=${MVREPAIR_KAFKA_TOPICS_INPUT:-partition-version-changed}
catalog=${MVREPAIR_KAFKA_TOPICS_CATALOG:-mv-catalog}
edit_log=${MVREPAIR_KAFKA_TOPICS_EDIT_LOG:-mv-edit-log}
dlq=${MVREPAIR_KAFKA_TOPICS_DLQ:-mv-repair-dlq}
snapshots=${MVREPAIR_KAFKA_TOPICS_SNAPSHOTS:-mv-snapshots}
max_bytes=${MVREPAIR_KAFKA_EDIT_LOG_MAX_MESSAGE_BYTES:-16777216}

log() { printf 'topic-init: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $brokers in
'') die "MVREPAIR_KAFKA_BROKERS is not set" ;;
embedded) die "MVREPAIR_KAFKA_BROKERS=embedded: there is no broker to create topics on" ;;
esac

# ---- connection security: a --command-config file for kafka-topics.sh ----
tls=$(printf '%s' "${MVREPAIR_KAFKA_TLS_ENABLED:-false}" | tr 'A-Z' 'a-z')
mechanism=${MVREPAIR_KAFKA_SASL_MECHANISM:-none}
case $tls in
true | 1 | t) tls=true ;;
false | 0 | f | '') tls=false ;;
*) die "MVREPAIR_KAFKA_TLS_ENABLED=$tls: want true or false" ;;
esac
case $mechanism in
none | PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512) ;;
*) die "MVREPAIR_KAFKA_SASL_MECHANISM=$mechanism: want none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" ;;
esac
case $(printf '%s' "${MVREPAIR_KAFKA_TLS_INSECURE_SKIP_VERIFY:-false}" | tr 'A-Z' 'a-z') in
true | 1 | t) die "MVREPAIR_KAFKA_TLS_INSECURE_SKIP_VERIFY is not supported by topic-init; give it the CA (MVREPAIR_KAFKA_TLS_CA_FILE)" ;;
esac

# pem_value FILE: the file as one properties value (newlines as \n).
pem_value() {
	awk '{ printf "%s\\n", $0 }' "$1"
}

# props_escape: escape stdin for a Java properties value.
props_escape() { sed 's/\\/\\\\/g'; }

command_config=
if [ "$tls" = true ] || [ "$mechanism" != none ]; then
	command_config=$(mktemp "${TMPDIR:-/tmp}/topic-init.XXXXXX")
	trap 'rm -f "$command_config"' EXIT
	trap 'exit 1' HUP INT TERM
	chmod 600 "$command_config"
	if [ "$tls" = true ]; then
		protocol=SSL
		[ "$mechanism" != none ] && protocol=SASL_SSL
	else
		protocol=SASL_PLAINTEXT
	fi
	{
		printf '%s\n' "security.protocol=$protocol"
		if [ "$tls" = true ] && [ -n "${MVREPAIR_KAFKA_TLS_CA_FILE:-}" ]; then
			[ -r "$MVREPAIR_KAFKA_TLS_CA_FILE" ] || die "cannot read MVREPAIR_KAFKA_TLS_CA_FILE $MVREPAIR_KAFKA_TLS_CA_FILE"
			printf '%s\n' "ssl.truststore.type=PEM"
			printf '%s\n' "ssl.truststore.location=$MVREPAIR_KAFKA_TLS_CA_FILE"
		fi
		if [ "$tls" = true ] && [ -n "${MVREPAIR_KAFKA_TLS_CERT_FILE:-}${MVREPAIR_KAFKA_TLS_KEY_FILE:-}" ]; then
			[ -n "${MVREPAIR_KAFKA_TLS_CERT_FILE:-}" ] && [ -n "${MVREPAIR_KAFKA_TLS_KEY_FILE:-}" ] ||
				die "set both MVREPAIR_KAFKA_TLS_CERT_FILE and MVREPAIR_KAFKA_TLS_KEY_FILE"
			for f in "$MVREPAIR_KAFKA_TLS_CERT_FILE" "$MVREPAIR_KAFKA_TLS_KEY_FILE"; do
				[ -r "$f" ] || die "cannot read $f"
			done
			printf '%s\n' "ssl.keystore.type=PEM"
			printf '%s\n' "ssl.keystore.certificate.chain=$(pem_value "$MVREPAIR_KAFKA_TLS_CERT_FILE")"
			printf '%s\n' "ssl.keystore.key=$(pem_value "$MVREPAIR_KAFKA_TLS_KEY_FILE")"
		fi
		if [ "$mechanism" != none ]; then
			user=${MVREPAIR_KAFKA_SASL_USERNAME:-}
			[ -n "$user" ] || die "MVREPAIR_KAFKA_SASL_USERNAME is not set"
			if [ -n "${MVREPAIR_KAFKA_SASL_PASSWORD_FILE:-}" ]; then
				[ -r "$MVREPAIR_KAFKA_SASL_PASSWORD_FILE" ] || die "cannot read MVREPAIR_KAFKA_SASL_PASSWORD_FILE $MVREPAIR_KAFKA_SASL_PASSWORD_FILE"
				password=$(cat "$MVREPAIR_KAFKA_SASL_PASSWORD_FILE")
			else
				password=${MVREPAIR_KAFKA_SASL_PASSWORD:-}
			fi
			[ -n "$password" ] || die "no SASL password (MVREPAIR_KAFKA_SASL_PASSWORD_FILE or MVREPAIR_KAFKA_SASL_PASSWORD)"
			case $mechanism in
			PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
			*) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
			esac
			# JAAS quoting (\ and "), then properties escaping (\).
			jaas_user=$(printf '%s' "$user" | sed 's/[\\"]/\\&/g')
			jaas_password=$(printf '%s' "$password" | sed 's/[\\"]/\\&/g')
			printf '%s\n' "sasl.mechanism=$mechanism"
			printf '%s\n' "sasl.jaas.config=$module required username=\"$jaas_user\" password=\"$jaas_password\";" | props_escape
		fi
	} >"$command_config"
	log "connecting with security.protocol=$protocol (SASL mechanism $mechanism)"
fi

# retry CMD...: run CMD up to $attempts times (the broker may still be
# electing its controller right after it reports healthy).
retry() {
	n=1
	until "$@"; do
		if [ "$n" -ge "$attempts" ]; then
			return 1
		fi
		log "attempt $n of $attempts failed; retrying in ${retry_seconds}s"
		n=$((n + 1))
		sleep "$retry_seconds"
	done
}

# create NAME PARTITIONS [--config K=V]...
create() {
	name=$1
	parts=$2
	shift 2
	log "creating $name (partitions=$parts, replication-factor=$replication_factor${*:+, $*}) if it does not exist"
	retry "$topics_cmd" --bootstrap-server "$brokers" ${command_config:+--command-config "$command_config"} --create --if-not-exists \
		--topic "$name" --partitions "$parts" --replication-factor "$replication_factor" "$@" ||
		die "could not create topic $name"
}

create "$input" "$partitions"
create "$catalog" "$partitions"
create "$edit_log" 1 --config "retention.ms=$retention_ms" --config cleanup.policy=delete --config "max.message.bytes=$max_bytes"
create "$dlq" "$partitions"
create "$snapshots" 1 --config cleanup.policy=compact --config "max.message.bytes=$max_bytes" \
	--config min.cleanable.dirty.ratio=0.1 --config segment.ms=3600000

# An edit log created earlier with several partitions would have no total
# order; the consumer refuses it, so fail here, where it is clearer.
description=$(retry "$topics_cmd" --bootstrap-server "$brokers" ${command_config:+--command-config "$command_config"} --describe --topic "$edit_log") ||
	die "could not describe topic $edit_log"
count=$(printf '%s\n' "$description" | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
if [ "$count" != 1 ]; then
	die "edit-log topic $edit_log has ${count:-an unknown number of} partitions; the journal needs exactly 1 (delete it or choose another MVREPAIR_KAFKA_TOPICS_EDIT_LOG)"
fi
log "topics ready: $input $catalog $edit_log $dlq $snapshots"
