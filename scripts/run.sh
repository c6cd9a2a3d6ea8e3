#!/usr/bin/env bash
# `make run`: Meridian's authoritative server for the example zone on
# 127.0.0.1:5353 (DNS) and 127.0.0.1:8053 (the REST API, metrics; plain
# HTTP on loopback), with its embedded etcd and the example regions and
# services. The first start creates an admin API token in
# data/admin.token for `bin/meridian ctl`, and the embedded etcd's CA and
# certificates in data/etcd-tls.
# With it runs the health demo (scripts/demo.sh): stand-in load balancers
# for the example VIPs and one prober per region. Arguments are passed to
# `meridian server`.
#
# The server runs as a child: once it answers /health/ready the commands
# to try are printed; Ctrl-C (or SIGTERM to this script) stops it
# gracefully, and the script exits with the server's status. If the server
# fails to start, its own error is all that is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/geoipdb.sh
trap './scripts/demo.sh stop' EXIT

# The HTTP address to probe: the example config's, unless overridden.
http=127.0.0.1:8053
args=("$@")
for i in "${!args[@]}"; do
	case ${args[i]} in
	--http-listen | -http-listen) http=${args[i + 1]:-} ;;
	--http-listen=* | -http-listen=*) http=${args[i]#*=} ;;
	esac
done

./bin/meridian server --config examples/meridian.yaml "$@" &
pid=$!

# Ctrl-C reaches the server too (same process group), but a background
# child ignores SIGINT until it has set up its own handler; SIGTERM is the
# same graceful stop and works from the first moment.
stop() { kill -TERM "$pid" 2>/dev/null || true; }
trap stop INT TERM

# The demo's probers reach the embedded etcd with a certificate the
# server makes in data/etcd-tls as it starts (the probers' certificate is
# written last); they retry until the member answers.
deadline=$((SECONDS + 90))
while kill -0 "$pid" 2>/dev/null && [ ! -s data/etcd-tls/prober.pem ] && ((SECONDS < deadline)); do
	sleep 0.1
done
if [ -s data/etcd-tls/prober.pem ]; then
	./scripts/demo.sh start
fi

# ready: the server answers 200 on /health/ready (zones, GeoIP and a
# regions snapshot loaded). Plain bash, so no HTTP client is needed.
ready() {
	local host=${http%:*} port=${http##*:} line=
	host=${host#[}
	host=${host%]}
	{
		printf 'GET /health/ready HTTP/1.0\r\nHost: %s\r\n\r\n' "$http" >&3
		IFS= read -r -t 2 line <&3
	} 2>/dev/null 3<>"/dev/tcp/$host/$port" || return 1
	[[ $line == HTTP/1.?' 200'* ]]
}

if [[ -n $http && $http != off ]]; then
	# Starting the embedded etcd can take a while on a busy machine.
	deadline=$((SECONDS + 90))
	while kill -0 "$pid" 2>/dev/null; do
		if ready; then
			cat <<MSG
meridian: serving gslb.example on 127.0.0.1:5353.
Dashboard: http://$http/ui/ (reads are open; changes need the admin token in data/admin.token)
Try:
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=193.0.0.0/24      # Europe
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=8.8.8.0/24        # North America
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=202.12.27.0/24    # Asia
  dig @127.0.0.1 -p 5353 +dnssec www.gslb.example A +subnet=193.0.0.0/24   # signed (README: DNSSEC)
  dig @127.0.0.1 -p 5353 +dnssec nope.gslb.example A                    # NXDOMAIN with NSEC
  curl -s '127.0.0.1:8053/v1/explain?name=www.gslb.example&client=193.0.0.1'
  bin/meridian ctl get status
  bin/meridian ctl weights set api.gslb.example us-east=0 eu-west=100 ap-northeast=0
  dig @127.0.0.1 -p 5353 api.gslb.example A +short                  # now 192.0.2.10
Ctrl-C stops it.
MSG
			./scripts/demo.sh hint
			break
		fi
		if ((SECONDS >= deadline)); then
			echo "meridian: not ready after 90 s; still waiting (curl -s $http/health/details says why)" >&2
			break
		fi
		sleep 0.2
	done
fi

# wait returns early (above 128) when a trapped signal arrives; wait again
# until the server has really exited, and exit with its status.
status=0
while :; do
	if wait "$pid"; then status=0; else status=$?; fi
	if ((status > 128)) && kill -0 "$pid" 2>/dev/null; then
		continue
	fi
	break
done
exit "$status"
