#!/usr/bin/env bash
# gen-certs.sh - the TLS material and dev secrets of a secured Kafka for
# mvrepair: a private CA, a broker certificate, a client certificate for
# mutual TLS, the broker's PKCS12 keystore and truststore, and a random SASL
# password. Used by docker-compose.sasl.yml and scripts/kafka-broker.sh
# --security; for development and CI, not for production PKI.
#
# Usage:
#   deploy/gen-certs.sh [options] OUT_DIR
#
# Options:
#   --san NAME|IP       extra subject alternative name of the broker
#                       certificate (repeatable); localhost, 127.0.0.1 and
#                       kafka (the compose service) are always included.
#   --client-cn NAME    CN of the client certificate (default mvrepair): the
#                       principal "CN=NAME" a broker sees for mTLS clients.
#   --days N            validity of new certificates (default 825).
#   --for-containers    make the secrets (private keys, keystores, passwords)
#                       mode 0644 instead of 0600: Compose mounts files with
#                       their host owner and mode, and the containers run as
#                       other users (kafka as appuser, the consumer as 65532).
#   --force             regenerate everything, even valid files.
#   -h, --help          this text.
#
# Files in OUT_DIR (PEM keys are unencrypted PKCS#8):
#   ca.pem ca.key                   the CA (clients trust ca.pem)
#   broker.pem broker.key           broker certificate (serverAuth, clientAuth)
#   client.pem client.key           client certificate (clientAuth)
#   broker.keystore.p12             broker key + certificate chain (PKCS12)
#   client.keystore.p12             client key + certificate chain (PKCS12,
#                                   for Java clients of an mTLS listener)
#   broker.truststore.p12           the CA as a trusted entry (PKCS12; needs
#                                   keytool or openssl >= 3.2)
#   keystore.password               password of both PKCS12 stores and the key
#   sasl.password                   random password for the SASL user of the
#                                   dev broker / compose stack
#
# Idempotent: an existing set is kept when every certificate chains to ca.pem,
# is valid for at least another day and the broker certificate has every
# requested name; otherwise what is missing or stale is made again (a new CA
# re-issues everything). sasl.password and keystore.password are never
# replaced once they exist (unless --force).
#
# Needs openssl (installed with apt-get when missing and run as root) and,
# for the truststore, Java's keytool or openssl 3.2+.
set -euo pipefail

