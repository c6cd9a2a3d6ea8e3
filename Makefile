# Meridian — common tasks. `make run` and `make test` are the two a newcomer needs.
GO          ?= go
BIN         := bin/meridian
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Fuzzing is bounded by a number of executions, not by a duration: with a
# duration, Go before 1.27 can end a run that found nothing with a bare
# "context deadline exceeded" (Go issue 75804), and only a finding may
# fail the build. fuzz-short runs each target about 10 s on an idle
# 2-core machine; fuzz runs FUZZX times as many: by default FUZZX=6, about
# 1 min a target and 2 min in all on the 2-core machine (118 s wall, 158 s
# CPU); each step of FUZZX adds about 20 s.
FUZZ_SERVEPACKET ?= 80000
FUZZ_PARSEZONE   ?= 25000
FUZZX            ?= 6
FUZZMINIMIZE     ?= 2000x

.PHONY: all build run test unit unit-norace e2e fuzz-short bench bench-cover bench-go scale sim lint fuzz clean deps-test deps-run deps-bench

all: build

build:
	$(GO) build -o $(BIN) ./cmd/meridian

# The main job: an authoritative server for the example zones on 127.0.0.1:5353.
run: build deps-run
	./scripts/run.sh

# Everything CI checks: the Debian packages the tests drive (installed when
# missing), lint, the race-enabled test suite (with the real etcd, dig/kdig
# and unbound integration tests), the tests too slow under the race
# detector, a short fuzz run and the end-to-end suite.
test: deps-test lint unit unit-norace fuzz-short e2e

unit: deps-test
	$(GO) test -race -count=1 -timeout 15m ./...

# Tests that skip themselves under -race because the race detector makes
# them too slow; here they run without it. A line per package.
unit-norace: deps-test
	$(GO) test -count=1 -run '^TestGeoIPTorBuildReproducible$$' ./geo
	$(GO) test -count=1 -run '^TestGeoTableTor$$' ./regions
	$(GO) test -count=1 -run '^TestScale1000$$' ./bench/scale

# Debian packages by target (scripts/deps.sh lists them): silent when all
# are installed.
deps-test deps-run deps-bench:
	./scripts/deps.sh $(@:deps-%=%)

# The end-to-end suite (e2e/, build tag e2e): real processes on loopback,
# a 3-member etcd cluster with TLS, two name servers, a prober per region,
# unbound and BIND; each scenario prints what it measures. About a minute,
# and 25 s more for HAProxy before stand-in backends (TestHAProxy).
e2e: build deps-test
	./scripts/geoipdb.sh
	MERIDIAN_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -count=1 -timeout 5m -v ./e2e

fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzServePacket$$' -fuzztime $(FUZZ_SERVEPACKET)x -fuzzminimizetime $(FUZZMINIMIZE) ./dnsserver
	$(GO) test -run '^$$' -fuzz '^FuzzParseZone$$' -fuzztime $(FUZZ_PARSEZONE)x -fuzzminimizetime $(FUZZMINIMIZE) ./zones

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServePacket$$' -fuzztime $$(($(FUZZ_SERVEPACKET) * $(FUZZX)))x -fuzzminimizetime $(FUZZMINIMIZE) ./dnsserver
	$(GO) test -run '^$$' -fuzz '^FuzzParseZone$$' -fuzztime $$(($(FUZZ_PARSEZONE) * $(FUZZX)))x -fuzzminimizetime $(FUZZMINIMIZE) ./zones

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./e2e

# Go micro-benchmarks (ns/op, allocs/op).
bench-go: deps-test deps-bench
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Meridian against gdnsd (and Knot) under dnsperf, same machine, same run:
# a static name, a name steered by continent with ECS, a mix of names, and
# the mix with the DO bit against Meridian and Knot serving the zone signed.
bench: build deps-bench
	./scripts/geoipdb.sh
	BENCH_MMDB=$${BENCH_MMDB:-data/country.mmdb} ./bench/run.sh

# How many ECS blocks gdnsd and Meridian need to cover IPv4 for the same
# geo map and database (bench/cover.sh walks each with bench/ecscover).
bench-cover: build deps-bench
	./scripts/geoipdb.sh
	COVER_MMDB=$${COVER_MMDB:-data/country.mmdb} ./bench/cover.sh

# The control path at 100, 1,000 and 10,000 services (and 10,000 with a
# country map per geo service): apply, every service answering, drains,
# health and weight changes to the moved answer, restart, memory, the
# snapshot build after one change (bench/scale). Several minutes.
SCALE_SIZES ?= 100,1000,10000
scale: build deps-run
	./scripts/geoipdb.sh
	$(GO) run ./bench/scale -bin $(BIN) -mmdb data/country.mmdb -sizes $(SCALE_SIZES)

# The controller's dynamics (load steering, slow start) against resolver
# caches, in simulated time: one line per scenario (bench/sim). Seconds.
sim:
	$(GO) run ./bench/sim

clean:
	rm -rf bin
