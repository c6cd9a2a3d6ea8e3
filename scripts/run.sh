#!/usr/bin/env bash
# `make run`: Meridian's authoritative server for the example zone on
# 127.0.0.1:5353 (DNS) and 127.0.0.1:8053 (status, explain, metrics), with
# its embedded etcd and the example regions and services, and the health
# demo (scripts/demo.sh): stand-in load balancers and a prober per region.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/geoipdb.sh
./scripts/demo.sh start
trap './scripts/demo.sh stop' EXIT

cat <<MSG
meridian: serving gslb.example on 127.0.0.1:5353. Try:
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=193.0.0.0/24      # Europe
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=8.8.8.0/24        # North America
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=202.12.27.0/24    # Asia
  curl -s '127.0.0.1:8053/v1/explain?name=www.gslb.example&client=193.0.0.1'
MSG
./scripts/demo.sh hint
./bin/meridian server --config examples/meridian.yaml "$@"
