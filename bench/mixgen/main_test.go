package main

import (
	"crypto"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// signedFixture is a zone key and a signer of RRsets with it.
type signedFixture struct {
	key  *dns.DNSKEY
	priv crypto.Signer
}

func newSignedFixture(t *testing.T) signedFixture {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	return signedFixture{key: k, priv: priv.(crypto.Signer)}
}

// sign returns the RRSIG of set, valid from inception to expiration.
func (f signedFixture) sign(t *testing.T, set []dns.RR, inception, expiration time.Time) *dns.RRSIG {
	t.Helper()
	h := set[0].Header()
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		KeyTag: f.key.KeyTag(), SignerName: zone, Algorithm: f.key.Algorithm,
		Inception: uint32(inception.Unix()), Expiration: uint32(expiration.Unix())}
	if err := sig.Sign(f.priv, set); err != nil {
		t.Fatal(err)
	}
	return sig
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifySigned(t *testing.T) {
	f := newSignedFixture(t)
	other := newSignedFixture(t)
	now := time.Now()
	from, to := now.Add(-time.Hour), now.Add(24*time.Hour)
	a := rr(t, "www.gslb.example. 60 IN A 192.0.2.10")
	soa := rr(t, "gslb.example. 300 IN SOA ns1.gslb.example. hostmaster.gslb.example. 1 7200 3600 1209600 300")
	nsec := rr(t, "nx-0.gslb.example. 300 IN NSEC static.gslb.example. A RRSIG NSEC")
	sigA := f.sign(t, []dns.RR{a}, from, to)

	tests := []struct {
		name  string
		rcode int
		ans   []dns.RR
		ns    []dns.RR
		want  string // "" or a part of the complaint
	}{
		{"signed answer", dns.RcodeSuccess, []dns.RR{a, sigA}, nil, ""},
		{"no signature", dns.RcodeSuccess, []dns.RR{a}, nil, "no RRSIG"},
		{"records changed after signing", dns.RcodeSuccess,
			[]dns.RR{rr(t, "www.gslb.example. 60 IN A 192.0.2.20"), sigA}, nil, "does not verify"},
		{"signed by another key", dns.RcodeSuccess, []dns.RR{a, other.sign(t, []dns.RR{a}, from, to)}, nil, "by no key"},
		{"expired", dns.RcodeSuccess, []dns.RR{a, f.sign(t, []dns.RR{a}, now.Add(-48*time.Hour), now.Add(-time.Hour))}, nil, "not valid now"},
		{"name error with its NSEC", dns.RcodeNameError, nil,
			[]dns.RR{soa, f.sign(t, []dns.RR{soa}, from, to), nsec, f.sign(t, []dns.RR{nsec}, from, to)}, ""},
		{"name error without NSEC", dns.RcodeNameError, nil, []dns.RR{soa, f.sign(t, []dns.RR{soa}, from, to)}, "without NSEC"},
		{"name error with an unsigned NSEC", dns.RcodeNameError, nil,
			[]dns.RR{soa, f.sign(t, []dns.RR{soa}, from, to), nsec}, "NSEC: no RRSIG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.Rcode, m.Answer, m.Ns = tt.rcode, tt.ans, tt.ns
			got := verifySigned(m, []*dns.DNSKEY{f.key})
			switch {
			case tt.want == "" && got != "":
				t.Fatalf("verifySigned = %q, want no complaint", got)
			case tt.want != "" && !strings.Contains(got, tt.want):
				t.Fatalf("verifySigned = %q, want a complaint with %q", got, tt.want)
			}
		})
	}
}

func TestReadPackets(t *testing.T) {
	q := query{name: "www." + zone, do: true}
	p, err := pack(q, 7)
	if err != nil {
		t.Fatal(err)
	}
	var file []byte
	for range 3 {
		file = binary.BigEndian.AppendUint16(file, uint16(len(p)))
		file = append(file, p...)
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte
		packets int
		wantErr bool
	}{
		{"three packets", file, 3, false},
		{"empty", nil, 0, false},
		{"a packet cut short", file[:len(file)-1], 0, true},
		{"a length cut short", append(append([]byte{}, file...), 0), 0, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readPackets(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("readPackets: %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if len(got) != tt.packets {
				t.Fatalf("%d packets, want %d", len(got), tt.packets)
			}
			for _, b := range got {
				m := new(dns.Msg)
				if err := m.Unpack(b); err != nil {
					t.Fatal(err)
				}
				if o := m.IsEdns0(); o == nil || !o.Do() || o.UDPSize() != 1232 {
					t.Fatalf("packet %v: want EDNS with DO and a 1232-byte buffer", m)
				}
			}
		})
	}
}
