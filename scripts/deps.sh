#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing:
#
#   scripts/deps.sh test|run|bench|knot ...
#
# Silent and without apt-get when everything is installed. Otherwise it
# installs the missing packages (through sudo when not root) without
# starting their system services, or fails with one line naming them.
set -euo pipefail

# Packages by make target, one a line with what it provides. A test that
# runs a program or reads a file from a package finds it with
# internal/testtool, which lists the same packages (and checks this file).
test_packages=(
	dnsutils      # dig
	knot-dnsutils # kdig
	unbound       # unbound, unbound-checkconf: a real resolver in front of the server
	mmdb-bin      # mmdblookup: reads back the GeoIP databases we build
	tor-geoipdb   # /usr/share/tor/geoip{,6}: the country data `meridian geoip build` reads
	gdnsd         # gdnsd checkconf: loads the GeoIP databases we build
	bind9         # named: end-to-end tests
	bind9-utils   # named-checkzone, dnssec-verify: check the zones we transfer
	bind9-dnsutils # delv: validates signed answers; nsupdate: a parent zone publishing DS records
	etcd-server   # etcd: the end-to-end suite's 3-member cluster
	etcd-client   # etcdctl: the end-to-end suite's backup and restore, another user's tries at the embedded etcd
	openssl       # the deploy guide's TLS material (deploy/certs.sh)
	git           # deploy/certs.sh's refusal of a git work tree
	systemd       # systemd-analyze verify of the deploy units
	bash          # meridian completion bash, run by its tests
	zsh           # meridian completion zsh, run by its tests
	fish          # meridian completion fish, run by its tests
	haproxy       # a real load balancer whose stats page the prober reads
	prometheus    # promtool: checks the metrics pages and tests the alerting rules
	chromium      # a headless browser: the dashboard's tests drive it
)
run_packages=(
	tor-geoipdb # the country data for data/country.mmdb
	dnsutils    # dig, for the queries make run suggests
	curl        # for the status and explain URLs it suggests
)
bench_packages=(
	dnsperf     # the load generator
	gdnsd       # the reference server
	dnsutils    # dig: is each server up, does it answer right
	iproute2    # ss: is a port already taken
	tor-geoipdb # the country data for the geo case
)
# Knot, the second peer: bench/run.sh installs it when asked for and goes
# on without it when it cannot.
knot_packages=(
	knot              # knotd
	knot-module-geoip # its geoip module, for the geo cases
)

if [ $# -eq 0 ]; then
	echo "usage: $0 test|run|bench|knot ..." >&2
	exit 2
fi
wanted=()
for target in "$@"; do
	case $target in
	test) wanted+=("${test_packages[@]}") ;;
	run) wanted+=("${run_packages[@]}") ;;
	bench) wanted+=("${bench_packages[@]}") ;;
	knot) wanted+=("${knot_packages[@]}") ;;
	*)
		echo "$0: unknown target '$target' (known: test run bench knot)" >&2
		exit 2
		;;
	esac
done

if ! command -v dpkg-query >/dev/null; then
	# Not Debian: the tests say what is missing, naming the package.
	echo "meridian: not a Debian system; make sure these (Debian package names) are installed: ${wanted[*]}" >&2
	exit 0
fi
missing=()
for p in "${wanted[@]}"; do
	case " ${missing[*]} " in *" $p "*) continue ;; esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
	echo "meridian: cannot install Debian packages ${missing[*]}: $*" >&2
	exit 1
}
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || fail "not root and no sudo; install them as root"
	sudo=(sudo)
fi
echo "meridian: installing Debian packages ${missing[*]}" >&2

# Installing unbound, gdnsd, bind9 or etcd-server would start their system
# services, which could hold port 53 or 2379 on this machine: a
# policy-rc.d that refuses every start keeps them stopped (unless the
# machine already has its own policy).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
	"${sudo[@]}" chmod 755 /usr/sbin/policy-rc.d
	trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi

apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300)
# apt's own output only when it fails, and then only its error line.
if ! out=$("${apt[@]}" update 2>&1); then
	fail "apt-get update: $(grep -m1 '^E:' <<<"$out" || tail -n1 <<<"$out")"
fi
if ! out=$("${apt[@]}" install --no-install-recommends "${missing[@]}" 2>&1); then
	fail "apt-get install: $(grep -m1 '^E:' <<<"$out" || tail -n1 <<<"$out")"
fi
