package dnsserver

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/meridian-gslb/meridian/zones"
)

// TestFold8 folds every byte value in every position of a word, among
// random neighbours, and compares with folding one byte at a time.
func TestFold8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for c := range 256 {
		for pos := range 8 {
			var b [8]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			b[pos] = byte(c)
			w := uint64(0)
			for i := 7; i >= 0; i-- {
				w = w<<8 | uint64(b[i])
			}
			got := fold8(w)
			for i := range b {
				if g, want := byte(got>>(8*i)), toLower[b[i]]; g != want {
					t.Fatalf("fold8(% x): byte %d = %#x, want %#x", b, i, g, want)
				}
			}
		}
	}
}

func TestReadQName(t *testing.T) {
	label63 := append([]byte{63}, bytes.Repeat([]byte{'A'}, 63)...)
	long := append(bytes.Repeat(label63, 3), 61) // 3*64 + 1 + 61 + 1 = 255 bytes
	long = append(append(long, bytes.Repeat([]byte{'Z'}, 61)...), 0)
	cases := []struct {
		name string
		msg  []byte
		last bool // nothing follows msg
		ok   bool
	}{
		{"root", []byte{0}, false, true},
		{"mixed case", []byte("\x03WwW\x04GsLb\x07EXAMPLE\x00"), false, true},
		{"bytes beside the letters", []byte("\x08@[`{\xc1\xdaAz\x00"), false, true},
		{"255 bytes", long, false, true},
		{"255 bytes, nothing after", long, true, true},
		{"256 bytes", append([]byte{1, 'x'}, long...), false, false},
		{"pointer", []byte{0xC0, 12}, false, false},
		{"obsolete label type", []byte{0x40, 0}, false, false},
		{"label past the end", []byte("\x05ab"), true, false},
		{"no end", []byte("\x02ab"), true, false},
		{"empty", nil, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The name sits after a header-sized prefix and before a type.
			msg := append(make([]byte, headerLen), tc.msg...)
			if !tc.last {
				msg = append(msg, 0, 1, 0, 1)
			}
			var lower [zones.MaxNameLen]byte
			end, ok := readQName(msg, headerLen, &lower)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if end != headerLen+len(tc.msg) {
				t.Fatalf("end = %d, want %d", end, headerLen+len(tc.msg))
			}
			want := make([]byte, len(tc.msg))
			for i, c := range tc.msg {
				want[i] = toLower[c]
			}
			if got := lower[:len(tc.msg)]; !bytes.Equal(got, want) {
				t.Fatalf("lower = %q, want %q", got, want)
			}
		})
	}
}
