#!/usr/bin/env bash
# `make run`: Meridian's authoritative server for the example zone on
# 127.0.0.1:5353 (DNS) and 127.0.0.1:8053 (the REST API, metrics), with
# its embedded etcd and the example regions and services. The first start
# creates an admin API token in data/admin.token for `bin/meridian ctl`.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/geoipdb.sh

cat <<MSG
meridian: serving gslb.example on 127.0.0.1:5353. Try:
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=193.0.0.0/24      # Europe
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=8.8.8.0/24        # North America
  dig @127.0.0.1 -p 5353 www.gslb.example A +subnet=202.12.27.0/24    # Asia
  curl -s '127.0.0.1:8053/v1/explain?name=www.gslb.example&client=193.0.0.1'
  bin/meridian ctl get status
  bin/meridian ctl weights set api.gslb.example us-east=0 eu-west=100 ap-northeast=0
  dig @127.0.0.1 -p 5353 api.gslb.example A +short                  # now 192.0.2.10
MSG
exec ./bin/meridian server --config examples/meridian.yaml "$@"
