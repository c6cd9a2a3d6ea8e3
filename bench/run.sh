#!/usr/bin/env bash
# Comparative DNS benchmark: Meridian against gdnsd (the reference) and Knot
# DNS, same zone, same machine, same run. The method (see bench/README.md):
#
#   - each server pinned to CPU 0 with one worker, dnsperf pinned to CPU 1;
#   - servers interleaved in rounds (A B C A B C ...), medians reported with
#     the ratio to gdnsd;
#   - besides QPS (capped by dnsperf, which saturates its one core below
#     gdnsd's capacity), the server's CPU time per answered query, read from
#     /proc/PID/task/*/schedstat before and after each run.
#
# Run from `make bench` (which builds bin/meridian first) or directly.
# Settings (environment):
#   BENCH_ROUNDS   rounds per case (default 3)
#   BENCH_SECONDS  dnsperf -l, seconds per server per round (default 12)
#   BENCH_MMDB     country mmdb (from `bin/meridian geoip build --out FILE`);
#                  when set, gdnsd and Knot route www by continent and the
#                  www-ecs, mixed and mixed-do cases run
#   BENCH_CASES    cases to run (default "static", or "static www-ecs mixed
#                  mixed-do" with BENCH_MMDB)
#   BENCH_SERVERS  servers to run (default "gdnsd meridian meridian-norrl knot
#                  meridian-signed knot-signed": meridian with response rate
#                  limiting accounting every query, meridian-norrl without
#                  it; the signed two serve a signed zone, in mixed-do only)
#   BENCH_MERIDIAN_CONFIG  Meridian's config (default: bench/meridian.yaml,
#                  or bench/meridian-geo.yaml with BENCH_MMDB); when set,
#                  meridian-norrl is not run
#
# The Markdown report goes to stdout, progress to stderr, and the raw
# per-round figures to bench/results/bench-<time>.csv.
set -euo pipefail

# Paths below are relative to the repository root.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

# ---------------------------------------------------------------- settings --

ROUNDS=${BENCH_ROUNDS:-3}
RUN_SECONDS=${BENCH_SECONDS:-12}
MMDB=${BENCH_MMDB:-}
SERVERS=${BENCH_SERVERS:-gdnsd meridian meridian-norrl knot meridian-signed knot-signed}
MERIDIAN_BIN=bin/meridian
if [[ -n $MMDB ]]; then
	CASES=${BENCH_CASES:-static www-ecs mixed mixed-do}
else
	CASES=${BENCH_CASES:-static}
fi

GDNSD_PORT=5301
MERIDIAN_PORT=5302
KNOT_PORT=5303
NORRL_PORT=5304
SIGNED_PORT=5305
KNOT_SIGNED_PORT=5306
SERVER_CPU=0
CLIENT_CPU=1
QUERY_LINES=100000
READY_TRIES=40 # x 0.25 s: a server gets 10 s to answer its first query

# dnsperf's EDNS Client Subnet option: code 8, family 1 (IPv4), source
# prefix 24, scope 0, address 193.0.0 -- a European network. ECS_SUBNET is
# the same subnet for dig's readiness probe.
ECS_OPTION=8:00011800c10000
ECS_SUBNET=193.0.0.0/24

# The cases: the query every line of the query file holds, whether it
# carries the ECS option, and the answer every server must give to it.
# The mixed case has no single query: bench/mixgen writes its file (many
# names, many ECS subnets) and checks the answers (see MIXED_*).
declare -A CASE_QUERY=([static]="static.gslb.example A" [www-ecs]="www.gslb.example A" [mixed]="" [mixed-do]="")
declare -A CASE_ECS=([static]=0 [www-ecs]=1 [mixed]=0 [mixed-do]=0)
declare -A CASE_EXPECT=([static]=192.0.2.1 [www-ecs]=192.0.2.10 [mixed]="" [mixed-do]="")

# The mixed case: its query count, and the classes of names each server
# must answer as Meridian does (bench/mixgen's "check"). Names a peer
# cannot serve alike are asked all the same but not checked: gdnsd
# answers alias with the CNAME alone (it does not follow CNAMEs) and api
# at random by weight (not sticky); Knot answers alias with the CNAME and
# www's fallback address (mod-geoip does not steer a CNAME's target) and
# api with one fixed address.
#
# The mixed-do case asks the same mix with the DNSSEC OK bit of the
# servers that serve the zone signed (meridian-signed, knot-signed), and
# each of them also the mix without it (entry SERVER:do0, same process):
# the ratio of the two is what signed answers cost. Meridian unsigned is
# asked the mix without DO in it too (meridian:do0), for the ratio to the
# unsigned zone in the same rounds. Answers with DO must
# also verify with the zone's DNSKEY (mixgen check -do). Knot signed
# without mod-geoip (not installed) cannot steer www: it is held to
# static and nx only.
MIXED_QUERIES=100000
declare -A MIXED_CHECK=([meridian]="static geo cname sticky nx" [meridian-norrl]="static geo cname sticky nx" [gdnsd]="static geo nx" [knot]="static geo nx"
	[meridian-signed]="static geo cname sticky nx" [knot-signed]="static geo nx")

# signed NAME: the server serves the zone signed; it runs in mixed-do
# only, and mixed-do only with those.
signed() { [[ $1 == *-signed ]]; }

log() { printf '%s\n' "$*" >&2; }
die() {
	log "bench: $*"
	exit 1
}

