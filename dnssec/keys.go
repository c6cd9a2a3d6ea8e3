package dnssec

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// The algorithms keys may use (RFC 8624 recommends both for signing).
const (
	AlgECDSAP256SHA256 = dns.ECDSAP256SHA256 // 13, the default
	AlgED25519         = dns.ED25519         // 15
)

// DNSKEY flags: a zone key (256), with the secure entry point bit for a
// key-signing key or a combined signing key (257).
const (
	flagZone = 256
	flagSEP  = 257
)

// Role is what a key signs.
type Role uint8

// The roles: a combined signing key signs every RRset; a key-signing key
// the DNSKEY RRset only, a zone-signing key everything else. A zone whose
// keys all have the SEP flag uses them as CSKs.
const (
	RoleCSK Role = iota
	RoleKSK
	RoleZSK
)

func (r Role) String() string {
	switch r {
	case RoleKSK:
		return "KSK"
	case RoleZSK:
		return "ZSK"
	}
	return "CSK"
}

// KeyState says what a key does now. Every key loaded from its files is
// published and signs; a rollover moves keys through the states in turn
// (published before it signs, withdrawn after it stopped), and every name
// server of a deployment must agree on them, so the state is a value of
// its own, kept apart from the key material.
type KeyState struct {
	Published bool // its DNSKEY is in the apex's DNSKEY RRset
	Signing   bool // it makes signatures
	// CDS: its CDS and CDNSKEY records are at the apex (RFC 7344): the
	// DS the zone asks its parent to hold. SEP keys only.
	CDS bool
}

// Key is one DNSSEC key of a zone.
type Key struct {
	DNSKEY *dns.DNSKEY
	Signer crypto.Signer // nil: a public key only
	Role   Role
	State  KeyState
	File   string // the .key file it was read from
}

// Tag is the key tag (RFC 4034 Appendix B).
func (k *Key) Tag() uint16 { return k.DNSKEY.KeyTag() }

// ParseAlgorithm reads an algorithm by number or name.
func ParseAlgorithm(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "", "13", "ecdsap256sha256", "ecdsa":
		return AlgECDSAP256SHA256, nil
	case "15", "ed25519":
		return AlgED25519, nil
	}
	return 0, fmt.Errorf("algorithm %q: want 13 (ECDSAP256SHA256) or 15 (ED25519)", s)
}

// keyBase is the BIND name of a key's files, without the extension:
// K<zone>+<algorithm>+<tag>.
func keyBase(zone string, alg uint8, tag uint16) string {
	return fmt.Sprintf("K%s+%03d+%05d", dns.Fqdn(strings.ToLower(zone)), alg, tag)
}

