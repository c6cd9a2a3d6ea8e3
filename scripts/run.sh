#!/usr/bin/env bash
# `make run`: Meridian's authoritative server for the example zone on
# 127.0.0.1:5353 (DNS) and 127.0.0.1:8053 (metrics, health).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "meridian: serving examples/zones on 127.0.0.1:5353; try: dig @127.0.0.1 -p 5353 www.gslb.example A"
exec ./bin/meridian server --config examples/meridian.yaml "$@"
