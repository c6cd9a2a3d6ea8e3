#!/usr/bin/env bash
# Builds data/country.mmdb from Debian's tor-geoipdb (installing the package
# when it is missing) unless it exists. Used by `make run` and `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

mmdb=data/country.mmdb
[ -s "$mmdb" ] && exit 0
if [ ! -s /usr/share/tor/geoip ]; then
	echo "meridian: installing tor-geoipdb (Debian) for the GeoIP data"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tor-geoipdb >/dev/null
fi
mkdir -p data
./bin/meridian geoip build --out "$mmdb"
