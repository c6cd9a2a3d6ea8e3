#!/usr/bin/env bash
# Makes the TLS material of a Meridian deployment with openssl: for its
# etcd cluster, a private CA, a certificate per etcd member (serving
# clients and peers), and client certificates for Meridian's servers and
# probers; for the servers' HTTP API, in a directory (a CA) of its own, a
# certificate per server and client certificates for operators.
#
#   deploy/certs.sh ca     DIR                  DIR/ca.pem, DIR/ca-key.pem (kept if present)
#   deploy/certs.sh member DIR NAME ADDR...     DIR/NAME.pem, DIR/NAME-key.pem: server and
#                                               client auth, for each ADDR (IP or DNS name)
#   deploy/certs.sh server DIR NAME ADDR...     DIR/NAME.pem, DIR/NAME-key.pem: server auth,
#                                               for each ADDR (the API's api.tls)
#   deploy/certs.sh client DIR NAME             DIR/NAME.pem, DIR/NAME-key.pem: client auth,
#                                               common name NAME (etcd's user with auth on)
#
# Keys are ECDSA P-256, written mode 0600, in a directory of mode 0700.
# DAYS sets the validity of new certificates (default 825; the CA gets 10
# years). docs/deploy.md explains where each file goes.
#
# DIR holds the CA's key: keep it on an administration machine, outside
# any git work tree, and the key offline between uses. A DIR inside a git
# work tree is refused unless git ignores it (one `git add -A` would
# otherwise commit the key). With ca.pem there but not ca-key.pem (the key
# kept offline), nothing is signed and no new CA is made: bring the key
# back first. The end-to-end suite (e2e/) makes its throwaway material
# with this script.
set -euo pipefail

usage() {
	sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
days=${DAYS:-825}

# Refuse a DIR that git would take into a commit.
probe=$dir
while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
if command -v git >/dev/null && top=$(git -C "$probe" rev-parse --show-toplevel 2>/dev/null); then
	key=$(realpath -m "$dir")/ca-key.pem
	if ! git -C "$probe" check-ignore -q "$key"; then
		echo "certs.sh: $dir is inside the git work tree $top, which would take the CA's key into a commit:" >&2
		echo "  use a directory outside it (e.g. ~/meridian-pki on an administration machine), or make git ignore $dir" >&2
		exit 1
	fi
fi
umask 077
mkdir -p "$dir"

# A config of our own, so the system's openssl.cnf adds no extensions.
cnf=$(mktemp)
trap 'rm -f "$cnf" "$dir"/*.csr' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

sign() { # name subject extensions...
	local name=$1 subject=$2
	shift 2
	if [ ! -s "$dir/ca.pem" ]; then
		echo "certs.sh: no CA in $dir: run '$0 ca $dir' first" >&2
		exit 1
	fi
	if [ ! -s "$dir/ca-key.pem" ]; then
		echo "certs.sh: $dir/ca-key.pem is missing: bring the CA's key back from where it is kept offline to sign" >&2
		exit 1
	fi
	{
		printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = %s\n[ext]\n' "$subject"
		printf '%s\n' "$@"
	} >"$cnf"
	newkey "$dir/$name-key.pem"
	openssl req -new -key "$dir/$name-key.pem" -config "$cnf" -out "$dir/$name.csr"
	# openssl x509 reports success on stderr: show it only on failure.
	if ! out=$(openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" \
		-extfile "$cnf" -extensions ext -out "$dir/$name.pem" 2>&1); then
		echo "$out" >&2
		exit 1
	fi
	chmod 0644 "$dir/$name.pem"
	echo "$dir/$name.pem"
}

case $cmd in
ca)
	[ $# -eq 0 ] || usage
	if [ -s "$dir/ca.pem" ] && [ -s "$dir/ca-key.pem" ]; then
		echo "$dir/ca.pem (kept)"
		exit 0
	fi
	if [ -s "$dir/ca.pem" ]; then
		# A new CA would replace the one every member and client trusts.
		echo "certs.sh: $dir/ca.pem is there without ca-key.pem: bring the CA's key back, or remove ca.pem to make a new CA" >&2
		exit 1
	fi
	printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = meridian CA %s\n[ext]\n%s\n%s\n%s\n' "$(basename "$dir")" \
		'basicConstraints = critical, CA:TRUE, pathlen:0' \
		'keyUsage = critical, keyCertSign, cRLSign' \
		'subjectKeyIdentifier = hash' >"$cnf"
	newkey "$dir/ca-key.pem"
	openssl req -x509 -new -key "$dir/ca-key.pem" -config "$cnf" -extensions ext \
		-days 3650 -out "$dir/ca.pem"
	chmod 0644 "$dir/ca.pem"
	echo "$dir/ca.pem"
	;;
member | server)
	[ $# -ge 2 ] || usage
	name=$1
	shift
	san=()
	for a in "$@"; do
		if [[ $a =~ ^[0-9.]+$ || $a == *:* ]]; then san+=("IP:$a"); else san+=("DNS:$a"); fi
	done
	usage=serverAuth
	[ "$cmd" = member ] && usage='serverAuth, clientAuth' # members connect to their peers with it
	sign "$name" "$name" \
		'basicConstraints = critical, CA:FALSE' \
		'keyUsage = critical, digitalSignature' \
		"extendedKeyUsage = $usage" \
		"subjectAltName = $(IFS=,; echo "${san[*]}")"
	;;
client)
	[ $# -eq 1 ] || usage
	sign "$1" "$1" \
		'basicConstraints = critical, CA:FALSE' \
		'keyUsage = critical, digitalSignature' \
		'extendedKeyUsage = clientAuth'
	;;
*)
	usage
	;;
esac