log() { printf 'gen-certs: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

days=825
client_cn=mvrepair
secret_mode=600
force=0
sans=(DNS:localhost IP:127.0.0.1 DNS:kafka)
out=
while (($#)); do
	case $1 in
	--san)
		[[ $# -ge 2 && -n $2 ]] || die "--san needs a name or an IP"
		if [[ $2 =~ ^[0-9]+(\.[0-9]+){3}$ || $2 == *:* ]]; then sans+=("IP:$2"); else sans+=("DNS:$2"); fi
		shift 2
		;;
	--client-cn)
		[[ $# -ge 2 && $2 =~ ^[A-Za-z0-9._-]+$ ]] || die "--client-cn needs a name of [A-Za-z0-9._-]"
		client_cn=$2
		shift 2
		;;
	--days)
		[[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "--days needs a positive number"
		days=$2
		shift 2
		;;
	--for-containers) secret_mode=644; shift ;;
	--force) force=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		[[ -z $out ]] || die "one output directory only (got $out and $1)"
		out=$1
		shift
		;;
	esac
done
[[ -n $out ]] || { usage >&2; exit 2; }

if ! command -v openssl >/dev/null 2>&1; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "openssl not found; installing it with apt-get"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null ||
			die "could not install openssl"
	else
		die "openssl not found (apt-get install openssl)"
	fi
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
umask 077

# Deduplicated SAN list, in a stable order.
declare -A seen=()
san_list=()
for s in "${sans[@]}"; do
	[[ -n ${seen[$s]:-} ]] && continue
	seen[$s]=1
	san_list+=("$s")
done
san_csv=$(IFS=,; printf '%s' "${san_list[*]}")

# ---------------------------------------------------------------- checks --

# valid_leaf CERT: chains to ca.pem and is valid for at least another day.
valid_leaf() {
	[[ -s $out/$1 && -s $out/${1%.pem}.key ]] || return 1
	openssl verify -CAfile "$out/ca.pem" "$out/$1" >/dev/null 2>&1 || return 1
	openssl x509 -in "$out/$1" -noout -checkend 86400 >/dev/null 2>&1 || return 1
	# the key belongs to the certificate
	[[ $(openssl x509 -in "$out/$1" -noout -pubkey) == $(openssl pkey -in "$out/${1%.pem}.key" -pubout) ]]
}

valid_ca() {
	[[ -s $out/ca.pem && -s $out/ca.key ]] || return 1
	openssl x509 -in "$out/ca.pem" -noout -checkend $((2 * 86400)) >/dev/null 2>&1 || return 1
	[[ $(openssl x509 -in "$out/ca.pem" -noout -pubkey) == $(openssl pkey -in "$out/ca.key" -pubout) ]]
}

# broker_has_sans: the broker certificate names every requested SAN.
broker_has_sans() {
	local text s name
	text=$(openssl x509 -in "$out/broker.pem" -noout -ext subjectAltName 2>/dev/null) || return 1
	for s in "${san_list[@]}"; do
		name=${s#*:}
		case $s in
		DNS:*) grep -qF "DNS:$name" <<<"$text" || return 1 ;;
		IP:*) grep -qF "IP Address:$name" <<<"$text" || return 1 ;;
		esac
	done
}

# ------------------------------------------------------------- generators --

new_key() { # $1 = path
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

make_ca() {
	log "new CA in $out/ca.pem"
	new_key "$out/ca.key.tmp"
	openssl req -new -x509 -key "$out/ca.key.tmp" -sha256 -days "$((days + 30))" -set_serial "$(serial)" \
		-subj "/O=mvrepair dev/CN=mvrepair dev CA $(date -u +%Y%m%dT%H%M%SZ)" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-out "$out/ca.pem.tmp"
	mv "$out/ca.key.tmp" "$out/ca.key"
	mv "$out/ca.pem.tmp" "$out/ca.pem"
}

# make_leaf NAME CN EKU [SAN]: NAME.pem and NAME.key signed by the CA.
make_leaf() {
	local name=$1 cn=$2 eku=$3 san=${4:-} ext
	log "new $name certificate (CN=$cn${san:+, $san})"
	new_key "$out/$name.key.tmp"
	ext=$(mktemp "$out/.ext.XXXXXX")
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$eku"
		echo "subjectKeyIdentifier=hash"
		echo "authorityKeyIdentifier=keyid"
		[[ -n $san ]] && echo "subjectAltName=$san"
	} >"$ext"
	openssl req -new -key "$out/$name.key.tmp" -subj "/O=mvrepair dev/CN=$cn" -out "$out/$name.csr.tmp"
	openssl x509 -req -in "$out/$name.csr.tmp" -CA "$out/ca.pem" -CAkey "$out/ca.key" -set_serial "$(serial)" \
		-sha256 -days "$days" -extfile "$ext" -out "$out/$name.pem.tmp" 2>/dev/null
	rm -f "$ext" "$out/$name.csr.tmp"
	mv "$out/$name.key.tmp" "$out/$name.key"
	mv "$out/$name.pem.tmp" "$out/$name.pem"
}

random_secret() { # $1 = path, $2 = hex bytes
	[[ -s $1 && $force == 0 ]] && return 0
	openssl rand -hex "$2" >"$1.tmp"
	mv "$1.tmp" "$1"
}

make_keystore() { # $1 = broker | client
	log "new $1.keystore.p12"
	openssl pkcs12 -export -in "$out/$1.pem" -inkey "$out/$1.key" -certfile "$out/ca.pem" \
		-name "$1" -passout "file:$out/keystore.password" -out "$out/$1.keystore.p12.tmp"
	mv "$out/$1.keystore.p12.tmp" "$out/$1.keystore.p12"
}

make_truststore() {
	local tmp="$out/broker.truststore.p12.tmp"
	rm -f "$tmp"
	if command -v keytool >/dev/null 2>&1; then
		keytool -importcert -noprompt -alias mvrepair-dev-ca -file "$out/ca.pem" -storetype PKCS12 \
			-keystore "$tmp" -storepass:file "$out/keystore.password" >/dev/null 2>&1 ||
			die "keytool could not write the truststore"
	elif openssl pkcs12 -help 2>&1 | grep -q -- -jdktrust; then
		openssl pkcs12 -export -nokeys -in "$out/ca.pem" -jdktrust anyExtendedKeyUsage -name mvrepair-dev-ca \
			-passout "file:$out/keystore.password" -out "$tmp"
	else
		log "warning: neither keytool nor openssl >= 3.2: no broker.truststore.p12 (a broker can use ssl.truststore.type=PEM with ca.pem)"
		return 0
	fi
	mv "$tmp" "$out/broker.truststore.p12"
	log "new broker.truststore.p12"
}

# ------------------------------------------------------------------- main --

new_ca=0
if ((force)) || ! valid_ca; then
	make_ca
	new_ca=1
fi
random_secret "$out/keystore.password" 16
random_secret "$out/sasl.password" 24

if ((new_ca)) || ! valid_leaf broker.pem || ! broker_has_sans; then
	make_leaf broker kafka "serverAuth,clientAuth" "$san_csv"
	rm -f "$out/broker.keystore.p12"
fi
if ((new_ca)) || ! valid_leaf client.pem ||
	[[ $(openssl x509 -in "$out/client.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p') != "$client_cn" ]]; then
	make_leaf client "$client_cn" clientAuth
fi
# A store is rebuilt when missing or older than what it holds (a password
# changed by --force, a new CA or broker certificate).
for who in broker client; do
	if [[ ! -s $out/$who.keystore.p12 || $out/$who.pem -nt $out/$who.keystore.p12 || $out/keystore.password -nt $out/$who.keystore.p12 ]]; then
		make_keystore "$who"
	fi
done
if [[ ! -s $out/broker.truststore.p12 || $out/ca.pem -nt $out/broker.truststore.p12 || $out/keystore.password -nt $out/broker.truststore.p12 ]]; then
	make_truststore
fi

chmod 644 "$out"/ca.pem "$out"/broker.pem "$out"/client.pem
chmod 600 "$out"/ca.key
chmod "$secret_mode" "$out"/broker.key "$out"/client.key "$out"/keystore.password "$out"/sasl.password \
	"$out"/broker.keystore.p12 "$out"/client.keystore.p12
[[ -e $out/broker.truststore.p12 ]] && chmod 644 "$out/broker.truststore.p12"
chmod 755 "$out"

openssl verify -CAfile "$out/ca.pem" "$out/broker.pem" "$out/client.pem" >/dev/null ||
	die "the generated certificates do not verify against $out/ca.pem"
log "ready in $out (broker names: $san_csv; client CN=$client_cn)"
