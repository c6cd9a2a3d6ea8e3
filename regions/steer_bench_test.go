package regions

import "testing"

// BenchmarkDecide measures one decision per policy (see allocCases), with
// the allocation-free test locator.
func BenchmarkDecide(b *testing.B) {
	for _, tc := range allocCases() {
		b.Run(tc.name, func(b *testing.B) {
			st := steerState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(b, st, SnapshotOptions{})
			v := mustView(b, s, tc.svc.Name)
			c := newClient(tc.addr, newLocator())
			b.ReportAllocs()
			var rnd uint64
			for b.Loop() {
				rnd++
				s.Decide(v, c, tc.qtype, rnd)
			}
		})
	}
}

// BenchmarkDecideGeoDB decides with a real country database as locator:
// "geo" looks the client up, "geo-table" reads the snapshot's compiled
// table (as the server does).
func BenchmarkDecideGeoDB(b *testing.B) {
	db := countryDB(b)
	for _, tc := range []struct {
		name string
		svc  *Service
		opts SnapshotOptions
	}{
		{"geo", geoService(), SnapshotOptions{}},
		{"geo-table", geoService(), SnapshotOptions{GeoIP: db}},
		{"nearest", fourRegions(PolicyNearest), SnapshotOptions{GeoIP: db}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := buildSnap(b, steerState(tc.svc), tc.opts)
			v := mustView(b, s, tc.svc.Name)
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
	s := buildSnap(b, steerState(geoService()), SnapshotOptions{})
	v := mustView(b, s, "geo.example.")
	c := newClient(clientFR, newLocator())
	b.ReportAllocs()
	for b.Loop() {
		s.Explain(v, c, QTypeA, 1)
	}
}
