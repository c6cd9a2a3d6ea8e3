package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/regions"
)

// DNSSECConfig signs one zone (docs/dnssec.md).
type DNSSECConfig struct {
	// KeyDir holds the zone's keys, as `meridian dnssec keygen` writes
	// them (K<zone>+<alg>+<tag>.key and .private); default data_dir/keys.
	KeyDir string `yaml:"key_dir"`
	// Keys names the zone's .key files; empty: every key of the zone in
	// key_dir.
	Keys []string `yaml:"keys"`
	// CreateKeys makes a CSK in key_dir when it holds no key of the zone:
	// a first start signs at once (then publish its DS at the parent).
	CreateKeys bool `yaml:"create_keys"`
	// Algorithm of the key create_keys makes: 13 (ECDSAP256SHA256,
	// default) or 15 (ED25519).
	Algorithm string `yaml:"algorithm"`
	// Validity of a new signature; 0: 336h (14 days).
	Validity regions.Duration `yaml:"validity"`
	// Refresh: a signature is made again once less than this is left of
	// it; 0: 120h (5 days). At most half the validity.
	Refresh regions.Duration `yaml:"refresh"`
	// Denial is how names and types that do not exist are proven: nsec
	// (the only one, and the default; docs/dnssec.md says why).
	Denial string `yaml:"denial"`
	// Signer says where the zone is signed: "local" (default) in this
	// process, which holds the keys; "etcd" by the zone's signer
	// (`meridian signer`), whose signatures this name server reads from
	// etcd, holding no private key (docs/dnssec.md, "Signers and name
	// servers").
	Signer string `yaml:"signer"`
	// DNSKEYTTL is the TTL of the DNSKEY, CDS and CDNSKEY RRsets, in
	// seconds; 0: the keys' (3600 as keygen makes them).
	DNSKEYTTL uint32 `yaml:"dnskey_ttl"`
	// ExpiryWarning: status warns once a served signature expires within
	// this (a signer away); 0: 72h. Below refresh.
	ExpiryWarning regions.Duration `yaml:"expiry_warning"`
	// SignerWait (signer: etcd): how long a snapshot waits for a live
	// signer that has not signed it yet before signed supersets stand in
	// for what it lacks; 0: 5s.
	SignerWait regions.Duration `yaml:"signer_wait"`
	// Rollover makes the zone's signer replace its keys (signer: local,
	// run by `meridian signer`); nil: the keys stay.
	Rollover *RolloverConfig `yaml:"rollover"`
}

// RolloverConfig is a zone's automated key rollover (docs/dnssec.md,
// "Key rollover").
type RolloverConfig struct {
	// Lifetimes of keys by role: a key that has signed for this long is
	// replaced. 0: never.
	CSKLifetime regions.Duration `yaml:"csk_lifetime"`
	KSKLifetime regions.Duration `yaml:"ksk_lifetime"`
	ZSKLifetime regions.Duration `yaml:"zsk_lifetime"`
	// Propagation: how long a change takes to reach every name server;
	// 0: 5m.
	Propagation regions.Duration `yaml:"propagation"`
	// ParentServers are the parent zone's name servers (host:port), asked
	// for the zone's DS before an old CSK or KSK retires.
	ParentServers []string `yaml:"parent_servers"`
	// Algorithm of new keys (13 or 15); empty: the old key's.
	Algorithm string `yaml:"algorithm"`
}

func (d *DNSSECConfig) policy() dnssec.Policy {
	return dnssec.Policy{Validity: time.Duration(d.Validity), Refresh: time.Duration(d.Refresh)}
}

// keyless says whether the zone's signatures come from its signer
// through etcd.
func (d *DNSSECConfig) keyless() bool { return d.Signer == "etcd" }

// DefaultExpiryWarning is how long before a served signature expires
// status warns.
const DefaultExpiryWarning = 72 * time.Hour

func (d *DNSSECConfig) expiryWarning() time.Duration {
	if d.ExpiryWarning == 0 {
		return DefaultExpiryWarning
	}
	return time.Duration(d.ExpiryWarning)
}

// rollover is the zone's rollover, nil without one; keyDir is where new
// keys go.
func (d *DNSSECConfig) rollover(keyDir string) *dnssec.Rollover {
	r := d.Rollover
	if r == nil {
		return nil
	}
	alg := uint8(0)
	if r.Algorithm != "" {
		alg, _ = dnssec.ParseAlgorithm(r.Algorithm) // validated
	}
	ro := &dnssec.Rollover{
		Policy: dnssec.RolloverPolicy{CSK: time.Duration(r.CSKLifetime), KSK: time.Duration(r.KSKLifetime), ZSK: time.Duration(r.ZSKLifetime),
			Propagation: time.Duration(r.Propagation), Algorithm: alg},
		KeyDir: keyDir,
		Now:    time.Now,
	}
	if len(r.ParentServers) > 0 {
		ro.Parent = dnssec.ParentDSQuery(r.ParentServers, 3*time.Second)
	}
	return ro
}

