#!/usr/bin/env bash
# kafka-sasl-entrypoint.sh - entrypoint of the kafka service of
# docker-compose.sasl.yml: creates the SCRAM user with Kafka's own tool, then
# hands over to the apache/kafka image's start script.
#
# The apache/kafka image formats its KRaft log dir itself, without users.
# This script formats it first, adding the SCRAM-SHA-512 credentials of
# $SCRAM_USERNAME (password from $SCRAM_PASSWORD_FILE, a compose secret) to
# the bootstrap metadata (`kafka-storage format --add-scram`, KIP-900): the
# user exists before the broker accepts its first connection, and no admin
# credential or plaintext listener is needed to create it. The image's own
# format step then finds the dir formatted and goes on. An already formatted
# dir (a restart) is left alone (--ignore-formatted): change the password with
# kafka-configs.sh --alter --add-config 'SCRAM-SHA-512=[password=...]'.
#
# Environment (besides the image's KAFKA_* settings):
#   CLUSTER_ID           the KRaft cluster id (required, as for the image)
#   KAFKA_NODE_ID, KAFKA_PROCESS_ROLES, KAFKA_CONTROLLER_QUORUM_VOTERS,
#   KAFKA_CONTROLLER_LISTENER_NAMES, KAFKA_LISTENERS,
#   KAFKA_LISTENER_SECURITY_PROTOCOL_MAP, KAFKA_LOG_DIRS
#                        read to write the format step's properties
#   SCRAM_USERNAME       user to create (default mvrepair)
#   SCRAM_PASSWORD_FILE  its password (default /run/secrets/mvrepair_sasl_password);
#                        one trailing newline is ignored
#   STORAGE_CMD          kafka-storage.sh (default /opt/kafka/bin/kafka-storage.sh)
#   RUN_CMD              what to exec afterwards (default /etc/kafka/docker/run)
set -euo pipefail

log() { printf 'kafka-sasl-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

storage_cmd=${STORAGE_CMD:-/opt/kafka/bin/kafka-storage.sh}
run_cmd=${RUN_CMD:-/etc/kafka/docker/run}
user=${SCRAM_USERNAME:-mvrepair}
pw_file=${SCRAM_PASSWORD_FILE:-/run/secrets/mvrepair_sasl_password}

[[ -n ${CLUSTER_ID:-} ]] || die "CLUSTER_ID is not set"
[[ $user =~ ^[A-Za-z0-9._-]+$ ]] || die "SCRAM_USERNAME must be [A-Za-z0-9._-]+ (got '$user')"
[[ -r $pw_file ]] || die "cannot read SCRAM_PASSWORD_FILE $pw_file (is the compose secret there and readable? gen-certs.sh --for-containers)"
pw=$(<"$pw_file") # $(...) drops trailing newlines
[[ -n $pw ]] || die "SCRAM_PASSWORD_FILE $pw_file is empty"
case $pw in
*[\]\",=]* | *[[:space:]]*) die "the password in $pw_file must not contain spaces or any of ] \" , = (the --add-scram syntax)" ;;
esac

props=$(mktemp)
trap 'rm -f "$props"' EXIT
{
	echo "process.roles=${KAFKA_PROCESS_ROLES:?}"
	echo "node.id=${KAFKA_NODE_ID:?}"
	echo "controller.quorum.voters=${KAFKA_CONTROLLER_QUORUM_VOTERS:?}"
	echo "controller.listener.names=${KAFKA_CONTROLLER_LISTENER_NAMES:?}"
	echo "listeners=${KAFKA_LISTENERS:?}"
	echo "listener.security.protocol.map=${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:?}"
	echo "inter.broker.listener.name=${KAFKA_INTER_BROKER_LISTENER_NAME:-PLAINTEXT}"
	echo "log.dirs=${KAFKA_LOG_DIRS:?}"
} >"$props"

log "formatting ${KAFKA_LOG_DIRS} with SCRAM-SHA-512 user $user (skipped if already formatted)"
"$storage_cmd" format --ignore-formatted --cluster-id "$CLUSTER_ID" -c "$props" \
	--add-scram "SCRAM-SHA-512=[name=$user,password=$pw]" >/dev/null ||
	die "kafka-storage format failed"
rm -f "$props"
trap - EXIT
unset pw
exec "$run_cmd" "$@"
