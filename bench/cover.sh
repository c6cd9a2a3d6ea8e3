#!/usr/bin/env bash
# ECS cover walk: how many EDNS Client Subnet blocks gdnsd and Meridian
# need to cover all of IPv4 for www, steered by continent as in
# examples/state.yaml, from the same country mmdb (see bench/README.md).
# Each server is walked by bench/ecscover: ask with the ECS subnet of an
# address (/32), read the scope, jump past that block, to the end of
# IPv4. Loopback only; the walk is bounded by COVER_MAX_QUERIES.
#
# Run from `make bench-cover` (which builds bin/meridian and the mmdb) or
# directly. Settings (environment):
#   COVER_MMDB         country mmdb (default data/country.mmdb)
#   COVER_WORKERS      walks at once per server (default 2)
#   COVER_MAX_QUERIES  queries per server at most (default 4000000)
#   COVER_SERVERS      servers to walk (default "gdnsd meridian")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

MMDB=${COVER_MMDB:-data/country.mmdb}
WORKERS=${COVER_WORKERS:-2}
MAX=${COVER_MAX_QUERIES:-4000000}
SERVERS=${COVER_SERVERS:-gdnsd meridian}
GDNSD_PORT=5321
MERIDIAN_PORT=5322
ETCD_CLIENT=5323
ETCD_PEER=5324
MERIDIAN_HTTP=5325
NAME=www.gslb.example.

log() { printf '%s\n' "$*" >&2; }
die() {
	log "cover: $*"
	exit 1
}

[[ -r $MMDB ]] || die "COVER_MMDB=$MMDB is not a readable file (make run or bin/meridian geoip build --out FILE)"
MMDB=$(realpath "$MMDB")
[[ $WORKERS =~ ^[0-9]+$ && $WORKERS -ge 1 && $WORKERS -le 16 ]] || die "COVER_WORKERS must be 1..16"
[[ $MAX =~ ^[0-9]+$ && $MAX -ge 1 ]] || die "COVER_MAX_QUERIES must be a positive number"
for s in $SERVERS; do
	case $s in gdnsd) command -v gdnsd >/dev/null || die "gdnsd is not installed (apt-get install gdnsd)" ;;
	meridian) [[ -x bin/meridian ]] || die "bin/meridian not found (make build)" ;;
	*) die "unknown server '$s' in COVER_SERVERS (known: gdnsd meridian)" ;;
	esac
done
command -v dig >/dev/null || die "dig is not installed (apt-get install bind9-dnsutils)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/meridian-cover.XXXXXX")
declare -A PID=()

cleanup() {
	trap - EXIT INT TERM
	stop_pids "${PID[@]}"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# launch NAME PORT CMD... starts a server and waits (20 s at most) until
# www answers a European subnet with eu-west's address.
launch() {
	local name=$1 port=$2
	shift 2
	[[ -z $(ss -Hlun "( sport = :$port )") ]] || die "UDP port $port is already in use"
	"$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
	local i answer=""
	for ((i = 0; i < 80; i++)); do
		alive "${PID[$name]}" || die "$name exited; its log ends: $(tail -n 3 "$WORK/$name.log")"
		answer=$(dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 "$NAME" A +subnet=193.0.0.0/24 2>/dev/null || true)
		[[ $answer == 192.0.2.10 ]] && return 0
		sleep 0.25
	done
	die "$name: no answer 192.0.2.10 for $NAME within 20 s (got '$answer'); its log ends: $(tail -n 3 "$WORK/$name.log")"
}

declare -A PORT=([gdnsd]=$GDNSD_PORT [meridian]=$MERIDIAN_PORT)
for s in $SERVERS; do
	case $s in
	gdnsd)
		d=$WORK/gdnsd
		mkdir -p "$d/run" "$d/state" "$d/zones"
		cp bench/zones/gslb.example.zone "$d/zones/gslb.example"
		printf 'www 60 DYNA geoip!www\n' >>"$d/zones/gslb.example"
		fill bench/gdnsd/config-cover "$d/config" PORT="$GDNSD_PORT" DIR="$d" MMDB="$MMDB"
		log "cover: starting gdnsd"
		launch gdnsd "$GDNSD_PORT" gdnsd -c "$d" start
		;;
	meridian)
		d=$WORK/meridian
		mkdir -p "$d"
		[[ -z $(ss -Hltn "( sport = :$MERIDIAN_HTTP )") ]] || die "TCP port $MERIDIAN_HTTP is already in use"
		fill bench/meridian-cover.yaml "$d/meridian.yaml" PORT="$MERIDIAN_PORT" HTTP="$MERIDIAN_HTTP" DIR="$d" ZONES="$PWD/bench/zones" \
			MMDB="$MMDB" STATE="$PWD/examples/state.yaml" ETCD_CLIENT="$ETCD_CLIENT" ETCD_PEER="$ETCD_PEER"
		log "cover: starting meridian"
		launch meridian "$MERIDIAN_PORT" bin/meridian server --config "$d/meridian.yaml"
		;;
	esac
done

go build -o "$WORK/ecscover" ./bench/ecscover
echo "# ECS cover of IPv4 for $NAME, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo "- database: $MMDB ($(stat -c %s "$MMDB") bytes)"
echo "- map: examples/state.yaml's www by continent; ECS source /32, one query per block"
prev=""
for s in $SERVERS; do
	log "cover: walking $s"
	args=(-server "127.0.0.1:${PORT[$s]}" -name "$NAME" -workers "$WORKERS" -max "$MAX" -list "$WORK/$s.blocks")
	[[ -z $prev ]] || args+=(-against "$WORK/$prev.blocks")
	# Meridian answers as soon as www is compiled, with narrower scopes
	# until its geo tables are built in the background: walk it after.
	[[ $s != meridian ]] || args+=(-ready "http://127.0.0.1:$MERIDIAN_HTTP")
	echo
	echo "## $s"
	echo
	echo '```'
	"$WORK/ecscover" "${args[@]}"
	echo '```'
	prev=$s
done