// validateDNSSEC checks a zone's dnssec section without reading keys.
func (c *Config) validateDNSSEC(field string, z ZoneConfig) []error {
	d := z.DNSSEC
	var errs []error
	if z.Origin == "" {
		errs = append(errs, c.errf(field+".origin", "a signed zone needs its origin: its keys are named by it"))
	}
	if _, err := dnssec.ParseAlgorithm(d.Algorithm); err != nil {
		errs = append(errs, c.errf(field+".dnssec.algorithm", "%v", err))
	}
	if err := d.policy().Validate(); err != nil {
		errs = append(errs, c.errf(field+".dnssec", "%v", err))
	}
	if d.Denial != "" && d.Denial != "nsec" {
		errs = append(errs, c.errf(field+".dnssec.denial", "%q: only nsec is supported", d.Denial))
	}
	if len(d.Keys) > 0 && d.CreateKeys {
		errs = append(errs, c.errf(field+".dnssec.create_keys", "keys are named in dnssec.keys: nothing to create"))
	}
	switch d.Signer {
	case "", "local":
	case "etcd":
		if len(d.Keys) > 0 || d.CreateKeys {
			errs = append(errs, c.errf(field+".dnssec.signer", "etcd: this name server holds no key of the zone; leave keys and create_keys out"))
		}
		if d.Rollover != nil {
			errs = append(errs, c.errf(field+".dnssec.rollover", "the zone's signer rolls its keys; configure the rollover there"))
		}
	default:
		errs = append(errs, c.errf(field+".dnssec.signer", "%q: want local or etcd", d.Signer))
	}
	if p := d.policy().Normalized(); d.expiryWarning() >= p.Refresh || d.ExpiryWarning < 0 {
		errs = append(errs, c.errf(field+".dnssec.expiry_warning", "%s: want more than 0 and less than refresh (%s): a signer refreshes signatures before status warns", d.expiryWarning(), p.Refresh))
	}
	if d.SignerWait < 0 {
		errs = append(errs, c.errf(field+".dnssec.signer_wait", "must not be negative"))
	}
	if r := d.Rollover; r != nil {
		for name, v := range map[string]regions.Duration{"csk_lifetime": r.CSKLifetime, "ksk_lifetime": r.KSKLifetime, "zsk_lifetime": r.ZSKLifetime, "propagation": r.Propagation} {
			if v < 0 {
				errs = append(errs, c.errf(field+".dnssec.rollover."+name, "must not be negative"))
			}
		}
		if (r.CSKLifetime > 0 || r.KSKLifetime > 0) && len(r.ParentServers) == 0 {
			errs = append(errs, c.errf(field+".dnssec.rollover.parent_servers", "a CSK or KSK rollover retires the old key only once the parent serves the new DS: name the parent's servers"))
		}
		for i, ps := range r.ParentServers {
			if err := dnssec.HostPort(ps); err != nil {
				errs = append(errs, c.errf(fmt.Sprintf("%s.dnssec.rollover.parent_servers[%d]", field, i), "%q: want host:port", ps))
			}
		}
		if r.Algorithm != "" {
			if _, err := dnssec.ParseAlgorithm(r.Algorithm); err != nil {
				errs = append(errs, c.errf(field+".dnssec.rollover.algorithm", "%v", err))
			}
		}
	}
	return errs
}

// signedZones is what a configuration signs.
type signedZones struct {
	signer *dnssec.Signer // nil when no zone is signed
	// files are the keys of each zone signed here, read from its key
	// directory (by canonical name).
	files map[string]*dnssec.KeySet
	// keyless lists the zones whose signatures come from etcd.
	keyless []string
	made    []*dnssec.Key // keys create_keys made
}

// loadSigner reads the keys of every zone signed here (making a CSK on a
// first start where create_keys says so); keyless zones take their
// signatures from src. A key file that is missing, unreadable, of
// another algorithm or open to others is an error naming the file.
func loadSigner(cfg *Config, src dnssec.Source) (*signedZones, error) {
	zc := map[string]dnssec.ZoneConfig{}
	out := &signedZones{files: map[string]*dnssec.KeySet{}}
	for _, z := range cfg.Zones {
		d := z.DNSSEC
		if d == nil {
			continue
		}
		origin := dns.CanonicalName(z.Origin)
		if d.keyless() {
			zc[origin] = dnssec.ZoneConfig{Policy: d.policy(), Source: src}
			out.keyless = append(out.keyless, origin)
			continue
		}
		ks, k, err := loadKeys(origin, d)
		if err != nil {
			return nil, err
		}
		if k != nil {
			out.made = append(out.made, k)
		}
		out.files[origin] = ks
		zc[origin] = dnssec.ZoneConfig{Keys: ks, Policy: d.policy()}
	}
	if len(zc) == 0 {
		return out, nil
	}
	out.signer = dnssec.NewSigner(zc, nil)
	return out, nil
}

