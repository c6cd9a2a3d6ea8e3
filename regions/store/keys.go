package store

import (
	"fmt"
	"strings"

	"github.com/meridian-gslb/meridian/regions"
)

// DefaultPrefix is where Meridian keeps its state in etcd unless the
// configuration says otherwise.
const DefaultPrefix = "/meridian/"

// Keys builds Meridian's etcd keys under one prefix (docs/architecture.md,
// etcd key layout). The zero value is not usable; call NewKeys.
type Keys struct{ prefix string }

// NewKeys returns the key layout under prefix; "" means DefaultPrefix. A
// missing trailing slash is added so that "/a" never matches "/ab/...".
func NewKeys(prefix string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return Keys{prefix: prefix}
}

// Prefix is the root every key lives under.
func (k Keys) Prefix() string { return k.prefix }

// Regions is the prefix of every region key.
func (k Keys) Regions() string { return k.prefix + "regions/" }

// Region is a region's key.
func (k Keys) Region(name string) string { return k.Regions() + name }

// Services is the prefix of every service key.
func (k Keys) Services() string { return k.prefix + "services/" }

// Service is a service's key, under its canonical name
// ("services/www.gslb.example.").
func (k Keys) Service(name string) string { return k.Services() + regions.CanonicalName(name) }

// ServicesMark is the key every write of a service (put, delete, batch)
// rewrites in its own transaction: its mod revision is that of the
// latest service write. A write that must fail if any service changed
// since it read them compares this one key; a comparison over the
// services' prefix would make etcd read every service key in the
// transaction.
func (k Keys) ServicesMark() string { return k.prefix + "marks/services" }

// HealthAll is the prefix of every health report.
func (k Keys) HealthAll() string { return k.prefix + "health/" }

// Health is the key of one prober's report on one region.
func (k Keys) Health(region, prober string) string {
	return k.HealthAll() + region + "/" + prober
}

// Probers is the prefix of every prober registration.
func (k Keys) Probers() string { return k.prefix + "probers/" }

// Prober is a prober's registration key.
func (k Keys) Prober(id string) string { return k.Probers() + id }

// LatencyManifest is the key naming the current latency table's chunks.
func (k Keys) LatencyManifest() string { return k.prefix + "latency/manifest" }

// LatencyChunksAll is the prefix of every latency table chunk.
func (k Keys) LatencyChunksAll() string { return k.prefix + "latency/chunks/" }

// LatencyChunks is the prefix of one table's chunks.
func (k Keys) LatencyChunks(id string) string { return k.LatencyChunksAll() + id + "/" }

// LatencyChunk is one chunk of a table; the zero-padded number keeps the
// keys in table order.
func (k Keys) LatencyChunk(id string, n int) string {
	return fmt.Sprintf("%s%06d", k.LatencyChunks(id), n)
}

// Shifts is the prefix of every shift key.
func (k Keys) Shifts() string { return k.prefix + "shifts/" }

// Shift is a shift's key.
func (k Keys) Shift(id string) string { return k.Shifts() + id }

// Audit is the prefix of the audit log's records.
func (k Keys) Audit() string { return k.prefix + "audit/" }

// DNSSECAll is the prefix of every signed zone's keys and signatures
// (package dnssec/sigstore lays them out); no part of the regions state.
func (k Keys) DNSSECAll() string { return k.prefix + "dnssec/" }

// DNSSEC is the prefix of one signed zone's keys and signatures, under
// its canonical name ("dnssec/gslb.example./").
func (k Keys) DNSSEC(zone string) string { return k.DNSSECAll() + regions.CanonicalName(zone) + "/" }

// AuditRecord is the key of one audit record; ids sort newest first.
func (k Keys) AuditRecord(id string) string { return k.Audit() + id }

// keyKind says what a key under the prefix holds.
type keyKind int

const (
	keyUnknown keyKind = iota
	keyRegion
	keyService
	keyHealth
	keyProber
	keyLatencyManifest
	keyLatencyChunk
	keyAudit
	keyDNSSEC
	keyShift
	keyMark
)

// parsedKey is a key taken apart: name is the region, service, prober id
// or table id; prober is set for health reports.
type parsedKey struct {
	kind   keyKind
	name   string
	prober string
}

// parse takes a full key apart. Keys outside the layout are keyUnknown.
func (k Keys) parse(key string) parsedKey {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return parsedKey{}
	}
	kind, name, _ := strings.Cut(rest, "/")
	switch kind {
	case "regions":
		if name != "" && !strings.Contains(name, "/") {
			return parsedKey{kind: keyRegion, name: name}
		}
	case "services":
		if name != "" && !strings.Contains(name, "/") {
			return parsedKey{kind: keyService, name: name}
		}
	case "health":
		region, prober, ok := strings.Cut(name, "/")
		if ok && region != "" && prober != "" && !strings.Contains(prober, "/") {
			return parsedKey{kind: keyHealth, name: region, prober: prober}
		}
	case "probers":
		if name != "" && !strings.Contains(name, "/") {
			return parsedKey{kind: keyProber, name: name}
		}
	case "audit":
		if name != "" && !strings.Contains(name, "/") {
			return parsedKey{kind: keyAudit, name: name}
		}
	case "dnssec":
		return parsedKey{kind: keyDNSSEC}
	case "shifts":
		if name != "" && !strings.Contains(name, "/") {
			return parsedKey{kind: keyShift, name: name}
		}
	case "marks":
		if name == "services" {
			return parsedKey{kind: keyMark, name: name}
		}
	case "latency":
		if name == "manifest" {
			return parsedKey{kind: keyLatencyManifest}
		}
		if id, ok := strings.CutPrefix(name, "chunks/"); ok {
			id, _, _ = strings.Cut(id, "/")
			return parsedKey{kind: keyLatencyChunk, name: id}
		}
	}
	return parsedKey{}
}

// describe names the object a key holds as clients know it (`region
// "eu-west"`), for errors that clients read: they never show etcd keys.
func (k Keys) describe(key string) string {
	pk := k.parse(key)
	switch pk.kind {
	case keyRegion:
		return describeRegion(pk.name)
	case keyService:
		return describeService(pk.name)
	case keyLatencyManifest, keyLatencyChunk:
		return "the latency table"
	case keyHealth:
		return fmt.Sprintf("the health report of prober %q on region %q", pk.prober, pk.name)
	case keyProber:
		return fmt.Sprintf("prober %q", pk.name)
	case keyAudit:
		return "an audit record"
	case keyMark:
		return "the services' change mark"
	}
	return "an object outside Meridian's key layout"
}

func describeRegion(name string) string { return fmt.Sprintf("region %q", name) }
func describeService(name string) string {
	return fmt.Sprintf("service %q", regions.CanonicalName(name))
}
