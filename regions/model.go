package regions

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions/latency"
)

// Region is one place that serves traffic: a load balancer's VIPs with
// where it stands and how to check it.
type Region struct {
	Name     string       `json:"name" yaml:"name"`
	VIPs     []netip.Addr `json:"vips" yaml:"vips"`
	Location Location     `json:"location" yaml:"location"`
	Check    HealthCheck  `json:"check" yaml:"check"`
	// Capacity is informational (requests per second the region takes);
	// 0 means unknown. Weights, not capacity, steer traffic.
	Capacity int `json:"capacity,omitempty" yaml:"capacity,omitempty"`
	// Drained takes the region out of every answer, whatever the weights
	// of the services that list it (docs/architecture.md, Steering): an
	// operator's switch, set and cleared through the API.
	Drained bool `json:"drained,omitempty" yaml:"drained,omitempty"`
}

// Location is where a region stands, for nearest steering and display.
type Location struct {
	Lat       float64 `json:"lat" yaml:"lat"`
	Lon       float64 `json:"lon" yaml:"lon"`
	Country   string  `json:"country,omitempty" yaml:"country,omitempty"`     // ISO 3166-1 alpha-2
	Continent string  `json:"continent,omitempty" yaml:"continent,omitempty"` // AF AN AS EU NA OC SA
}

// HealthCheck says how probers check a region's VIPs: each VIP on its
// own, at the VIP or at the address Address maps it to (docs/health.md).
// Zero values take the defaults (WithDefaults).
type HealthCheck struct {
	Type string `json:"type" yaml:"type"`                     // http, https, tcp
	Port int    `json:"port" yaml:"port"`                     // 1-65535
	Path string `json:"path,omitempty" yaml:"path,omitempty"` // http(s): request path, default "/"
	Host string `json:"host,omitempty" yaml:"host,omitempty"` // http(s): Host header and TLS server name
	// Expect is the statuses an http(s) check accepts, default 200-399.
	Expect StatusRanges `json:"expect,omitempty" yaml:"expect,omitempty"`
	// Body, when set, must occur in the first MaxCheckBody bytes of an
	// http(s) answer.
	Body string `json:"body,omitempty" yaml:"body,omitempty"`
	// TLSSkipVerify accepts any certificate (https); default false.
	TLSSkipVerify bool `json:"tls_skip_verify,omitempty" yaml:"tls_skip_verify,omitempty"`
	// Address maps a VIP to where its check connects instead, "host" (with
	// Port) or "host:port", when the health endpoint is not the VIP
	// itself. VIPs it does not name are checked at the VIP.
	Address  map[netip.Addr]string `json:"address,omitempty" yaml:"address,omitempty"`
	Interval Duration              `json:"interval,omitempty" yaml:"interval,omitempty"` // default 5s
	Timeout  Duration              `json:"timeout,omitempty" yaml:"timeout,omitempty"`   // default 2s, at most the interval
	Rise     int                   `json:"rise,omitempty" yaml:"rise,omitempty"`         // successes to turn up, default 2
	Fall     int                   `json:"fall,omitempty" yaml:"fall,omitempty"`         // failures to turn down, default 3
	// Stats, when set, is where each VIP's load and error counts are read
	// (the load balancer's own statistics), at every check.
	Stats *StatsSource `json:"stats,omitempty" yaml:"stats,omitempty"`
	// Passive, with Stats, fails a VIP whose error ratio is too high, as a
	// failed check would.
	Passive *PassiveHealth `json:"passive,omitempty" yaml:"passive,omitempty"`
}

// Policy names a steering preference (docs/architecture.md, Steering).
type Policy string

// The steering policies.
const (
	PolicyWeighted Policy = "weighted"
	PolicyFailover Policy = "failover"
	PolicyGeo      Policy = "geo"
	PolicyNearest  Policy = "nearest"
	PolicyLatency  Policy = "latency"
)

// AllDownMode is what a service answers when no candidate region is up.
type AllDownMode string

// The all-down behaviours.
const (
	AllDownFailOpen   AllDownMode = "fail-open"   // answer as if every non-drained region were up (default)
	AllDownFailClosed AllDownMode = "fail-closed" // NODATA
	AllDownFallback   AllDownMode = "fallback"    // fixed addresses
)

