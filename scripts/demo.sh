#!/usr/bin/env bash
# The health demo of `make run`: stand-in load balancers for the example
# regions on loopback (examples/demo-lb) and one `meridian prober` per
# example region, against the server's embedded etcd, with the probers'
# certificate the server made in data/etcd-tls (examples/prober.yaml): so
# start it once the server has started.
#
#   scripts/demo.sh start   build demo-lb, start it and the probers in the background
#   scripts/demo.sh stop    stop them (SIGTERM: the probers withdraw their reports)
#   scripts/demo.sh hint    print how to fail a region and watch the answers move
#
# The processes it started are listed in data/demo.pids; their logs go to
# data/demo-lb.log and data/prober-<region>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

state=examples/state.yaml
pids=data/demo.pids
control=127.0.0.1:8479
prober_config=examples/prober.yaml # the embedded etcd of examples/meridian.yaml, and its certificate

# ours says whether pid is a process this script started (a pid file can
# outlive its processes, and pids are reused).
ours() {
	local cmd
	cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *bin/demo-lb* || $cmd == *"bin/meridian prober"* ]]
}

stop() {
	[ -f "$pids" ] || return 0
	local pid live=()
	while read -r pid; do
		if [ -n "$pid" ] && ours "$pid"; then
			kill -TERM "$pid" 2>/dev/null && live+=("$pid")
		fi
	done <"$pids"
	# The probers revoke their etcd lease on the way out: give them a moment.
	for pid in "${live[@]}"; do
		for _ in $(seq 50); do
			ours "$pid" || break
			sleep 0.1
		done
	done
	rm -f "$pids"
}

start() {
	stop # leftovers of an earlier run
	mkdir -p data bin
	"${GO:-go}" build -o bin/demo-lb ./examples/demo-lb
	[ -x bin/meridian ] || "${GO:-go}" build -o bin/meridian ./cmd/meridian
	bin/demo-lb --state "$state" --control "$control" 2>>data/demo-lb.log &
	echo $! >>"$pids"
	# The regions of the desired-state file, one prober in each.
	for region in $(awk '/^regions:/ {r = 1; next} /^[^ #]/ {r = 0} r && /^  - name:/ {print $3}' "$state"); do
		bin/meridian prober --region "$region" --config "$prober_config" 2>>"data/prober-$region.log" &
		echo $! >>"$pids"
	done
}

hint() {
	cat <<MSG
meridian: health demo: a stand-in load balancer per example VIP, a prober per region. Try:
  curl -s 127.0.0.1:8053/v1/status                                # each VIP's state, every prober's vote
  curl -s -X POST '$control/fail?region=eu-west'            # fail Europe's load balancer...
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=193.0.0.0/24  # ...Europe gets us-east within ~3s
  curl -s -X POST '$control/restore?region=eu-west'         # back to eu-west ~2s after this
  tail -f data/prober-*.log                                       # the probers' view
MSG
}

case "${1:-}" in
start) start ;;
stop) stop ;;
hint) hint ;;
*)
	echo "usage: $0 start|stop|hint" >&2
	exit 2
	;;
esac