// loadKeys reads a zone's keys as its dnssec section says.
func loadKeys(origin string, d *DNSSECConfig) (*dnssec.KeySet, *dnssec.Key, error) {
	create := uint8(0)
	if d.CreateKeys {
		create, _ = dnssec.ParseAlgorithm(d.Algorithm) // validated
	}
	ks, k, err := dnssec.LoadKeySet(origin, d.KeyDir, d.Keys, create)
	if err != nil {
		return nil, nil, err
	}
	ks.TTL = d.DNSKEYTTL
	return ks, k, nil
}

const dnssecUsage = `usage: meridian dnssec keygen --zone ZONE [--dir DIR] [--algorithm 13|15] [--ksk-zsk]
       meridian dnssec ds ZONE [--dir DIR | --config FILE]

keygen makes a key for ZONE in DIR: a combined signing key (CSK) by
default, a key-signing and a zone-signing key with --ksk-zsk. The public
key goes to K<zone>+<alg>+<tag>.key, the private key to .private (mode
0600). ds prints the DS records (SHA-256) of ZONE's key-signing keys,
for the parent zone.
`

func runDNSSEC(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dnssecUsage)
		return 2
	}
	switch args[0] {
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "ds":
		return runDS(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dnssecUsage)
		return 0
	}
	fmt.Fprintf(stderr, "meridian dnssec: unknown command %q\n\n%s", args[0], dnssecUsage)
	return 2
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dnssec keygen", "meridian dnssec keygen --zone ZONE [--dir DIR] [--algorithm 13|15] [--ksk-zsk]\n\n"+
		"Makes a DNSSEC key for ZONE: a CSK, or a KSK and a ZSK.")
	zone := fs.String("zone", "", "the zone the key signs (required)")
	dir := fs.String("dir", "data/keys", "directory the key files are written to")
	alg := fs.String("algorithm", "13", "13 (ECDSAP256SHA256) or 15 (ED25519)")
	split := fs.Bool("ksk-zsk", false, "make a key-signing key and a zone-signing key instead of one combined key")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *zone == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "meridian dnssec keygen: want --zone ZONE and no arguments")
		return 2
	}
	a, err := dnssec.ParseAlgorithm(*alg)
	if err != nil {
		fmt.Fprintf(stderr, "meridian dnssec keygen: %v\n", err)
		return 2
	}
	roles := []dnssec.Role{dnssec.RoleCSK}
	if *split {
		roles = []dnssec.Role{dnssec.RoleKSK, dnssec.RoleZSK}
	}
	for _, r := range roles {
		k, err := dnssec.Generate(*dir, *zone, a, r)
		if err != nil {
			fmt.Fprintf(stderr, "meridian dnssec keygen: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s (key tag %d): %s, %s\n", r, dns.AlgorithmToString[a], k.Tag(), k.File, strings.TrimSuffix(k.File, ".key")+".private")
	}
	return 0
}

func runDS(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dnssec ds", "meridian dnssec ds ZONE [--dir DIR | --config FILE]\n\n"+
		"Prints the DS records (SHA-256) of ZONE's key-signing keys: what the parent publishes.")
	dir := fs.String("dir", "", "directory of the zone's key files (default: the zone's key_dir in --config, else data/keys)")
	config := fs.String("config", "", "server configuration whose dnssec section names the zone's keys")
	// The zone may come before the flags.
	var zone string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		zone, args = args[0], args[1:]
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if zone == "" && fs.NArg() == 1 {
		zone = fs.Arg(0)
	} else if fs.NArg() > 0 || zone == "" {
		fmt.Fprintln(stderr, "meridian dnssec ds: want one ZONE")
		return 2
	}
	zone = dns.CanonicalName(zone)
	keyDir, files := *dir, []string(nil)
	if *config != "" {
		cfg, err := LoadConfig(*config)
		if err != nil {
			fmt.Fprintf(stderr, "meridian dnssec ds: configuration error:\n%s\n", indent(err.Error()))
			return 1
		}
		found := false
		for _, z := range cfg.Zones {
			if z.DNSSEC != nil && dns.CanonicalName(z.Origin) == zone {
				found = true
				if keyDir == "" {
					keyDir = z.DNSSEC.KeyDir
				}
				files = z.DNSSEC.Keys
			}
		}
		if !found {
			fmt.Fprintf(stderr, "meridian dnssec ds: %s is not a signed zone of %s\n", zone, *config)
			return 1
		}
	}
	if keyDir == "" {
		keyDir = filepath.Join("data", "keys")
	}
	ks, _, err := dnssec.LoadKeySet(zone, keyDir, files, 0)
	if err != nil {
		fmt.Fprintf(stderr, "meridian dnssec ds: %v\n", err)
		var ke *dnssec.KeyError
		if errors.As(err, &ke) {
			return 1
		}
		return 1
	}
	for _, ds := range ks.DS() {
		ds.Hdr.Ttl = 3600
		fmt.Fprintln(stdout, ds.String())
	}
	return 0
}