# in_range VALUE MIN MAX: VALUE is a whole number from MIN to MAX.
in_range() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }
in_range "$ROUNDS" 1 20 || die "BENCH_ROUNDS must be 1..20, not '$ROUNDS'"
in_range "$RUN_SECONDS" 1 120 || die "BENCH_SECONDS must be 1..120, not '$RUN_SECONDS'"
if [[ -n $MMDB ]]; then
	[[ -r $MMDB ]] || die "BENCH_MMDB=$MMDB is not a readable file"
	MMDB=$(realpath "$MMDB") # gdnsd and Knot run elsewhere
fi
for c in $CASES; do
	[[ -v CASE_QUERY[$c] ]] || die "unknown case '$c' in BENCH_CASES (known: ${!CASE_QUERY[*]})"
	if [[ $c != static && -z $MMDB ]]; then
		die "case $c needs BENCH_MMDB=/path/country.mmdb (bin/meridian geoip build --out FILE)"
	fi
	if [[ $c == mixed* ]] && ! command -v go >/dev/null; then
		die "case $c needs the Go toolchain (it builds bench/mixgen)"
	fi
done
for s in $SERVERS; do
	case $s in gdnsd | meridian | meridian-norrl | knot | meridian-signed | knot-signed) ;;
	*) die "unknown server '$s' in BENCH_SERVERS (known: gdnsd meridian meridian-norrl knot meridian-signed knot-signed)" ;;
	esac
done

# ------------------------------------------------------------------- tools --

# Debian packages, installed when missing by scripts/deps.sh (make bench
# has run it already; this covers ./bench/run.sh on its own). taskset and
# timeout come with every Debian system.
./scripts/deps.sh bench || die "cannot install the packages the comparison needs"

# Knot is an optional peer: install it when asked for, skip it if that fails.
# The geo case needs its geoip module, a package of its own.
knot_geoip() { compgen -G '/usr/lib/*/knot/modules-*/geoip.so' >/dev/null; }
knot_ready() {
	command -v knotd >/dev/null || return 1
	[[ -z $MMDB ]] || knot_geoip
}
if [[ " $SERVERS " == *" knot"* ]] && ! knot_ready; then
	./scripts/deps.sh knot || log "bench: could not install Knot; it will be skipped"
fi

# The load generator needs a core of its own.
taskset -c "$CLIENT_CPU" true 2>/dev/null || die "CPU $CLIENT_CPU is not available: the benchmark needs 2 cores"

# probe PORT QNAME QTYPE ECS asks the server once and prints its answer on
# one line (dig +short: the records, or dig's complaint).
probe() {
	local port=$1 qname=$2 qtype=$3 ecs=$4
	local tool=dig args=(+short +time=1 +tries=1)
	if ! command -v dig >/dev/null; then
		tool=kdig args=(+short +timeout=1 +retry=0)
	fi
	args+=(-p "$port" @127.0.0.1 "$qname" "$qtype")
	((ecs == 0)) || args+=("+subnet=$ECS_SUBNET")
	{ "$tool" "${args[@]}" 2>&1 || true; } | paste -s -d ' '
}

# ------------------------------------------------------ work dir, cleanup --

WORK=$(mktemp -d "${TMPDIR:-/tmp}/meridian-bench.XXXXXX")
declare -A SERVER_PID=() # server name -> PID of the running server
declare -A SKIPPED=()    # server name -> why it is not measured