// Generate makes a key for zone and writes it to dir as BIND does: the
// DNSKEY in K<zone>+<alg>+<tag>.key (0644) and the private key in
// .private (0600). A KSK or CSK gets the SEP flag.
func Generate(dir, zone string, alg uint8, role Role) (*Key, error) {
	if _, ok := dns.IsDomainName(zone); !ok {
		return nil, fmt.Errorf("zone %q is not a domain name", zone)
	}
	if alg != AlgECDSAP256SHA256 && alg != AlgED25519 {
		return nil, fmt.Errorf("algorithm %d: want 13 or 15", alg)
	}
	flags := uint16(flagSEP)
	if role == RoleZSK {
		flags = flagZone
	}
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: dns.Fqdn(strings.ToLower(zone)), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: flags, Protocol: 3, Algorithm: alg}
	bits := 256
	priv, err := k.Generate(bits)
	if err != nil {
		return nil, fmt.Errorf("generating a key: %w", err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("generated key cannot sign")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, keyBase(zone, alg, k.KeyTag()))
	comment := fmt.Sprintf("; %s of %s, made by meridian dnssec keygen\n", role, k.Hdr.Name)
	if err := writeNew(base+".private", []byte(k.PrivateKeyString(priv)), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(base+".key", []byte(comment+k.String()+"\n"), 0o644); err != nil {
		os.Remove(base + ".private")
		return nil, err
	}
	return &Key{DNSKEY: k, Signer: signer, Role: role, State: KeyState{Published: true, Signing: true}, File: base + ".key"}, nil
}

// writeNew writes a file that must not exist yet, with mode perm.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// KeyError is a key file that cannot be used, with why.
type KeyError struct {
	File string
	Msg  string
}

func (e *KeyError) Error() string { return e.File + ": " + e.Msg }

// LoadKey reads the key whose public half is in file (a .key file) and
// whose private half is beside it (.private). The private file must be
// readable by its owner only; the DNSKEY must belong to zone and use
// algorithm 13 or 15, and the private key must match it.
func LoadKey(file, zone string) (*Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &KeyError{File: file, Msg: errMsg(err)}
	}
	rr, err := dns.NewRR(stripComments(string(b)))
	if err != nil || rr == nil {
		return nil, &KeyError{File: file, Msg: "no DNSKEY record in it"}
	}
	k, ok := rr.(*dns.DNSKEY)
	if !ok {
		return nil, &KeyError{File: file, Msg: fmt.Sprintf("holds a %s record, not a DNSKEY", dns.TypeToString[rr.Header().Rrtype])}
	}
	if !strings.EqualFold(dns.Fqdn(k.Hdr.Name), dns.Fqdn(zone)) {
		return nil, &KeyError{File: file, Msg: fmt.Sprintf("the key belongs to %s, not to %s", k.Hdr.Name, dns.Fqdn(zone))}
	}
	if k.Algorithm != AlgECDSAP256SHA256 && k.Algorithm != AlgED25519 {
		return nil, &KeyError{File: file, Msg: fmt.Sprintf("algorithm %d (%s): want 13 (ECDSAP256SHA256) or 15 (ED25519)", k.Algorithm, dns.AlgorithmToString[k.Algorithm])}
	}
	if k.Flags != flagZone && k.Flags != flagSEP || k.Protocol != 3 {
		return nil, &KeyError{File: file, Msg: fmt.Sprintf("flags %d, protocol %d: want a zone key (flags 256 or 257, protocol 3)", k.Flags, k.Protocol)}
	}
	priv := strings.TrimSuffix(file, ".key") + ".private"
	st, err := os.Stat(priv)
	if err != nil {
		return nil, &KeyError{File: priv, Msg: errMsg(err)}
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, &KeyError{File: priv, Msg: fmt.Sprintf("mode %04o lets other users read or change the private key; chmod 600 it", m)}
	}
	f, err := os.Open(priv)
	if err != nil {
		return nil, &KeyError{File: priv, Msg: errMsg(err)}
	}
	defer f.Close()
	pk, err := k.ReadPrivateKey(f, priv)
	if err != nil {
		return nil, &KeyError{File: priv, Msg: fmt.Sprintf("not a private key of algorithm %d: %v", k.Algorithm, err)}
	}
	signer, ok := pk.(crypto.Signer)
	if !ok {
		return nil, &KeyError{File: priv, Msg: "the private key cannot sign"}
	}
	if !samePublic(k, signer) {
		return nil, &KeyError{File: priv, Msg: "the private key does not belong to the DNSKEY in " + filepath.Base(file)}
	}
	k.Hdr.Name = dns.Fqdn(strings.ToLower(k.Hdr.Name))
	role := RoleZSK
	if k.Flags == flagSEP {
		role = RoleKSK
	}
	return &Key{DNSKEY: k, Signer: signer, Role: role, State: KeyState{Published: true, Signing: true}, File: file}, nil
}

// samePublic checks a private key against its DNSKEY by signing a test
// RRset and verifying it with the DNSKEY.
func samePublic(k *dns.DNSKEY, s crypto.Signer) bool {
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: k.Hdr.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{"key check"}}
	sig := &dns.RRSIG{KeyTag: k.KeyTag(), SignerName: k.Hdr.Name, Algorithm: k.Algorithm, Inception: 0, Expiration: 1<<32 - 1}
	if err := sig.Sign(s, []dns.RR{rr}); err != nil {
		return false
	}
	return sig.Verify(k, []dns.RR{rr}) == nil
}