// Service is a name Meridian answers by steering.
type Service struct {
	Name    string          `json:"name" yaml:"name"` // fully qualified, lower case
	TTL     uint32          `json:"ttl" yaml:"ttl"`
	Policy  Policy          `json:"policy" yaml:"policy"`
	Regions []ServiceRegion `json:"regions" yaml:"regions"` // order is the failover order
	Geo     *GeoMap         `json:"geo,omitempty" yaml:"geo,omitempty"`
	// Sticky makes the weighted choice a rendezvous hash of the client's
	// network instead of a random draw.
	Sticky bool `json:"sticky,omitempty" yaml:"sticky,omitempty"`
	// MaxAnswers bounds the addresses per answer; 0 means all of the
	// region's addresses of the asked family.
	MaxAnswers int `json:"max_answers,omitempty" yaml:"max_answers,omitempty"`
	// NearestTolerance keeps regions within this many km of the nearest
	// as candidates (nearest, and latency's fallback); default 0.
	NearestToleranceKm float64 `json:"nearest_tolerance_km,omitempty" yaml:"nearest_tolerance_km,omitempty"`
	// LatencyTolerance keeps regions within this many ms of the fastest
	// as candidates (latency policy); default 0.
	LatencyToleranceMs float64 `json:"latency_tolerance_ms,omitempty" yaml:"latency_tolerance_ms,omitempty"`
	AllDown            AllDown `json:"all_down,omitempty" yaml:"all_down,omitempty"`
	// DegradedTTL replaces TTL while a region of the service is down, or
	// of unknown health while probers are registered, or the answer fails
	// open, so resolvers come back sooner; 0 means TTL/2.
	DegradedTTL uint32 `json:"degraded_ttl,omitempty" yaml:"degraded_ttl,omitempty"`
	// MaxEjection is the most of the service's healthy capacity that
	// passive health alone may take out of its answers, 0 to 1; nil
	// means DefaultMaxEjection (docs/health.md, Passive health).
	MaxEjection *float64 `json:"max_ejection,omitempty" yaml:"max_ejection,omitempty"`
	// Load steers clients away from busy regions by their utilisation
	// (load / capacity); nil: off (docs/controller.md).
	Load *LoadSteering `json:"load,omitempty" yaml:"load,omitempty"`
	// SlowStart ramps a region in after it comes back up, is undrained
	// or gets a weight above 0 again; nil: off (docs/controller.md).
	SlowStart *SlowStart `json:"slow_start,omitempty" yaml:"slow_start,omitempty"`
}

// LoadSteering is a service's least-loaded steering: below LowWatermark
// of utilisation a region keeps its whole share; between the watermarks
// its share shrinks linearly; above HighWatermark it takes no new
// clients, unless every candidate is above it (then the shares follow
// the remaining headroom). The controller reaches that equilibrium
// through the resolvers' caches by bounded steps (docs/controller.md).
type LoadSteering struct {
	LowWatermark  float64 `json:"low_watermark" yaml:"low_watermark"`
	HighWatermark float64 `json:"high_watermark" yaml:"high_watermark"`
	// MaxStep bounds how much of its full share a region's answers may
	// gain or lose per TTL of the service, 0 to 1; 0 means
	// DefaultMaxStep.
	MaxStep float64 `json:"max_step,omitempty" yaml:"max_step,omitempty"`
	// MaxSignalAge: a load reading older than this is ignored; 0 means
	// three times the region's check interval.
	MaxSignalAge Duration `json:"max_signal_age,omitempty" yaml:"max_signal_age,omitempty"`
}

// SlowStart ramps a region in with Envoy's curve, the share of its
// traffic at time t after the return being
// max(MinWeight, (t/Window)^(1/Aggression)) of its full share; the
// answers are chosen so that the traffic, which the resolvers' caches
// still send by older answers, follows the curve (docs/controller.md).
type SlowStart struct {
	Window Duration `json:"window" yaml:"window"`
	// Aggression shapes the curve: 1 is linear, larger ramps faster
	// at first; 0 means 1.
	Aggression float64 `json:"aggression,omitempty" yaml:"aggression,omitempty"`
	// MinWeight is the share the curve starts from, 0 to 1; 0 means
	// DefaultMinWeight. Write a tiny value for a start from nothing.
	MinWeight float64 `json:"min_weight,omitempty" yaml:"min_weight,omitempty"`
}