# cleanup stops every server this script started (TERM, then KILL after
# 5 s) and removes the work dir; it runs on any exit, Ctrl-C included.
cleanup() {
	trap - EXIT INT TERM
	stop_pids "${SERVER_PID[@]}"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cpu_ns PID prints the run time of all the process's threads in ns: the
# scheduler's exact figure, where top and /proc/stat sample ticks.
cpu_ns() {
	{ cat "/proc/$1/task/"*/schedstat 2>/dev/null || true; } | awk '{s += $1} END {printf "%.0f\n", s}'
}

# CLK_TCK: the unit of utime and stime in /proc/PID/task/TID/stat.
CLK_TCK=$(getconf CLK_TCK)

# cpu_split PID prints the user and the system time of all the process's
# threads in clock ticks (utime and stime, fields 14 and 15 of each
# thread's stat; the name in field 2 may hold spaces, so the fields are
# counted after its closing parenthesis). The kernel splits each thread's
# exact run time between the two by where its ticks landed, so the split
# is a sample while schedstat's total is exact.
cpu_split() {
	local f
	for f in "/proc/$1/task/"*/stat; do
		sed 's/^.*) //' "$f" 2>/dev/null || true
	done | awk '{u += $12; s += $13} END {printf "%.0f %.0f\n", u, s}'
}

# ----------------------------------------------------------------- servers --

# log_tail FILE prints the last lines of a server's log on one line.
log_tail() {
	local text
	text=$(tail -n 3 "$1" | tr '\n' ' ')
	echo "${text:-(empty)}"
}

# launch NAME PORT CMD... starts a server in the background and waits until
# it answers the static name correctly; on failure it stops the server and
# records why in SKIPPED.
launch() {
	local name=$1 port=$2
	shift 2
	local logf=$WORK/$name.log
	if [[ -n $(ss -Hlun "( sport = :$port )") ]]; then
		SKIPPED[$name]="UDP port $port is already in use by another process"
		return 1
	fi
	"$@" >"$logf" 2>&1 &
	local pid=$!
	SERVER_PID[$name]=$pid
	local i answer=""
	for ((i = 0; i < READY_TRIES; i++)); do
		if ! alive "$pid"; then
			SKIPPED[$name]="exited during start-up; its log ends: $(log_tail "$logf")"
			break
		fi
		answer=$(probe "$port" static.gslb.example A 0)
		[[ $answer == "${CASE_EXPECT[static]}" ]] && return 0
		sleep 0.25
	done
	[[ -n ${SKIPPED[$name]:-} ]] ||
		SKIPPED[$name]="no answer ${CASE_EXPECT[static]} to static.gslb.example A within 10 s (got '$answer'); its log ends: $(log_tail "$logf")"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset 'SERVER_PID[$name]'
	return 1
}

start_gdnsd() {
	local dir=$WORK/gdnsd
	mkdir -p "$dir/run" "$dir/state" "$dir/zones"
	cp bench/zones/gslb.example.zone "$dir/zones/gslb.example" # gdnsd: file name = zone name
	if [[ -n $MMDB ]]; then
		fill bench/gdnsd/config-geo "$dir/config" PORT="$GDNSD_PORT" DIR="$dir" MMDB="$MMDB"
		printf 'www 60 DYNA geoip!www\napi 30 DYNA weighted!api\n' >>"$dir/zones/gslb.example"
	else
		fill bench/gdnsd/config "$dir/config" PORT="$GDNSD_PORT" DIR="$dir"
	fi
	launch gdnsd "$GDNSD_PORT" taskset -c "$SERVER_CPU" gdnsd -c "$dir" start
}

# start_meridian_as NAME PORT RRL ETCD_CLIENT ETCD_PEER [TEMPLATE] starts
# Meridian from bench/meridian.yaml (with BENCH_MMDB, bench/meridian-geo.yaml,
# in which www is a service of its own embedded etcd, or TEMPLATE, filled
# in as that one), with response rate limiting on or off (RRL true or
# false).
start_meridian_as() {
	local name=$1 port=$2 rrl=$3 etcd_client=$4 etcd_peer=$5 template=${6:-}
	if [[ ! -x $MERIDIAN_BIN ]]; then
		SKIPPED[$name]="$MERIDIAN_BIN not found (make build)"
		return 1
	fi
	local dir=$WORK/$name config
	mkdir -p "$dir"
	if [[ -z $template && -n ${BENCH_MERIDIAN_CONFIG:-} ]]; then
		config=$BENCH_MERIDIAN_CONFIG
	elif [[ -n $MMDB ]]; then
		config=$dir/meridian.yaml
		fill "${template:-bench/meridian-geo.yaml}" "$config" PORT="$port" DIR="$dir" ZONES="$PWD/bench/zones" RRL="$rrl" \
			MMDB="$MMDB" STATE="$PWD/bench/meridian-state.yaml" ETCD_CLIENT="$etcd_client" ETCD_PEER="$etcd_peer"
	else
		config=$dir/meridian.yaml
		fill bench/meridian.yaml "$config" PORT="$port" DIR="$dir" ZONES="$PWD/bench/zones" RRL="$rrl" \
			ETCD_CLIENT="$etcd_client" ETCD_PEER="$etcd_peer"
	fi
	# taskset execs the server, so the PID launch records is its own. On
	# its one CPU Meridian runs one P per CPU plus one per UDP loop, as it
	# does by default: the loop waits for datagrams inside recvmmsg, as
	# gdnsd's thread does (docs/architecture.md).
	launch "$name" "$port" taskset -c "$SERVER_CPU" \
		"$MERIDIAN_BIN" server --config "$config" || return 1
	[[ -n $MMDB && -z ${BENCH_MERIDIAN_CONFIG:-} ]] || return 0
	# The zone answers before the first snapshot of the services is built
	# (and, signed, signed): until then names other than the zone file's
	# get SERVFAIL. Wait for www.
	local i answer=""
	for ((i = 0; i < 2 * READY_TRIES; i++)); do
		answer=$(probe "$port" www.gslb.example A 1)
		[[ $answer != "${CASE_EXPECT[www-ecs]}" ]] || return 0
		sleep 0.25
	done
	SKIPPED[$name]="no answer ${CASE_EXPECT[www-ecs]} to www.gslb.example A (ECS $ECS_SUBNET) within 20 s (got '$answer')"
	stop_pids "${SERVER_PID[$name]}"
	unset 'SERVER_PID[$name]'
	return 1
}

start_meridian() {
	start_meridian_as meridian "$MERIDIAN_PORT" true 5311 5312
}

# meridian-norrl: the same server without response rate limiting, for the
# limiter's cost per query.
start_meridian-norrl() {
	if [[ -n ${BENCH_MERIDIAN_CONFIG:-} ]]; then
		SKIPPED[meridian-norrl]="BENCH_MERIDIAN_CONFIG is set: it runs only from the bench's own configs"
		return 1
	fi
	start_meridian_as meridian-norrl "$NORRL_PORT" false 5315 5316
}

# meridian-signed: the geo configuration with the zone signed
# (bench/meridian-signed.yaml), its key made at start in the run's
# directory, for the mixed-do case.
start_meridian-signed() {
	if [[ -z $MMDB ]]; then
		SKIPPED[meridian-signed]="it serves the mixed-do case only, which needs BENCH_MMDB"
		return 1
	fi
	start_meridian_as meridian-signed "$SIGNED_PORT" true 5317 5318 bench/meridian-signed.yaml
}

start_knot() {
	if ! knot_ready; then
		SKIPPED[knot]="knotd${MMDB:+ or its geoip module} is not installed"
		return 1
	fi
	local dir=$WORK/knot
	mkdir -p "$dir/run" "$dir/db" "$dir/zones"
	cp bench/zones/gslb.example.zone "$dir/zones/gslb.example.zone"
	if [[ -n $MMDB ]]; then
		fill bench/knot/knot-geo.conf "$dir/knot.conf" PORT="$KNOT_PORT" DIR="$dir" ZONES="$dir/zones" \
			MMDB="$MMDB" GEOCONF="$PWD/bench/knot/geo.conf"
		printf 'www 60 A 192.0.2.20\napi 30 A 192.0.2.20\n' >>"$dir/zones/gslb.example.zone"
	else
		fill bench/knot/knot.conf "$dir/knot.conf" PORT="$KNOT_PORT" DIR="$dir" ZONES="$dir/zones"
	fi
	launch knot "$KNOT_PORT" taskset -c "$SERVER_CPU" knotd -c "$dir/knot.conf"
}

# knot-signed: Knot signing the zone itself (bench/knot/knot-signed-geo.conf:
# a CSK, ECDSA P-256, NSEC) with mod-geoip, which signs each of its
# alternative answers at load; without the module (not installed), signed
# alone (knot-signed.conf), and the report says so. The key is made
# before the server starts: mod-geoip loads before Knot would make it, and
# cannot sign without it.
start_knot-signed() {
	if [[ -z $MMDB ]]; then
		SKIPPED[knot-signed]="it serves the mixed-do case only, which needs BENCH_MMDB"
		return 1
	fi
	if ! command -v knotd >/dev/null || ! command -v keymgr >/dev/null; then
		SKIPPED[knot-signed]="knotd or keymgr is not installed"
		return 1
	fi
	local dir=$WORK/knot-signed
	mkdir -p "$dir/run" "$dir/db" "$dir/zones"
	cp bench/zones/gslb.example.zone "$dir/zones/gslb.example.zone"
	printf 'www 60 A 192.0.2.20\napi 30 A 192.0.2.20\n' >>"$dir/zones/gslb.example.zone"
	if knot_geoip; then
		fill bench/knot/knot-signed-geo.conf "$dir/knot.conf" PORT="$KNOT_SIGNED_PORT" DIR="$dir" ZONES="$dir/zones" \
			MMDB="$MMDB" GEOCONF="$PWD/bench/knot/geo.conf"
	else
		fill bench/knot/knot-signed.conf "$dir/knot.conf" PORT="$KNOT_SIGNED_PORT" DIR="$dir" ZONES="$dir/zones"
		VERSION[knot-signed]="${VERSION[knot]} signed WITHOUT mod-geoip (knot-module-geoip is not installed)"
		MIXED_CHECK[knot-signed]="static nx"
	fi
	if ! keymgr -c "$dir/knot.conf" gslb.example. generate algorithm=ecdsap256sha256 ksk=yes zsk=yes >"$dir/keymgr.log" 2>&1; then
		SKIPPED[knot-signed]="keymgr could not make the key: $(log_tail "$dir/keymgr.log")"
		return 1
	fi
	launch knot-signed "$KNOT_SIGNED_PORT" taskset -c "$SERVER_CPU" knotd -c "$dir/knot.conf"
}

declare -A PORT=([gdnsd]=$GDNSD_PORT [meridian]=$MERIDIAN_PORT [meridian-norrl]=$NORRL_PORT [knot]=$KNOT_PORT
	[meridian-signed]=$SIGNED_PORT [knot-signed]=$KNOT_SIGNED_PORT)
MERIDIAN_VERSION="meridian $(git describe --always --dirty 2>/dev/null || echo dev)"
declare -A VERSION=(
	[gdnsd]="gdnsd $(dpkg-query -W -f='${Version}' gdnsd 2>/dev/null || echo '?')"
	[meridian]="$MERIDIAN_VERSION"
	[meridian-norrl]="$MERIDIAN_VERSION (RRL off)"
	[knot]="Knot $(knotd -V 2>/dev/null | awk '{print $NF}' || echo '?')"
)
VERSION[meridian-signed]="${VERSION[meridian]} signed"
VERSION[knot-signed]="${VERSION[knot]} signed with mod-geoip"

# ------------------------------------------------------------- measurement --

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p bench/results
CSV=bench/results/bench-$STAMP.csv
echo "time,case,round,server,version,seconds,queries_sent,queries_completed,queries_lost,qps,avg_latency_s,server_cpu_ns,server_cpu_us_per_query,server_user_us_per_query,server_sys_us_per_query,server_core_pct,dnsperf_core_pct,response_codes" >"$CSV"

declare -A QPS=() CPUQ=() USERQ=() SYSQ=() SCORE=() CCORE=() LOST=() NRUNS=() # "case/server" -> space-separated per-round figures

# mix_file CASE ENTRY prints the query file of a mixed case for an entry:
# the mix with the DO bit for mixed-do, without it for mixed and for the
# DO=0 entries (SERVER:do0) of mixed-do.
mix_file() {
	if [[ $1 == mixed-do && $2 != *:do0 ]]; then echo "$WORK/mixed-do.bin"; else echo "$WORK/mixed.bin"; fi
}

# entry_version ENTRY prints what the report calls an entry: the server's
# version, and in mixed-do whether it was asked with DO.
entry_version() {
	local v=${VERSION[${1%%:*}]}
	# No commas: the CSV holds it.
	if [[ $1 == *:do0 ]]; then
		if signed "${1%%:*}"; then v+=" (DO=0)"; else v+=" (DO=0; zone unsigned)"; fi
	elif signed "$1"; then
		v+=" (DO=1)"
	fi
	echo "$v"
}

# measure CASE ENTRY ROUND runs dnsperf once against the entry's server
# (ENTRY is a server, or SERVER:do0 for its DO=0 run in mixed-do) and
# records its figures.
measure() {
	local case=$1 entry=$2 round=$3
	local name=${entry%%:*}
	local pid=${SERVER_PID[$name]} port=${PORT[$name]}
	local out=$WORK/dnsperf-$case-$entry-$round.txt timef=$WORK/time-$case-$entry-$round.txt
	local input=(-d "$WORK/$case.queries")
	((CASE_ECS[$case] == 0)) || input+=(-E "$ECS_OPTION")
	# The mixed files hold whole packets, EDNS, ECS and DO included.
	[[ $case != mixed* ]] || input=(-B -d "$(mix_file "$case" "$entry")")

	local before after utime0 stime0 utime1 stime1
	read -r utime0 stime0 < <(cpu_split "$pid")
	before=$(cpu_ns "$pid")
	# `time` gives dnsperf's own CPU use (user + sys, from the kernel's exact
	# accounting) to tell when the load generator, not the server, is the
	# cap. --foreground keeps dnsperf in our process group, so Ctrl-C reaches
	# it: it stops, and then the INT trap ends the script.
	local TIMEFORMAT='%R %U %S'
	if ! { time taskset -c "$CLIENT_CPU" timeout --foreground -k 5 $((RUN_SECONDS + 30)) \
		dnsperf -s 127.0.0.1 -p "$port" "${input[@]}" -l "$RUN_SECONDS" \
		-c 4 -q 200 -t 2 >"$out" 2>&1; } 2>"$timef"; then
		log "bench: dnsperf failed against $entry:"
		cat "$out" >&2
		return 1
	fi
	after=$(cpu_ns "$pid")
	read -r utime1 stime1 < <(cpu_split "$pid")
	alive "$pid" || {
		log "bench: $name died during the run"
		return 1
	}

	local sent completed lost qps lat rcodes
	sent=$(awk '/Queries sent:/ {print $3}' "$out")
	completed=$(awk '/Queries completed:/ {print $3}' "$out")
	lost=$(awk '/Queries lost:/ {print $3}' "$out")
	qps=$(awk '/Queries per second:/ {print $4}' "$out")
	lat=$(awk '/Average Latency/ {print $4}' "$out")
	rcodes=$(sed -n 's/^ *Response codes: *//p' "$out" | tr ',' ';')
	if [[ -z $sent || -z $completed || -z $lost || -z $qps || -z $lat ]] || ((completed == 0)); then
		log "bench: no answered queries from $name in dnsperf's output:"
		cat "$out" >&2
		return 1
	fi

	local real user sys figures
	read -r real user sys <"$timef"
	figures=$(awk -v d="$((after - before))" -v n="$completed" -v r="$real" -v u="$user" -v s="$sys" \
		-v su="$((utime1 - utime0))" -v ss="$((stime1 - stime0))" -v hz="$CLK_TCK" \
		'BEGIN {printf "%.0f %.3f %.1f %.1f %.3f %.3f", d, d / n / 1000, d / (r * 1e9) * 100, (u + s) / r * 100,
			su / hz * 1e6 / n, ss / hz * 1e6 / n}')
	local cpu cpu_q score ccore user_q sys_q
	read -r cpu cpu_q score ccore user_q sys_q <<<"$figures"

	echo "$STAMP,$case,$round,$entry,$(entry_version "$entry"),$RUN_SECONDS,$sent,$completed,$lost,$qps,$lat,$cpu,$cpu_q,$user_q,$sys_q,$score,$ccore,$rcodes" >>"$CSV"
	local k=$case/$entry
	QPS[$k]+="$qps " CPUQ[$k]+="$cpu_q " USERQ[$k]+="$user_q " SYSQ[$k]+="$sys_q " SCORE[$k]+="$score " CCORE[$k]+="$ccore "
	LOST[$k]=$((${LOST[$k]:-0} + lost)) NRUNS[$k]=$((${NRUNS[$k]:-0} + 1))
	log "bench:   $entry: $(printf '%.0f' "$qps") qps, $cpu_q µs CPU/query (user $user_q, system $sys_q), server core $score%, dnsperf core $ccore%, lost $lost"
}

# median VALUES... prints the median (mean of the middle two when even).
median() {
	printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
		if (NR == 0) exit
		if (NR % 2) printf "%s\n", a[(NR + 1) / 2]; else printf "%s\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ratio A B prints A/B with two decimals, or n/a.
ratio() {
	if [[ -z $1 || -z $2 || $2 == 0 ]]; then echo "n/a"; else awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f\n", a / b}'; fi
}

# -------------------------------------------------------------------- run --

for c in $CASES; do
	[[ $c != mixed* ]] || continue
	awk -v line="${CASE_QUERY[$c]}" -v n="$QUERY_LINES" 'BEGIN {for (i = 0; i < n; i++) print line}' >"$WORK/$c.queries"
done
if [[ " $CASES " == *" mixed"* ]]; then
	# The same seed, so the same queries, with and without the DO bit.
	go build -o "$WORK/mixgen" ./bench/mixgen || die "could not build bench/mixgen"
	"$WORK/mixgen" gen -db "$MMDB" -out "$WORK/mixed.bin" -n "$MIXED_QUERIES" -probes "$WORK/mixed.probes" 2>"$WORK/mixgen.log" ||
		die "mixgen: $(cat "$WORK/mixgen.log")"
	MIXED_SUBNETS=$(sed -n 's/^mixgen: //p' "$WORK/mixgen.log")
	if [[ " $CASES " == *" mixed-do "* ]]; then
		"$WORK/mixgen" gen -do -db "$MMDB" -out "$WORK/mixed-do.bin" -n "$MIXED_QUERIES" 2>"$WORK/mixgen.log" ||
			die "mixgen: $(cat "$WORK/mixgen.log")"
	fi
fi

# A server none of the cases measures is not started: the signed ones
# serve mixed-do only, the others every other case (and meridian mixed-do
# too).
only_mixed_do() {
	local c
	for c in $CASES; do [[ $c == mixed-do ]] || return 1; done
}
wanted=()
for s in $SERVERS; do
	if signed "$s" && [[ " $CASES " != *" mixed-do "* ]]; then
		log "bench: not starting $s: it serves mixed-do only, which is not in BENCH_CASES"
	elif ! signed "$s" && [[ $s != meridian ]] && only_mixed_do; then
		log "bench: not starting $s: BENCH_CASES holds only mixed-do, which it does not serve"
	else
		wanted+=("$s")
	fi
done
ACTIVE=()
for s in "${wanted[@]}"; do
	log "bench: starting $s"
	if "start_$s"; then
		ACTIVE+=("$s")
	else
		log "bench: skipping $s: ${SKIPPED[$s]}"
	fi
done
((${#ACTIVE[@]} > 0)) || die "no server to measure"

# The entries of each case: what one dnsperf run in a round measures. A
# server, or in mixed-do each signed server with DO and SERVER:do0, the
# same server asked the same mix without it, and meridian:do0, Meridian
# unsigned asked the mix without DO.
declare -A CASE_ENTRIES=()
n_runs=0
for c in $CASES; do
	for s in "${ACTIVE[@]}"; do
		if [[ $c == mixed-do ]]; then
			! signed "$s" || CASE_ENTRIES[$c]+="$s $s:do0 "
			[[ $s != meridian ]] || CASE_ENTRIES[$c]+="$s:do0 "
		else
			signed "$s" || CASE_ENTRIES[$c]+="$s "
		fi
	done
	n_runs=$((n_runs + $(wc -w <<<"${CASE_ENTRIES[$c]:-}")))
done
log "bench: $n_runs run(s) a round x $ROUNDS round(s) x ${RUN_SECONDS}s: about $((n_runs * ROUNDS * (RUN_SECONDS + 1)))s"

# server_arg ENTRY prints mixgen's -server value for an entry.
server_arg() { echo "$1=127.0.0.1:${PORT[${1%%:*}]}"; }

declare -A CASE_SKIPPED=() # "case/entry" -> why
declare -A MIXED_RESULT=() # "case/entry/class" -> ok, or how the answers differ
declare -A SIZES=()        # entry -> mixgen sizes' figures for mixed-do
for c in $CASES; do
	read -r qname qtype <<<"${CASE_QUERY[$c]}"
	read -r -a entries <<<"${CASE_ENTRIES[$c]:-}"
	# Every server must give the same, right answer before it is timed: a
	# fast NXDOMAIN or wrong address would be a meaningless figure.
	servers=()
	if [[ $c == mixed* ]]; then
		plain=() with_do=()
		for e in "${entries[@]}"; do
			if [[ $c == mixed-do && $e != *:do0 ]]; then
				with_do+=(-server "$(server_arg "$e")")
			else
				plain+=(-server "$(server_arg "$e")")
			fi
		done
		: >"$WORK/$c.check"
		if ((${#plain[@]} > 0)); then
			"$WORK/mixgen" check -probes "$WORK/mixed.probes" "${plain[@]}" >>"$WORK/$c.check" 2>&1 ||
				die "mixgen check: $(cat "$WORK/$c.check")"
		fi
		if ((${#with_do[@]} > 0)); then
			"$WORK/mixgen" check -do -probes "$WORK/mixed.probes" "${with_do[@]}" >>"$WORK/$c.check" 2>&1 ||
				die "mixgen check -do: $(cat "$WORK/$c.check")"
		fi
		while read -r _ e class result; do
			MIXED_RESULT[$c/$e/$class]=$result
		done <"$WORK/$c.check"
		for e in "${entries[@]}"; do
			bad=""
			for class in ${MIXED_CHECK[${e%%:*}]}; do
				[[ ${MIXED_RESULT[$c/$e/$class]:-} == ok ]] || bad+="$class: ${MIXED_RESULT[$c/$e/$class]:-not checked}; "
			done
			if [[ -z $bad ]]; then
				servers+=("$e")
			else
				CASE_SKIPPED[$c/$e]="answers differently: ${bad%; }"
				log "bench: case $c: skipping $e: ${CASE_SKIPPED[$c/$e]}"
			fi
		done
	else
		for s in "${entries[@]}"; do
			answer=$(probe "${PORT[$s]}" "$qname" "$qtype" "${CASE_ECS[$c]}")
			if [[ $answer == "${CASE_EXPECT[$c]}" ]]; then
				servers+=("$s")
			else
				asked="$qname $qtype"
				((CASE_ECS[$c] == 0)) || asked+=" (ECS $ECS_SUBNET)"
				CASE_SKIPPED[$c/$s]="answers $asked with '$answer', not ${CASE_EXPECT[$c]}"
				log "bench: case $c: skipping $s: ${CASE_SKIPPED[$c/$s]}"
			fi
		done
	fi
	if [[ $c == mixed-do ]]; then
		# Every query of the mix once, untimed, as dnsperf sends it: how
		# many answers come back with TC or longer than 1232 bytes.
		for e in "${servers[@]}"; do
			"$WORK/mixgen" sizes -in "$(mix_file "$c" "$e")" -server "$(server_arg "$e")" >"$WORK/sizes" 2>&1 ||
				die "mixgen sizes: $(cat "$WORK/sizes")"
			SIZES[$e]=$(sed -n 's/^sizes [^ ]* //p' "$WORK/sizes")
			log "bench: case $c: $e: ${SIZES[$e]}"
		done
	fi
	for ((r = 1; r <= ROUNDS; r++)); do
		log "bench: case $c, round $r/$ROUNDS"
		for s in "${servers[@]}"; do
			measure "$c" "$s" "$r" || log "bench: case $c round $r: no figures for $s"
		done
	done
done

# ----------------------------------------------------------------- report --

echo "# DNS comparison, $STAMP"
echo
echo "- host: $(uname -r), $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "- each server pinned to CPU $SERVER_CPU with one worker; dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2; exit}') pinned to CPU $CLIENT_CPU:"
echo "  \`dnsperf -s 127.0.0.1 -p PORT -d FILE -l $RUN_SECONDS -c 4 -q 200 -t 2\` (+ \`-E $ECS_OPTION\` for ECS cases),"
echo "  $QUERY_LINES identical query lines per case (mixed and mixed-do: $MIXED_QUERIES different packets, \`-B\`, in mixed-do with the DO bit); $ROUNDS interleaved round(s); medians over rounds"
names=()
for s in "${ACTIVE[@]}"; do names+=("${VERSION[$s]}"); done
joined=$(IFS=,; echo "${names[*]}")
echo "- servers: ${joined//,/, }"
echo "- load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes figures noisy; compare ratios)"
echo "- raw per-round figures: $CSV"
for s in $SERVERS; do
	[[ -z ${SKIPPED[$s]:-} ]] || echo "- **$s skipped**: ${SKIPPED[$s]}"
done

for c in $CASES; do
	ecs_text="no ECS"
	((CASE_ECS[$c] == 0)) || ecs_text="ECS $ECS_SUBNET (EU)"
	read -r -a entries <<<"${CASE_ENTRIES[$c]:-}"
	# The reference of the ratios: gdnsd, and in mixed-do Knot signed with
	# mod-geoip asked with DO, the peer that also signs ahead.
	ref=gdnsd ref_label=gdnsd
	[[ $c != mixed-do ]] || ref=knot-signed ref_label="Knot signed"
	echo
	if [[ $c == mixed* ]]; then
		if [[ $c == mixed-do ]]; then
			echo "## mixed-do: the mixed case's queries with the DNSSEC OK bit, zone signed (ECDSA P-256, NSEC); each signed server also asked the same mix without it (DO=0)"
		else
			echo "## mixed: static, geo (www), CNAME to www (alias), sticky weighted (api) and NXDOMAIN names; $MIXED_SUBNETS"
		fi
		echo
		echo "Answers checked before timing (a sample of the queries; bench/mixgen check$([[ $c != mixed-do ]] || echo ', with DO: -do, every RRset verified with the zone'"'"'s DNSKEY')). A server is timed when the classes it is held to (bold) all agree:"
		echo
		echo "| server | static | geo | cname | sticky | nx |"
		echo "|---|---|---|---|---|---|"
		for e in "${entries[@]}"; do
			row="| $(entry_version "$e") |"
			for class in static geo cname sticky nx; do
				cell=${MIXED_RESULT[$c/$e/$class]:-not checked}
				[[ $cell == ok ]] || cell=${cell//|/\\|}
				[[ " ${MIXED_CHECK[${e%%:*}]} " != *" $class "* ]] || cell="**$cell**"
				row+=" $cell |"
			done
			echo "$row"
		done
	else
		echo "## $c: ${CASE_QUERY[$c]}, $ecs_text, answer ${CASE_EXPECT[$c]}"
	fi
	echo
	echo "| server | median QPS | QPS vs $ref_label | median server CPU µs/query | CPU/query vs $ref_label (lower is better) | user µs/query | system µs/query | server core % | dnsperf core % | lost queries (all rounds) | rounds |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	ref_qps="" ref_cpu=""
	if [[ -n ${QPS[$c/$ref]:-} ]]; then
		# shellcheck disable=SC2086 # the lists split on purpose
		ref_qps=$(median ${QPS[$c/$ref]}) ref_cpu=$(median ${CPUQ[$c/$ref]})
	fi
	for e in "${entries[@]}"; do
		k=$c/$e
		[[ -n ${QPS[$k]:-} ]] || continue
		# shellcheck disable=SC2086
		{
			q=$(median ${QPS[$k]}) cq=$(median ${CPUQ[$k]})
			uq=$(median ${USERQ[$k]}) sq=$(median ${SYSQ[$k]})
			sc=$(median ${SCORE[$k]}) cc=$(median ${CCORE[$k]})
		}
		printf '| %s | %.0f | %s | %.2f | %s | %.2f | %.2f | %.0f | %.0f | %d | %d |\n' "$(entry_version "$e")" "$q" "$(ratio "$q" "$ref_qps")" \
			"$cq" "$(ratio "$cq" "$ref_cpu")" "$uq" "$sq" "$sc" "$cc" "${LOST[$k]}" "${NRUNS[$k]}"
	done
	for e in "${entries[@]}"; do
		[[ -z ${CASE_SKIPPED[$c/$e]:-} ]] || printf '\n- %s not measured: %s\n' "$e" "${CASE_SKIPPED[$c/$e]}"
	done
	# cpu_ratio CASE_A ENTRY_A CASE_B ENTRY_B: the ratio of two medians of
	# CPU per query, n/a when either is missing.
	cpu_ratio() {
		[[ -n ${CPUQ[$1/$2]:-} && -n ${CPUQ[$3/$4]:-} ]] || {
			echo n/a
			return
		}
		# shellcheck disable=SC2086
		ratio "$(median ${CPUQ[$1/$2]})" "$(median ${CPUQ[$3/$4]})"
	}
	# round_ratio CASE ENTRY_A ENTRY_B: the median over the rounds of each
	# round's ratio of CPU per query, the two run back to back: less moved
	# by other work on the machine, which changes from round to round.
	round_ratio() {
		local -a a b
		read -r -a a <<<"${CPUQ[$1/$2]:-}"
		read -r -a b <<<"${CPUQ[$1/$3]:-}"
		if ((${#a[@]} == 0 || ${#a[@]} != ${#b[@]})); then
			echo n/a
			return
		fi
		local i rs=()
		for i in "${!a[@]}"; do rs+=("$(awk -v x="${a[i]}" -v y="${b[i]}" 'BEGIN {printf "%.4f\n", x / y}')"); done
		printf '%.2f\n' "$(median "${rs[@]}")"
	}
	if [[ -n ${CPUQ[$c/meridian]:-} && -n ${CPUQ[$c/meridian-norrl]:-} ]]; then
		printf '\n- response rate limiting: CPU/query of meridian (every query accounted, none limited) against meridian-norrl: **%s**\n' \
			"$(cpu_ratio "$c" meridian "$c" meridian-norrl)"
	fi
	if [[ $c == mixed-do ]]; then
		echo
		echo "Ratios of CPU per query: of the medians, and in brackets the median of each round's ratio."
		echo
		echo "- Meridian signed, DO=1 against DO=0 (same server, same mix): **$(cpu_ratio "$c" meridian-signed "$c" meridian-signed:do0)** ($(round_ratio "$c" meridian-signed meridian-signed:do0)) (goal: at most 1.10)"
		echo "- Meridian signed with DO=1 against Meridian unsigned, the mix without DO: **$(cpu_ratio "$c" meridian-signed "$c" meridian:do0)** ($(round_ratio "$c" meridian-signed meridian:do0)); Meridian signed with DO=0 against it: $(cpu_ratio "$c" meridian-signed:do0 "$c" meridian:do0) ($(round_ratio "$c" meridian-signed:do0 meridian:do0))"
		echo "- Meridian signed against ${VERSION[knot-signed]}, both with DO=1: **$(cpu_ratio "$c" meridian-signed "$c" knot-signed)** ($(round_ratio "$c" meridian-signed knot-signed)) (goal: at most 1.00)"
		echo "- Knot signed, DO=1 against DO=0: $(cpu_ratio "$c" knot-signed "$c" knot-signed:do0) ($(round_ratio "$c" knot-signed knot-signed:do0))"
		echo
		echo "Every query of the mix asked once before timing (bench/mixgen sizes; EDNS buffer 1232 in every query, as dnsperf sends them):"
		echo
		echo "| server | answers | with TC | longer than 1232 bytes | largest, bytes | mean, bytes | lost |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for e in "${entries[@]}"; do
			[[ -n ${SIZES[$e]:-} ]] || continue
			read -r _ answers _ tc _ over _ largest _ mean _ lost <<<"${SIZES[$e]}"
			echo "| $(entry_version "$e") | $answers | $tc | $over | $largest | $mean | $lost |"
		done
	fi
done
echo
echo "User and system µs/query: the server's utime and stime (/proc/PID/task/*/stat, clock ticks the kernel"
echo "splits each thread's run time by) per answered query, medians over rounds; their sum is close to the"
echo "exact total from schedstat."
echo
echo "Core % is the share of its one CPU a process used during the run. dnsperf near 100%: the load"
echo "generator, not the server, capped the QPS, so compare CPU per query. Both well below 100%: other"
echo "work on the machine took the CPUs, so QPS is noisy; CPU per query much less so."
