package dnssec

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// refLabels is a wire name's labels, the root's left out.
func refLabels(w []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(w) && w[off] != 0; off += int(w[off]) + 1 {
		out = append(out, w[off+1:off+1+int(w[off])])
	}
	return out
}

// refCompare is RFC 4034 §6.1 as it reads: labels compared from the
// root as octet strings, a name before its descendants.
func refCompare(a, b []byte) int {
	la, lb := refLabels(a), refLabels(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := bytes.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// refBelow says whether child is a proper descendant of parent.
func refBelow(child, parent []byte) bool {
	return len(child) > len(parent) && bytes.HasSuffix(child, parent) &&
		slices.ContainsFunc(offsetsOf(child), func(off int) bool { return len(child)-off == len(parent) })
}

func offsetsOf(w []byte) []int {
	var out []int
	for off := 0; off < len(w); off += int(w[off]) + 1 {
		out = append(out, off)
	}
	return out
}

// refDenial is what chain.denial must return, found by walking the
// sorted names one by one, ancestor by ancestor.
func refDenial(names [][]byte, name []byte) (a, b int) {
	cover := func(n []byte) int {
		i := 0
		for j, e := range names {
			if refCompare(e, n) <= 0 {
				i = j
			}
		}
		return i
	}
	exists := func(n []byte) bool {
		return slices.ContainsFunc(names, func(e []byte) bool { return bytes.Equal(e, n) || refBelow(e, n) })
	}
	a = cover(name)
	if bytes.Equal(names[a], name) || exists(name) {
		return a, -1
	}
	ce := name
	for _, off := range offsetsOf(name)[1:] {
		if ce = name[off:]; exists(ce) {
			break
		}
	}
	w := append([]byte{1, '*'}, ce...)
	if len(w) > zones.MaxNameLen {
		return a, -1
	}
	if b = cover(w); b == a {
		b = -1
	}
	return a, b
}

// chainOf builds the chain of f's zone over names alone.
func chainOf(tb testing.TB, f *fixture, names []string) *chain {
	tb.Helper()
	z := f.set.Zone("example.org.")
	byWire := map[string]*nameTypes{}
	for _, n := range names {
		w, err := zones.WireName(n)
		if err != nil {
			tb.Fatal(err)
		}
		byWire[w] = &nameTypes{wire: w, name: n, types: []uint16{dns.TypeA}}
	}
	c, err := buildChain(z, byWire, f.signer.signers["example.org."])
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// randomLabel draws a label from octets that order differently as
// octets than as characters would: zero, '*', '-', digits, letters,
// 0xFF, and prefixes of one another.
func randomLabel(r *rand.Rand) string {
	const alphabet = "\x00\x01*-09az\xff"
	n := 1 + r.IntN(3)
	var b strings.Builder
	for range n {
		c := alphabet[r.IntN(len(alphabet))]
		if c == '*' && n == 1 {
			c = 'a' // a lone "*" is a wildcard owner: drawn on purpose below
		}
		fmt.Fprintf(&b, "\\%03d", c)
	}
	return b.String()
}

// TestChainDenial checks the canonical keys against the RFC's order and
// denial against a walk over every name: for chains of drawn names
// (wildcards, empty non-terminals, octets that sort oddly, names of the
// longest length), every query name gets the same NSEC records.
func TestChainDenial(t *testing.T) {
	f := newFixture(t, AlgED25519)
	long := strings.Repeat(strings.Repeat("x", 60)+".", 3) // 183 octets: a wildcard below it does not fit
	for _, tc := range []struct {
		name  string
		seed  uint64
		names []string
	}{
		{name: "apex only", names: nil},
		{name: "flat", names: []string{"a", "b", "www", "mail", "ns1", "*", "zz"}},
		{name: "deep", names: []string{"a.b.c", "x.b.c", "*.b.c", "c", "d.e.f.g", "*.g", "h"}},
		{name: "wildcards", names: []string{"*", "*.a", "*.b.a", "b.a", "c.*.a", "-", "0"}},
		{name: "longest names", names: []string{"a." + long + "y", "b." + long + "y", "*." + long + "y"}},
		{name: "drawn 1", seed: 1},
		{name: "drawn 2", seed: 2},
		{name: "drawn 3", seed: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, 7))
			names := []string{"example.org."}
			for _, n := range tc.names {
				names = append(names, n+".example.org.")
			}
			if tc.seed != 0 {
				for range 60 {
					n := randomLabel(r)
					for range r.IntN(3) {
						n += "." + randomLabel(r)
					}
					if r.IntN(5) == 0 {
						n = "*." + n
					}
					names = append(names, n+".example.org.")
				}
			}
			c := chainOf(t, f, names)
			var wires [][]byte
			for _, e := range c.entries {
				wires = append(wires, []byte(e.wire))
			}
			for i := 1; i < len(wires); i++ {
				if refCompare(wires[i-1], wires[i]) >= 0 {
					t.Fatalf("chain out of order: %q before %q", wires[i-1], wires[i])
				}
			}
			// Query names: every name of the chain, names next to and
			// below them, and drawn ones.
			var queries []string
			for _, n := range names {
				queries = append(queries, n, "x."+n, "*."+n, "a.b."+n, "\\000."+n, "-."+n, "\\255.z."+n)
			}
			for range 300 {
				queries = append(queries, randomLabel(r)+"."+randomLabel(r)+".example.org.", randomLabel(r)+".example.org.")
			}
			for _, q := range queries {
				w, err := zones.WireName(q)
				if err != nil {
					continue // too long
				}
				var buf keyBuf
				if k, h := canonKey(c.rel([]byte(w)), &buf); h != head(string(k)) {
					t.Errorf("key of %s: head %x, want %x", q, h, head(string(k)))
				}
				wa, wb := refDenial(wires, []byte(w))
				ga, gb := c.denial([]byte(w))
				if ga != wa || gb != wb {
					t.Errorf("denial of %s: %d %d, want %d %d", q, ga, gb, wa, wb)
				}
				if ca := c.cover([]byte(w)); ca != wa {
					t.Errorf("cover of %s: %d, want %d", q, ca, wa)
				}
			}
		})
	}
}

// BenchmarkChainDenial is the query path's NSEC lookup, for a name that
// does not exist, one below a service and one that does exist, in a zone
// of 20 names and in one of 10,000 services.
func BenchmarkChainDenial(b *testing.B) {
	f := newFixture(b, AlgED25519)
	for _, n := range []int{20, 10000} {
		names := []string{"example.org.", "www.example.org.", "*.wild.example.org."}
		for i := range n - len(names) {
			names = append(names, fmt.Sprintf("s%05d.svc.example.org.", i))
		}
		c := chainOf(b, f, names)
		for _, q := range []string{"nope.example.org.", "x.s00010.svc.example.org.", "www.example.org."} {
			w, _ := zones.WireName(q)
			name := []byte(w)
			b.Run(fmt.Sprintf("%d/%s", n, q), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.denial(name)
				}
			})
		}
	}
}
