package latency

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// benchLatencyPrefixes is the size of the benchmark table.
const benchLatencyPrefixes = 1_000_000

// randomLatencyEntries makes n distinct random prefixes, 60% IPv4 (mostly
// /24, some /16 to /28) and 40% IPv6 in 2000::/3 (mostly /48, some /32 to
// /64), each with 1 to 3 of 50 regions.
func randomLatencyEntries(n int, seed uint64) []Entry {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	regions := make([]string, 50)
	for i := range regions {
		regions[i] = "region-" + strconv.Itoa(i)
	}
	seen := make(map[netip.Prefix]struct{}, n)
	out := make([]Entry, 0, 2*n)
	for len(seen) < n {
		var p netip.Prefix
		if rng.IntN(10) < 6 {
			bits := 24
			if r := rng.IntN(10); r < 2 {
				bits = 16 + rng.IntN(8)
			} else if r == 2 {
				bits = 25 + rng.IntN(4)
			}
			x := rng.Uint32()
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}), bits).Masked()
		} else {
			bits := 48
			if rng.IntN(4) == 0 {
				bits = 32 + rng.IntN(33)
			}
			var b [16]byte
			hi := rng.Uint64()
			for i := range 8 {
				b[i] = byte(hi >> (56 - 8*i))
			}
			b[0] = 0x20 | b[0]&0x1f
			p = netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		k := 1 + rng.IntN(3)
		first := rng.IntN(len(regions))
		for j := range k {
			out = append(out, Entry{Prefix: p, Region: regions[(first+j*7)%len(regions)], RTTms: float64(1+rng.IntN(300000)) / 1000})
		}
	}
	return out
}

var benchLatency struct {
	once    sync.Once
	entries []Entry
	csv     []byte
}

func benchLatencyData() ([]Entry, []byte) {
	benchLatency.once.Do(func() {
		benchLatency.entries = randomLatencyEntries(benchLatencyPrefixes, 1)
		benchLatency.csv = FormatCSV(benchLatency.entries)
	})
	return benchLatency.entries, benchLatency.csv
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkLatencyLookup looks up random addresses, half of them inside
// the table's prefixes, in a table of a million prefixes. It reports the
// table's heap size.
func BenchmarkLatencyLookup(b *testing.B) {
	entries, csv := benchLatencyData()
	before := heapInUse()
	table, err := Compile("bench", csv)
	if err != nil {
		b.Fatal(err)
	}
	after := heapInUse()
	if table.Len() != benchLatencyPrefixes {
		b.Fatalf("%d prefixes, want %d", table.Len(), benchLatencyPrefixes)
	}

	// Half of the addresses inside a random entry, half anywhere in
	// 0.0.0.0/0 or 2000::/3; 60% IPv4 like the table.
	rng := rand.New(rand.NewPCG(3, 4))
	var v4, v6 []netip.Addr
	for len(v4) < 1<<16 || len(v6) < 1<<16 {
		var a netip.Addr
		if rng.IntN(2) == 0 {
			p := entries[rng.IntN(len(entries))].Prefix
			b := p.Addr().AsSlice()
			b[len(b)-1] ^= byte(rng.IntN(256)) & byte(0xff>>min(8, max(0, p.Bits()-(len(b)*8-8))))
			a, _ = netip.AddrFromSlice(b)
		} else if rng.IntN(10) < 6 {
			x := rng.Uint32()
			a = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		} else {
			var b [16]byte
			x, y := rng.Uint64(), rng.Uint64()
			for j := range 8 {
				b[j], b[8+j] = byte(x>>(8*j)), byte(y>>(8*j))
			}
			b[0] = 0x20 | b[0]&0x1f
			a = netip.AddrFrom16(b)
		}
		if a.Is4() && len(v4) < 1<<16 {
			v4 = append(v4, a)
		} else if a.Is6() && len(v6) < 1<<16 {
			v6 = append(v6, a)
		}
	}
	mix := make([]netip.Addr, 1<<16)
	for i := range mix {
		if rng.IntN(10) < 6 {
			mix[i] = v4[i]
		} else {
			mix[i] = v6[i]
		}
	}
	for _, set := range []struct {
		name  string
		addrs []netip.Addr
	}{{"mix", mix}, {"v4", v4}, {"v6", v6}} {
		b.Run(set.name, func(b *testing.B) {
			hits := 0
			for _, a := range set.addrs {
				if _, ok := table.Lookup(a); ok {
					hits++
				}
			}
			b.ReportAllocs()
			var sink int
			for i := 0; b.Loop(); i++ {
				m, _ := table.Lookup(set.addrs[i&(1<<16-1)])
				sink += m.Bits()
			}
			_ = sink
			// After the loop: b.Loop resets the timer and the extra metrics.
			b.ReportMetric(float64(after-before)/(1<<20), "table-MiB")
			b.ReportMetric(float64(after-before)/float64(table.Len()), "B/prefix")
			b.ReportMetric(float64(hits)/float64(len(set.addrs)), "hit-ratio")
		})
	}
	runtime.KeepAlive(table)
}

// BenchmarkCompileLatency parses and compiles the million-prefix table.
func BenchmarkCompileLatency(b *testing.B) {
	entries, csv := benchLatencyData()
	b.Run("parse+compile", func(b *testing.B) {
		for b.Loop() {
			if _, err := Compile("bench", csv); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(entries)), "entries")
		b.ReportMetric(float64(len(csv))/(1<<20), "csv-MiB")
	})
	// From entries parsed already: the build alone.
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			if _, err := compileLatencyEntries(entries); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(entries)), "entries")
	})
}