// Defaults and bounds of load steering and slow start.
const (
	DefaultMaxStep    = 0.25
	DefaultMinWeight  = 0.1
	MaxSlowStart      = time.Hour
	MaxSignalAgeLimit = time.Hour
	MaxAggression     = 10
)

// ServiceRegion is one region of a service with its weight.
type ServiceRegion struct {
	Region string `json:"region" yaml:"region"`
	// Weight shares traffic among equally preferred regions; 0 drains the
	// region: it is never answered, not even when failing open.
	Weight uint32 `json:"weight" yaml:"weight"`
	// BiasKm is added to the distance to this region for nearest steering
	// (negative pulls clients closer).
	BiasKm float64 `json:"bias_km,omitempty" yaml:"bias_km,omitempty"`
}

// GeoMap maps where a client is to an ordered list of regions. A client's
// country is looked up first, then its continent, then Default. The two
// maps are separate because some codes mean both (AS: American Samoa and
// Asia).
type GeoMap struct {
	Countries  map[string][]string `json:"countries,omitempty" yaml:"countries,omitempty"`
	Continents map[string][]string `json:"continents,omitempty" yaml:"continents,omitempty"`
	Default    []string            `json:"default,omitempty" yaml:"default,omitempty"`
}

// AllDown configures the all-down behaviour.
type AllDown struct {
	Mode      AllDownMode  `json:"mode,omitempty" yaml:"mode,omitempty"`
	Addresses []netip.Addr `json:"addresses,omitempty" yaml:"addresses,omitempty"` // for fallback
}

// HealthReport is one prober's view of one region: the state of each of
// the region's VIPs as that prober's checks see it. A prober writes it
// when a state changes (and refreshes it slowly), bound to its etcd lease,
// so the reports of a dead or cut-off prober vanish with the lease
// (docs/architecture.md, Health).
type HealthReport struct {
	Region       string `json:"region"`
	Prober       string `json:"prober"`
	ProberRegion string `json:"prober_region,omitempty"`
	// Trusted is false while the prober fails its self-check (its canary
	// is unreachable, or every target it checks fails at once): its votes
	// are shown but not counted.
	Trusted bool `json:"trusted"`
	// Observed is when the prober last confirmed these states.
	Observed time.Time   `json:"observed"`
	VIPs     []VIPHealth `json:"vips"`
	// Lease is the etcd lease the report is bound to, as etcd says (the
	// store fills it in); a report counts only while the registration of
	// its prober holds the same lease.
	Lease int64 `json:"lease"`
}

// VIPHealth is one VIP's state as one prober sees it.
type VIPHealth struct {
	Addr netip.Addr `json:"addr"`
	Up   bool       `json:"up"`
	// Since is the time of the last transition of Up.
	Since time.Time `json:"since"`
	// Successes and Failures count the consecutive check results that
	// ended in the current state (one of them is 0).
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
	// Reason is why the last failed check failed.
	Reason string `json:"reason,omitempty"`
	// RTT is a moving average of the check's round-trip time.
	RTT Duration `json:"rtt,omitempty"`
	// Load and Capacity are what the health endpoint reported of itself,
	// when it answers JSON with them (docs/health.md); nil otherwise.
	Load     *float64 `json:"load,omitempty"`
	Capacity *float64 `json:"capacity,omitempty"`
	// LoadObserved is when Load and Capacity were read. A region's load
	// ignores readings older than the service's max_signal_age, so stale
	// load never steers.
	LoadObserved time.Time `json:"load_observed,omitzero"`
	// LoadSource names where Load came from: "health" (the check's JSON
	// answer), "haproxy" or "prometheus" (the load balancer's own
	// statistics).
	LoadSource string `json:"load_source,omitempty"`
	// LoadError says why the configured statistics source gave no load
	// (unreachable, malformed, metric missing): the load is then unknown,
	// which never takes a VIP down.
	LoadError string `json:"load_error,omitempty"`
	// Passive is set when Up is false because of passive health alone
	// (the load balancer's error ratio) while the active check passes.
	// Passive signals alone eject at most a service's max_ejection of its
	// healthy capacity.
	Passive bool `json:"passive,omitempty"`
}

