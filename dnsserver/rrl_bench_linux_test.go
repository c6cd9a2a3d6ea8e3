package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkRRL is the handler's cost per query with and without the
// limiter: one client (its account stays in cache, as for dnsperf in
// make bench) and a new client network each query (every account a
// miss in a table larger than the caches). The clock is read once per 8
// queries, as the UDP loops read it once per batch; the time passed to
// the limiter moves 10 µs per query, so none is limited. Besides the
// wall time per query it reports the CPU time of the process per query
// (cpu-ns/op), which other work on a shared machine does not inflate
// as much: run the cases as separate processes in turn to compare them,
//
//	go test -c -o rrl.test ./dnsserver
//	for i in 1 2 3; do for c in off on/one_client on/many_clients; do
//		./rrl.test -test.run '^$' -test.bench "BenchmarkRRL/$c\$" -test.cpu 1
//	done; done
func BenchmarkRRL(b *testing.B) {
	req := pack(b, withEDNS(question("www.example.org.", dns.TypeA), 1232, false))
	for _, c := range []struct {
		name    string
		rrl     bool
		clients uint32
	}{
		{"off", false, 1},
		{"on/one client", true, 1},
		{"on/many clients", true, 1 << 22},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := HandlerConfig{}
			if c.rrl {
				cfg.RRL = newTestRRL(b, RRLConfig{Rate: MaxRRLRate, TableSize: DefaultRRLTableSize}, nil)
			}
			h := testHandler(b, cfg)
			buf := make([]byte, 0, 4096)
			var i uint32
			var sink int64
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				i++
				if i%8 == 0 {
					sink += monoNow()
				}
				a := 0x0a000000 + i%c.clients<<8
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), 1}), 5353)
				h.serveAt(buf, req, src, ProtoUDP, int64(i)*int64(10*time.Microsecond))
			}
			cpu := processCPU(b) - cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			_ = sink
		})
	}
}
