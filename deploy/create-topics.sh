#!/bin/sh
# create-topics.sh - create the four topics mvrepair uses, once, before the
# consumers start (the topic-init service of docker-compose.yml).
#
# It creates what service.TopicSpecs would (DESIGN.md §6-§7), so the consumers
# can run with MVREPAIR_KAFKA_CREATE_TOPICS=false:
#   input, catalog, DLQ  kafka.partitions partitions
#   edit log             1 partition (the journal is one total order),
#                        retention.ms = kafka.edit_log_retention_ms (-1: forever),
#                        cleanup.policy=delete
# all with kafka.replication_factor. Existing topics are left alone
# (--if-not-exists), but an edit log with more than one partition is an error.
#
# Configuration: the consumer's own variables, with the consumer's defaults.
#   MVREPAIR_KAFKA_BROKERS                 bootstrap brokers (required)
#   MVREPAIR_KAFKA_PARTITIONS              default 6
#   MVREPAIR_KAFKA_REPLICATION_FACTOR      default 1
#   MVREPAIR_KAFKA_EDIT_LOG_RETENTION_MS   default -1
#   MVREPAIR_KAFKA_TOPICS_INPUT            default partition-version-changed
#   MVREPAIR_KAFKA_TOPICS_CATALOG          default mv-catalog
#   MVREPAIR_KAFKA_TOPICS_EDIT_LOG         default mv-edit-log
#   MVREPAIR_KAFKA_TOPICS_DLQ              default mv-repair-dlq
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

log() { printf 'topic-init: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $brokers in
'') die "MVREPAIR_KAFKA_BROKERS is not set" ;;
embedded) die "MVREPAIR_KAFKA_BROKERS=embedded: there is no broker to create topics on" ;;
esac

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
	retry "$topics_cmd" --bootstrap-server "$brokers" --create --if-not-exists \
		--topic "$name" --partitions "$parts" --replication-factor "$replication_factor" "$@" ||
		die "could not create topic $name"
}

create "$input" "$partitions"
create "$catalog" "$partitions"
create "$edit_log" 1 --config "retention.ms=$retention_ms" --config cleanup.policy=delete
create "$dlq" "$partitions"

# An edit log created earlier with several partitions would have no total
# order; the consumer refuses it, so fail here, where it is clearer.
description=$(retry "$topics_cmd" --bootstrap-server "$brokers" --describe --topic "$edit_log") ||
	die "could not describe topic $edit_log"
count=$(printf '%s\n' "$description" | sed -n 's/.*PartitionCount:[[:space:]]*\([0-9][0-9]*\).*/\1/p' | head -n 1)
if [ "$count" != 1 ]; then
	die "edit-log topic $edit_log has ${count:-an unknown number of} partitions; the journal needs exactly 1 (delete it or choose another MVREPAIR_KAFKA_TOPICS_EDIT_LOG)"
fi
log "topics ready: $input $catalog $edit_log $dlq"
