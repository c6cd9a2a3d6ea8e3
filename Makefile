# Meridian — common tasks. `make run` and `make test` are the two a newcomer needs.
GO          ?= go
BIN         := bin/meridian
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 60s
SHORTFUZZ   ?= 10s

.PHONY: all build run test unit unit-norace fuzz-short bench bench-cover bench-go lint fuzz clean deps-test deps-run deps-bench

all: build

build:
	$(GO) build -o $(BIN) ./cmd/meridian

# The main job: an authoritative server for the example zones on 127.0.0.1:5353.
run: build deps-run
	./scripts/run.sh

# Everything CI checks: the Debian packages the tests drive (installed when
# missing), lint, the race-enabled test suite (with the real etcd, dig/kdig
# and unbound integration tests), the tests too slow under the race
# detector, and a short fuzz run.
test: deps-test lint unit unit-norace fuzz-short

unit: deps-test
	$(GO) test -race -count=1 -timeout 15m ./...

# Tests that skip themselves under -race because the race detector makes
# them too slow; here they run without it. A line per package.
unit-norace: deps-test
	$(GO) test -count=1 -run '^TestGeoIPTorBuildReproducible$$' ./geo
	$(GO) test -count=1 -run '^TestGeoTableTor$$' ./regions

# Debian packages by target (scripts/deps.sh lists them): silent when all
# are installed.
deps-test deps-run deps-bench:
	./scripts/deps.sh $(@:deps-%=%)

fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzServePacket$$' -fuzztime $(SHORTFUZZ) -fuzzminimizetime 5s ./dnsserver
	$(GO) test -run '^$$' -fuzz '^FuzzParseZone$$' -fuzztime $(SHORTFUZZ) -fuzzminimizetime 5s ./zones

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServePacket$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./dnsserver
	$(GO) test -run '^$$' -fuzz '^FuzzParseZone$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s ./zones

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Go micro-benchmarks (ns/op, allocs/op).
bench-go: deps-test deps-bench
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Meridian against gdnsd (and Knot) under dnsperf, same machine, same run:
# a static name, and a name steered by continent with ECS.
bench: build deps-bench
	./scripts/geoipdb.sh
	BENCH_MMDB=$${BENCH_MMDB:-data/country.mmdb} ./bench/run.sh

# How many ECS blocks gdnsd and Meridian need to cover IPv4 for the same
# geo map and database (bench/cover.sh walks each with bench/ecscover).
bench-cover: build deps-bench
	./scripts/geoipdb.sh
	COVER_MMDB=$${COVER_MMDB:-data/country.mmdb} ./bench/cover.sh

clean:
	rm -rf bin
