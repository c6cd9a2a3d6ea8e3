#!/usr/bin/env bash
# Makes the TLS material of a Meridian deployment's etcd cluster with
# openssl: a private CA, a certificate per etcd member (serving clients and
# peers), and client certificates for Meridian's servers and probers.
#
#   deploy/certs.sh ca     DIR                  DIR/ca.pem, DIR/ca-key.pem (kept if present)
#   deploy/certs.sh member DIR NAME ADDR...     DIR/NAME.pem, DIR/NAME-key.pem: server and
#                                               client auth, for each ADDR (IP or DNS name)
#   deploy/certs.sh client DIR NAME             DIR/NAME.pem, DIR/NAME-key.pem: client auth,
#                                               common name NAME (etcd's user with auth on)
#
# Keys are ECDSA P-256, written mode 0600. DAYS sets the validity of new
# certificates (default 825; the CA gets 10 years). docs/deploy.md explains
# where each file goes; the end-to-end suite (e2e/) makes its throwaway
# material with this script.
set -euo pipefail

usage() {
	sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
days=${DAYS:-825}
mkdir -p "$dir"
umask 077

# A config of our own, so the system's openssl.cnf adds no extensions.
cnf=$(mktemp)
trap 'rm -f "$cnf" "$dir"/*.csr' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

sign() { # name subject extensions...
	local name=$1 subject=$2
	shift 2
	[ -s "$dir/ca.pem" ] && [ -s "$dir/ca-key.pem" ] || { echo "certs.sh: no CA in $dir: run '$0 ca $dir' first" >&2; exit 1; }
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
	printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = meridian etcd CA\n[ext]\n%s\n%s\n%s\n' \
		'basicConstraints = critical, CA:TRUE, pathlen:0' \
		'keyUsage = critical, keyCertSign, cRLSign' \
		'subjectKeyIdentifier = hash' >"$cnf"
	newkey "$dir/ca-key.pem"
	openssl req -x509 -new -key "$dir/ca-key.pem" -config "$cnf" -extensions ext \
		-days 3650 -out "$dir/ca.pem"
	chmod 0644 "$dir/ca.pem"
	echo "$dir/ca.pem"
	;;
member)
	[ $# -ge 2 ] || usage
	name=$1
	shift
	san=()
	for a in "$@"; do
		if [[ $a =~ ^[0-9.]+$ || $a == *:* ]]; then san+=("IP:$a"); else san+=("DNS:$a"); fi
	done
	sign "$name" "$name" \
		'basicConstraints = critical, CA:FALSE' \
		'keyUsage = critical, digitalSignature' \
		'extendedKeyUsage = serverAuth, clientAuth' \
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
