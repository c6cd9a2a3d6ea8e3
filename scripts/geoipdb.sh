#!/usr/bin/env bash
# Builds data/country.mmdb from Debian's tor-geoipdb unless it exists.
# Used by `make run` and `make bench`, which install tor-geoipdb first
# (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

mmdb=data/country.mmdb
[ -s "$mmdb" ] && exit 0
if [ ! -s /usr/share/tor/geoip ]; then
	echo "meridian: /usr/share/tor/geoip not found: install tor-geoipdb (scripts/deps.sh run installs it)" >&2
	exit 1
fi
mkdir -p data
./bin/meridian geoip build --out "$mmdb"