// ProberInfo registers a prober agent, bound to its lease.
type ProberInfo struct {
	ID      string    `json:"id"`
	Region  string    `json:"region"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
	// Lease is the etcd lease of the registration (filled in by the store).
	Lease int64 `json:"lease"`
}

// Duration is a time.Duration written as "5s" in JSON and YAML.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler; it also accepts a number of
// nanoseconds. A value it refuses is a *json.UnmarshalTypeError, which
// the JSON decoder completes with the field's path, so that an API error
// can name the field.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// UnmarshalText reads "5s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML reads "10s" or "1m30s" and refuses negative durations,
// naming the line: configuration errors must point at their place.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like 10s or 1m30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes "5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Limits on what can be stored.
const (
	MaxTTL        = 86400
	MaxWeight     = 1_000_000
	MaxVIPs       = 64
	MaxRegions    = 1000 // per service
	minHealthPort = 1
)

// ValidationError lists every problem found in one object, each with the
// field it is about.
type ValidationError struct {
	Kind     string // "region", "service"
	Name     string
	Problems []FieldProblem
}

// FieldProblem is one invalid field.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.Name == "" {
		fmt.Fprintf(&b, "invalid %s:", e.Kind)
	} else {
		fmt.Fprintf(&b, "invalid %s %q:", e.Kind, e.Name)
	}
	for _, p := range e.Problems {
		fmt.Fprintf(&b, " %s: %s;", p.Field, p.Message)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid")

// Is lets errors.Is(err, ErrInvalid) match.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

type problems struct{ list []FieldProblem }

func (p *problems) add(field, format string, args ...any) {
	p.list = append(p.list, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) err(kind, name string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Kind: kind, Name: name, Problems: p.list}
}

// Validate checks a region on its own.
func (r *Region) Validate() error {
	var p problems
	if !latency.ValidRegionName(r.Name) {
		p.add("name", "%q: want lower-case letters, digits and inner hyphens, at most %d", r.Name, latency.MaxRegionNameLen)
	}
	if len(r.VIPs) == 0 {
		p.add("vips", "a region needs at least one address")
	}
	if len(r.VIPs) > MaxVIPs {
		p.add("vips", "%d addresses, at most %d", len(r.VIPs), MaxVIPs)
	}
	seen := map[netip.Addr]bool{}
	for i, a := range r.VIPs {
		f := "vips[" + strconv.Itoa(i) + "]"
		switch {
		case !a.IsValid():
			p.add(f, "not an IP address")
		case a.Is4In6():
			p.add(f, "%s: write IPv4 addresses in dotted form", a)
		case a.Zone() != "":
			p.add(f, "%s: zoned addresses cannot be answered in DNS", a)
		case a.IsUnspecified() || a.IsMulticast():
			p.add(f, "%s is not a unicast address", a)
		case seen[a]:
			p.add(f, "%s is listed twice", a)
		}
		seen[a] = true
	}
	l := r.Location
	if math.IsNaN(l.Lat) || l.Lat < -90 || l.Lat > 90 {
		p.add("location.lat", "%v: want -90 to 90", l.Lat)
	}
	if math.IsNaN(l.Lon) || l.Lon < -180 || l.Lon > 180 {
		p.add("location.lon", "%v: want -180 to 180", l.Lon)
	}
	if l.Country != "" && !geo.ValidCountry(l.Country) {
		p.add("location.country", "%q is not an ISO 3166-1 alpha-2 code", l.Country)
	}
	if l.Continent != "" && !geo.ValidContinent(l.Continent) {
		p.add("location.continent", "%q: want AF, AN, AS, EU, NA, OC or SA", l.Continent)
	}
	r.Check.validate(&p)
	for _, vip := range sortedAddrs(r.Check.Address) {
		if !seen[vip] {
			p.add("check.address."+vip.String(), "%s is not one of the region's VIPs", vip)
		}
	}
	if r.Capacity < 0 {
		p.add("capacity", "must not be negative")
	}
	return p.err("region", r.Name)
}

func (c *HealthCheck) validate(p *problems) {
	switch c.Type {
	case "http", "https":
		if c.Path != "" && (!strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \t\r\n#")) {
			p.add("check.path", "%q: want an absolute path starting with / (no spaces or fragment)", c.Path)
		}
	case "tcp":
	default:
		p.add("check.type", "%q: want http, https or tcp", c.Type)
	}
	if c.Type == "tcp" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"path", c.Path != ""}, {"host", c.Host != ""}, {"expect", len(c.Expect) > 0}, {"body", c.Body != ""}, {"tls_skip_verify", c.TLSSkipVerify}} {
			if f.set {
				p.add("check."+f.name, "a tcp check has no %s", f.name)
			}
		}
	}
	if c.Port < minHealthPort || c.Port > 65535 {
		p.add("check.port", "%d: want 1 to 65535", c.Port)
	}
	if c.Host != "" && !validCheckHost(c.Host) {
		p.add("check.host", "%q: want a host name or an IP address, without a port", c.Host)
	}
	if err := c.Expect.validate(); err != nil {
		p.add("check.expect", "%v", err)
	}
	if len(c.Body) > MaxCheckBodyMatch {
		p.add("check.body", "%d bytes: at most %d", len(c.Body), MaxCheckBodyMatch)
	}
	if c.TLSSkipVerify && c.Type == "http" {
		p.add("check.tls_skip_verify", "only an https check uses TLS")
	}
	for _, vip := range sortedAddrs(c.Address) {
		if err := checkAddress(c.Address[vip]); err != nil {
			p.add("check.address."+vip.String(), "%v", err)
		}
	}
	interval := c.WithDefaults().Interval
	if c.Interval < 0 || (c.Interval > 0 && time.Duration(c.Interval) < MinCheckInterval) {
		p.add("check.interval", "%s: want at least %s", time.Duration(c.Interval), MinCheckInterval)
	}
	if c.Timeout < 0 || (c.Timeout > 0 && (time.Duration(c.Timeout) < MinCheckTimeout || c.Timeout > interval)) {
		p.add("check.timeout", "%s: want %s up to the interval (%s)", time.Duration(c.Timeout), MinCheckTimeout, time.Duration(interval))
	}
	if c.Rise < 0 || c.Rise > 100 {
		p.add("check.rise", "%d: want 1 to 100 (0 for the default)", c.Rise)
	}
	if c.Fall < 0 || c.Fall > 100 {
		p.add("check.fall", "%d: want 1 to 100 (0 for the default)", c.Fall)
	}
	c.validateStats(p, time.Duration(interval))
}

// Validate checks a service against the regions that exist (by name) and
// the names Meridian serves (inZone reports why a name is not servable,
// nil if it is; nil inZone skips that check).
func (s *Service) Validate(regions map[string]*Region, inZone func(fqdn string) error) error {
	var p problems
	name := CanonicalName(s.Name)
	if !isHostname(name) {
		p.add("name", "%q is not a valid host name", s.Name)
	} else if s.Name != name {
		p.add("name", "%q: write it lower case and fully qualified (%q)", s.Name, name)
	} else if inZone != nil {
		if err := inZone(name); err != nil {
			p.add("name", "%v", err)
		}
	}
	if s.TTL < 1 || s.TTL > MaxTTL {
		p.add("ttl", "%d: want 1 to %d seconds", s.TTL, MaxTTL)
	}
	if s.DegradedTTL > s.TTL {
		p.add("degraded_ttl", "%d is longer than ttl %d", s.DegradedTTL, s.TTL)
	}
	switch s.Policy {
	case PolicyWeighted, PolicyFailover, PolicyGeo, PolicyNearest, PolicyLatency:
	default:
		p.add("policy", "%q: want weighted, failover, geo, nearest or latency", s.Policy)
	}
	if len(s.Regions) == 0 {
		p.add("regions", "a service needs at least one region")
	}
	if len(s.Regions) > MaxRegions {
		p.add("regions", "%d regions, at most %d", len(s.Regions), MaxRegions)
	}
	member := map[string]bool{}
	for i, sr := range s.Regions {
		f := "regions[" + strconv.Itoa(i) + "]"
		if regions != nil && regions[sr.Region] == nil {
			p.add(f+".region", "unknown region %q", sr.Region)
		}
		if member[sr.Region] {
			p.add(f+".region", "region %q is listed twice", sr.Region)
		}
		member[sr.Region] = true
		if sr.Weight > MaxWeight {
			p.add(f+".weight", "%d: at most %d", sr.Weight, MaxWeight)
		}
		if math.IsNaN(sr.BiasKm) || math.Abs(sr.BiasKm) > 40000 {
			p.add(f+".bias_km", "%v: want -40000 to 40000", sr.BiasKm)
		}
	}
	if s.Policy == PolicyGeo && s.Geo == nil {
		p.add("geo", "the geo policy needs a geo map")
	}
	if s.Geo != nil {
		if s.Policy != PolicyGeo {
			p.add("geo", "a geo map is only used by the geo policy")
		}
		checkList := func(field string, list []string) {
			if len(list) == 0 {
				p.add(field, "empty region list")
			}
			for j, r := range list {
				if !member[r] {
					p.add(field+"["+strconv.Itoa(j)+"]", "%q is not one of the service's regions", r)
				}
			}
		}
		for _, cc := range sortedKeys(s.Geo.Countries) {
			if !geo.ValidCountry(cc) {
				p.add("geo.countries."+cc, "%q is not an ISO 3166-1 alpha-2 code", cc)
			}
			checkList("geo.countries."+cc, s.Geo.Countries[cc])
		}
		for _, c := range sortedKeys(s.Geo.Continents) {
			if !geo.ValidContinent(c) {
				p.add("geo.continents."+c, "%q: want AF, AN, AS, EU, NA, OC or SA", c)
			}
			checkList("geo.continents."+c, s.Geo.Continents[c])
		}
		if s.Geo.Default != nil {
			checkList("geo.default", s.Geo.Default)
		}
	}
	if s.MaxAnswers < 0 || s.MaxAnswers > MaxVIPs {
		p.add("max_answers", "%d: want 0 (all) to %d", s.MaxAnswers, MaxVIPs)
	}
	if s.NearestToleranceKm < 0 || math.IsNaN(s.NearestToleranceKm) {
		p.add("nearest_tolerance_km", "must not be negative")
	}
	if s.LatencyToleranceMs < 0 || math.IsNaN(s.LatencyToleranceMs) {
		p.add("latency_tolerance_ms", "must not be negative")
	}
	validMaxEjection(&p, s.MaxEjection)
	s.Load.validate(&p)
	s.SlowStart.validate(&p)
	switch s.AllDown.Mode {
	case "", AllDownFailOpen, AllDownFailClosed:
		if len(s.AllDown.Addresses) > 0 {
			p.add("all_down.addresses", "only used with mode fallback")
		}
	case AllDownFallback:
		if len(s.AllDown.Addresses) == 0 {
			p.add("all_down.addresses", "fallback needs at least one address")
		}
		for i, a := range s.AllDown.Addresses {
			if !a.IsValid() || a.Is4In6() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
				p.add("all_down.addresses["+strconv.Itoa(i)+"]", "%v is not a unicast address", a)
			}
		}
	default:
		p.add("all_down.mode", "%q: want fail-open, fail-closed or fallback", s.AllDown.Mode)
	}
	return p.err("service", s.Name)
}

// ratio01 says whether x is a number from 0 to 1.
func ratio01(x float64) bool { return x >= 0 && x <= 1 }

func (l *LoadSteering) validate(p *problems) {
	if l == nil {
		return
	}
	if !ratio01(l.LowWatermark) {
		p.add("load.low_watermark", "%v: want a utilisation from 0 to 1", l.LowWatermark)
	}
	if !ratio01(l.HighWatermark) || l.HighWatermark == 0 {
		p.add("load.high_watermark", "%v: want a utilisation above 0, at most 1", l.HighWatermark)
	}
	if l.LowWatermark > l.HighWatermark {
		p.add("load.low_watermark", "%v is above high_watermark %v", l.LowWatermark, l.HighWatermark)
	}
	if !ratio01(l.MaxStep) {
		p.add("load.max_step", "%v: want a share from 0 to 1 per TTL (0 for the default, %v)", l.MaxStep, DefaultMaxStep)
	}
	if a := time.Duration(l.MaxSignalAge); a < 0 || a > MaxSignalAgeLimit {
		p.add("load.max_signal_age", "%s: want 0 (three check intervals) up to %s", a, MaxSignalAgeLimit)
	}
}

func (s *SlowStart) validate(p *problems) {
	if s == nil {
		return
	}
	if w := time.Duration(s.Window); w <= 0 || w > MaxSlowStart {
		p.add("slow_start.window", "%s: want above 0, up to %s", w, MaxSlowStart)
	}
	if math.IsNaN(s.Aggression) || s.Aggression < 0 || s.Aggression > MaxAggression {
		p.add("slow_start.aggression", "%v: want above 0, up to %d (0 for 1)", s.Aggression, MaxAggression)
	}
	if !ratio01(s.MinWeight) {
		p.add("slow_start.min_weight", "%v: want a share from 0 to 1 (0 for the default, %v)", s.MinWeight, DefaultMinWeight)
	}
}

// MaxProberIDLen bounds a prober id (it is part of etcd keys).
const MaxProberIDLen = 128

// ValidProberID says whether id can name a prober: 1 to MaxProberIDLen
// characters without slashes or white space.
func ValidProberID(id string) bool {
	return id != "" && len(id) <= MaxProberIDLen && !strings.ContainsAny(id, "/ \t\n\r")
}

// Validate checks a health report's fields.
func (h *HealthReport) Validate() error {
	var p problems
	if !latency.ValidRegionName(h.Region) {
		p.add("region", "%q is not a region name", h.Region)
	}
	if !ValidProberID(h.Prober) {
		p.add("prober", "%q: want 1 to %d characters without / or spaces", h.Prober, MaxProberIDLen)
	}
	if h.ProberRegion != "" && !latency.ValidRegionName(h.ProberRegion) {
		p.add("prober_region", "%q is not a region name", h.ProberRegion)
	}
	if len(h.VIPs) > MaxVIPs {
		p.add("vips", "%d addresses, at most %d", len(h.VIPs), MaxVIPs)
	}
	seen := map[netip.Addr]bool{}
	for i, v := range h.VIPs {
		f := "vips[" + strconv.Itoa(i) + "]"
		switch {
		case !v.Addr.IsValid():
			p.add(f+".addr", "not an IP address")
		case seen[v.Addr]:
			p.add(f+".addr", "%s is listed twice", v.Addr)
		}
		seen[v.Addr] = true
		if v.Successes < 0 || v.Failures < 0 {
			p.add(f, "negative check counts")
		}
		if v.RTT < 0 {
			p.add(f+".rtt", "must not be negative")
		}
		for _, n := range []struct {
			name string
			v    *float64
		}{{"load", v.Load}, {"capacity", v.Capacity}} {
			if n.v != nil && (math.IsNaN(*n.v) || math.IsInf(*n.v, 0) || *n.v < 0) {
				p.add(f+"."+n.name, "%v: want a number of 0 or more", *n.v)
			}
		}
		switch v.LoadSource {
		case "", LoadSourceHealth, StatsHAProxy, StatsPrometheus:
		default:
			p.add(f+".load_source", "%q: want health, haproxy or prometheus", v.LoadSource)
		}
	}
	return p.err("health report", h.Region+"/"+h.Prober)
}

// CanonicalName lower-cases a name and makes it fully qualified.
func CanonicalName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

var labelRE = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$`)

// isHostname accepts fully qualified names of letters, digits, hyphens and
// underscores, with the DNS length limits.
func isHostname(name string) bool {
	if name == "." || len(name) > 254 || !strings.HasSuffix(name, ".") {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if len(l) == 0 || len(l) > 63 || !labelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Validate checks a prober registration.
func (p *ProberInfo) Validate() error {
	var pr problems
	if !ValidProberID(p.ID) {
		pr.add("id", "%q: want 1 to %d characters without / or spaces", p.ID, MaxProberIDLen)
	}
	if !latency.ValidRegionName(p.Region) {
		pr.add("region", "%q is not a region name", p.Region)
	}
	return pr.err("prober", p.ID)
}