func errMsg(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, ";") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// FindKeys lists the .key files of zone in dir (K<zone>+*.key), sorted.
func FindKeys(dir, zone string) ([]string, error) {
	prefix := "K" + dns.Fqdn(strings.ToLower(zone)) + "+"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(strings.ToLower(n), strings.ToLower(prefix)) && strings.HasSuffix(n, ".key") && !e.IsDir() {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// KeySet is a zone's keys with their roles settled: with zone-signing
// keys present the SEP keys are KSKs, otherwise they are CSKs. A KeySet
// is not changed once a Signer uses it: a change is a new KeySet
// (Signer.SetKeys).
type KeySet struct {
	Zone string // lower case, fully qualified
	Keys []*Key
	// TTL of the apex's DNSKEY, CDS and CDNSKEY RRsets; 0: the TTL of
	// the first key's DNSKEY record.
	TTL uint32
}

// NewKeySet checks keys for zone: at least one key with the SEP flag,
// which signs the DNSKEY RRset. Keys without it make the others KSKs.
func NewKeySet(zone string, keys []*Key) (*KeySet, error) {
	ks := &KeySet{Zone: dns.Fqdn(strings.ToLower(zone)), Keys: keys}
	sep, zsk := 0, 0
	for _, k := range keys {
		if k.DNSKEY.Flags == flagSEP {
			sep++
		} else {
			zsk++
		}
	}
	if sep == 0 {
		return nil, fmt.Errorf("zone %s: no key with the SEP flag (257) to sign the DNSKEY RRset; make one with `meridian dnssec keygen`", ks.Zone)
	}
	for _, k := range keys {
		switch {
		case k.DNSKEY.Flags != flagSEP:
			k.Role = RoleZSK
		case zsk > 0:
			k.Role = RoleKSK
		default:
			k.Role = RoleCSK
		}
	}
	return ks, nil
}

// LoadKeySet reads the keys of zone: the given .key files, or with none
// every key of the zone in dir. createAlg > 0 makes a CSK of that
// algorithm in dir when dir holds no key of the zone (a first start).
func LoadKeySet(zone, dir string, files []string, createAlg uint8) (ks *KeySet, created *Key, err error) {
	if len(files) == 0 {
		files, err = FindKeys(dir, zone)
		if err != nil && !(errors.Is(err, fs.ErrNotExist) && createAlg > 0) {
			return nil, nil, fmt.Errorf("dnssec key_dir %s: %w", dir, err)
		}
		if len(files) == 0 {
			if createAlg == 0 {
				return nil, nil, fmt.Errorf("zone %s: no key in %s (make one with `meridian dnssec keygen --zone %s --dir %s`)", zone, dir, zone, dir)
			}
			k, err := Generate(dir, zone, createAlg, RoleCSK)
			if err != nil {
				return nil, nil, fmt.Errorf("zone %s: creating a key in %s: %w", zone, dir, err)
			}
			created = k
			files = []string{k.File}
		}
	}
	var keys []*Key
	for _, f := range files {
		k, err := LoadKey(f, zone)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
	}
	ks, err = NewKeySet(zone, keys)
	return ks, created, err
}

// DNSKEYs is the apex DNSKEY RRset: every published key.
func (ks *KeySet) DNSKEYs() []dns.RR {
	var out []dns.RR
	for _, k := range ks.Keys {
		if k.State.Published {
			rr := dns.Copy(k.DNSKEY).(*dns.DNSKEY)
			rr.Hdr.Ttl = ks.ttl()
			out = append(out, rr)
		}
	}
	return out
}

func (ks *KeySet) ttl() uint32 {
	switch {
	case ks.TTL > 0:
		return ks.TTL
	case len(ks.Keys) > 0:
		return ks.Keys[0].DNSKEY.Hdr.Ttl
	}
	return 3600
}

// Apex is the records the keys put at the zone's apex: the DNSKEY RRset
// (every published key) and the CDS (SHA-256) and CDNSKEY records of
// the SEP keys whose State.CDS is set (RFC 7344, RFC 8078), all with the
// key set's TTL. What zones.LoadOptions.DNSSEC takes.
func (ks *KeySet) Apex() []dns.RR {
	out := ks.DNSKEYs()
	ttl := ks.ttl()
	for _, k := range ks.Keys {
		if !k.State.CDS || k.DNSKEY.Flags != flagSEP {
			continue
		}
		ds := k.DNSKEY.ToDS(dns.SHA256)
		cds := &dns.CDS{DS: *ds}
		cds.Hdr = dns.RR_Header{Name: ks.Zone, Rrtype: dns.TypeCDS, Class: dns.ClassINET, Ttl: ttl}
		cdnskey := &dns.CDNSKEY{DNSKEY: *k.DNSKEY}
		cdnskey.Hdr = dns.RR_Header{Name: ks.Zone, Rrtype: dns.TypeCDNSKEY, Class: dns.ClassINET, Ttl: ttl}
		out = append(out, cds, cdnskey)
	}
	return out
}

// Key returns the key with tag and algorithm alg, nil if none.
func (ks *KeySet) Key(tag uint16, alg uint8) *Key {
	for _, k := range ks.Keys {
		if k.Tag() == tag && k.DNSKEY.Algorithm == alg {
			return k
		}
	}
	return nil
}

// published says whether a key with tag is in the DNSKEY RRset.
func (ks *KeySet) published(tag uint16) bool {
	for _, k := range ks.Keys {
		if k.State.Published && k.Tag() == tag {
			return true
		}
	}
	return false
}

// signers returns the keys that sign an RRset of type t.
func (ks *KeySet) signers(t uint16) []*Key {
	var out []*Key
	for _, k := range ks.Keys {
		if !k.State.Signing || k.Signer == nil {
			continue
		}
		switch k.Role {
		case RoleCSK:
		case RoleKSK:
			if t != dns.TypeDNSKEY && t != dns.TypeCDS && t != dns.TypeCDNSKEY {
				continue
			}
		case RoleZSK:
			if t == dns.TypeDNSKEY {
				continue
			}
		}
		out = append(out, k)
	}
	return out
}

// DS returns the DS records (SHA-256) of the zone's SEP keys: what the
// parent zone publishes.
func (ks *KeySet) DS() []*dns.DS {
	var out []*dns.DS
	for _, k := range ks.Keys {
		if k.DNSKEY.Flags == flagSEP {
			out = append(out, k.DNSKEY.ToDS(dns.SHA256))
		}
	}
	return out
}

// Describe names a key for logs: role, algorithm and tag.
func (k *Key) Describe() string {
	return k.Role.String() + " " + dns.AlgorithmToString[k.DNSKEY.Algorithm] + " " + strconv.Itoa(int(k.Tag()))
}
