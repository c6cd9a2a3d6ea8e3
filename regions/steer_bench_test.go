package regions

import "testing"

// BenchmarkDecide measures one decision per policy (see allocCases), with
// the allocation-free test locator.
func BenchmarkDecide(b *testing.B) {
	for _, tc := range allocCases() {
		b.Run(tc.name, func(b *testing.B) {
			st := newState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := build(b, st, SnapshotOptions{})
			v := view(b, s, tc.svc.Name)
			c := client(tc.addr, newLocator())
			b.ReportAllocs()
			var rnd uint64
			for b.Loop() {
				rnd++
				s.Decide(v, c, tc.qtype, rnd)
			}
		})
	}
}

// BenchmarkDecideGeoDB decides with a real country database as locator.
func BenchmarkDecideGeoDB(b *testing.B) {
	db := countryDB(b)
	for _, tc := range []struct {
		name string
		svc  *Service
	}{{"geo", geoService()}, {"nearest", four(PolicyNearest)}} {
		b.Run(tc.name, func(b *testing.B) {
			s := build(b, newState(tc.svc), SnapshotOptions{})
			v := view(b, s, tc.svc.Name)
			c := &Client{Addr: clientFR, Bits: 24, Locator: db}
			b.ReportAllocs()
			var rnd uint64
			for b.Loop() {
				rnd++
				s.Decide(v, c, QTypeA, rnd)
			}
		})
	}
}

// BenchmarkExplain is the allocating path, for comparison.
func BenchmarkExplain(b *testing.B) {
	s := build(b, newState(geoService()), SnapshotOptions{})
	v := view(b, s, "geo.example.")
	c := client(clientFR, newLocator())
	b.ReportAllocs()
	for b.Loop() {
		s.Explain(v, c, QTypeA, 1)
	}
}
