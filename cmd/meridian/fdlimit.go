package main

import (
	"fmt"
	"log/slog"
	"math"
	"syscall"

	"github.com/meridian-gslb/meridian/dnsserver"
)

// Descriptors: the HTTP server and the DNS TCP listener hold a descriptor
// per connection; everything else the server needs (its etcd client's
// connections, the state file and its temporary, zone files, the GeoIP
// database, UDP sockets, listeners, the runtime's own; the embedded etcd
// has a process and a limit of its own) comes from the rest. The two
// connection limits are sized so that a reserve of at least minFDReserve
// descriptors, or a quarter of the limit when that is more, always stays
// free: a flood of connections then never makes a state file write or an
// etcd operation fail (docs/architecture.md, Connections and
// descriptors).
const minFDReserve = 256

// fdBudget is how the descriptors are shared.
type fdBudget struct {
	Limit  int // RLIMIT_NOFILE, after raising the soft limit to the hard one
	Raised bool
	// HTTP and DNSTCP are the connection limits in force: the configured
	// ones, lowered (in proportion) when they would eat into the reserve.
	HTTP, DNSTCP int
	Lowered      bool
	// Reserve is what the connections can never take.
	Reserve int
}

// raiseFDLimit raises the soft descriptor limit to the hard one (the Go
// runtime does so too on Linux; this also covers a soft limit lowered
// since) and returns the limit in force.
func raiseFDLimit() (limit uint64, raised bool, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false, fmt.Errorf("descriptor limit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			return want.Cur, true, nil
		}
	}
	return rl.Cur, false, nil
}

// shareFDs shares limit descriptors between the configured connection
// limits (0: that listener is off) and the reserve. A limit too small for
// the reserve and a few connections each still gets those few
// connections.
func shareFDs(limit uint64, http, dnsTCP int) fdBudget {
	l := int(min(limit, math.MaxInt32))
	b := fdBudget{Limit: l, HTTP: http, DNSTCP: dnsTCP}
	if avail := l - max(minFDReserve, l/4); http+dnsTCP > avail {
		const least = 16
		b.Lowered = true
		b.HTTP = int(int64(max(avail, 0)) * int64(http) / int64(http+dnsTCP))
		b.DNSTCP = max(avail, 0) - b.HTTP
		if http > 0 {
			b.HTTP = max(b.HTTP, least)
		}
		if dnsTCP > 0 {
			b.DNSTCP = max(b.DNSTCP, least)
		}
	}
	b.Reserve = l - b.HTTP - b.DNSTCP
	return b
}

// budgetFDs raises the descriptor limit, shares it and logs the result.
func budgetFDs(cfg *Config, log *slog.Logger) fdBudget {
	http := cfg.HTTP.MaxConnections
	if cfg.Listen.HTTP == "" {
		http = 0
	}
	dnsTCP := cfg.DNS.TCPMaxConnections
	if dnsTCP == 0 {
		dnsTCP = dnsserver.DefaultTCPMaxConns
	}
	limit, raised, err := raiseFDLimit()
	if err != nil {
		log.Warn("cannot read the descriptor limit; connection limits as configured", "err", err)
		return fdBudget{HTTP: http, DNSTCP: dnsTCP}
	}
	b := shareFDs(limit, http, dnsTCP)
	b.Raised = raised
	attrs := []any{"limit", b.Limit, "raised_to_hard_limit", b.Raised, "http_max_connections", b.HTTP,
		"dns_tcp_max_connections", b.DNSTCP, "reserve", b.Reserve}
	if b.Lowered {
		log.Warn("descriptor limit too low for the configured connection limits; lowered them to keep a reserve for etcd, the state file and DNS "+
			"(raise LimitNOFILE)", append(attrs, "configured_http", http, "configured_dns_tcp", dnsTCP)...)
	} else {
		log.Info("file descriptors", attrs...)
	}
	return b
}
