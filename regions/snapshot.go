package regions

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions/latency"
)

// SnapshotOptions tune how a snapshot reads the state.
type SnapshotOptions struct {
	// Quorum: a VIP is down when more than this fraction of its counted
	// votes say down (a tie keeps it up); 0 means 0.5. Values outside
	// (0, 1) are replaced by 0.5 and listed in Problems.
	Quorum float64
	// StickyBitsV4 is how much of an IPv4 client address a sticky choice
	// hashes; 0 means 24.
	StickyBitsV4 int
	// StickyBitsV6 is the same for IPv6; 0 means 56.
	StickyBitsV6 int
	// GeoIP, when set, is the GeoIP database geo maps are compiled
	// against (see GeoSource): geo decisions for clients located with
	// that database then read the compiled tables, and their ECS scope is
	// the merged block. nil: every geo decision looks the client up.
	GeoIP GeoSource
	// Tables keeps the geo tables between snapshots and builds them
	// (see GeoTables); nil: a snapshot uses its predecessor's, or a new
	// one that builds every table as the snapshot is built.
	Tables *GeoTables
}

// The option defaults.
const (
	DefaultQuorum       = 0.5
	DefaultStickyBitsV4 = 24
	DefaultStickyBitsV6 = 56
)

// HealthStatus is the aggregated health of a VIP or a region.
type HealthStatus string

// The health statuses. Unknown (no counted vote at all) counts as up.
const (
	HealthUp      HealthStatus = "up"
	HealthDown    HealthStatus = "down"
	HealthUnknown HealthStatus = "unknown"
)

// RegionStatus is one region's health as a snapshot sees it: down when
// every VIP is down, unknown when no VIP has a counted vote, else up.
type RegionStatus struct {
	Name   string       `json:"name"`
	Status HealthStatus `json:"status"`
	// Drained: the region is taken out of every answer (Region.Drained).
	Drained bool `json:"drained"`
	// Healthy counts the VIPs answered: up or unknown.
	Healthy int `json:"healthy"`
	// VIPs holds each VIP's status and votes, in the region's order.
	VIPs []VIPStatus `json:"vips"`
	// Region is the region as stored. Read-only.
	Region *Region `json:"region"`
	// Reports holds every report on the region, counted or not, sorted by
	// prober id. Read-only.
	Reports []*HealthReport `json:"reports"`
	// ejectSig sums up what services' ejection bounds read of the region
	// (ejectionFacts).
	ejectSig uint64

	// loads are the counted probers' load readings (see LoadAt), and
	// loadErrs why configured statistics gave none.
	loads    []loadReading
	loadErrs []string
}

// VIPStatus is one VIP's health: down when more than the quorum fraction
// of its counted votes say down (a tie keeps it up), unknown without a
// counted vote.
type VIPStatus struct {
	Addr   netip.Addr   `json:"addr"`
	Status HealthStatus `json:"status"`
	// Up and Down count the counted votes.
	Up    int    `json:"up"`
	Down  int    `json:"down"`
	Votes []Vote `json:"votes"`

	// Passive: down by passive health alone (the down votes would not
	// reach the quorum without the passive ones). Each service answers
	// such a VIP while ejecting it would exceed its max_ejection.
	Passive bool `json:"passive,omitempty"`
	// capacity (0: none) and, when Passive, passiveSince: what ejection
	// bounds read (ejectionFacts).
	capacity     float64
	passiveSince time.Time
}

// Vote is one prober's say on one VIP.
type Vote struct {
	Prober       string `json:"prober"`
	ProberRegion string `json:"prober_region,omitempty"`
	Up           bool   `json:"up"`
	// Counted is false for untrusted reports and for reports whose prober
	// is not registered under the report's lease; Ignored says why.
	Counted bool   `json:"counted"`
	Ignored string `json:"ignored,omitempty"`
	// Passive: a down vote of passive health alone (the prober's active
	// check passes). Capacity is what the report says of the VIP.
	Passive  bool     `json:"passive,omitempty"`
	Capacity *float64 `json:"capacity,omitempty"`
	// From the report: last failure reason, RTT, last transition, when
	// it was observed.
	Reason   string    `json:"reason,omitempty"`
	RTT      Duration  `json:"rtt,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Observed time.Time `json:"observed,omitzero"`
}

// Snapshot is an immutable, compiled view of a State: what every query
// reads. It is built off the query path (BuildSnapshot) and swapped in
// whole; nothing in it changes afterwards, so any number of goroutines
// may use it without locks. A snapshot built from the previous one shares
// with it every part that did not change: the compiled services, the
// service name index, the geo tables.
type Snapshot struct {
	state    *State
	opts     SnapshotOptions
	problems []string // of the state, the regions, the latency table and the geo tables

	regions   []RegionStatus // sorted by name; the index is the region id
	regionIdx map[string]int
	// Per region id, VIPs by family (0 IPv4, 1 IPv6): all of them, and
	// the healthy ones (up or unknown) that answers carry.
	addrs   [][2][]netip.Addr
	healthy [][2][]netip.Addr
	vecs    []vec3 // per region id: location on the unit sphere

	// entries holds every service of the state, compiled or skipped,
	// sorted by key, and keys indexes them by key; dups are the keys of
	// the entries skipped as another key's name. services are the
	// compiled ones sorted by name, and names indexes them. keys and
	// names are the previous snapshot's while they stay the same.
	entries  []*svcEntry
	keys     *keyIndex
	dups     []string
	services []*ServiceView
	names    *nameIndex
	// gen identifies the build: the entries, views and geo tables it
	// made carry it, and it may change them until it returns.
	gen uint64

	lat *latency.Table
	// latencyErr remembers why the table with latencyErrID could not be
	// compiled, so the next snapshot does not parse it again.
	latencyErrID, latencyErr string
	// latRegion maps a latency table region id to a region id (-1: no such
	// region).
	latRegion []int32

	geo snapGeo

	stats BuildStats

	// now is the time the snapshot was built for: the factors are
	// evolved to it, and the shifts in force are those active then
	// (shifts). next is the earliest time a service's factors change
	// again or a shift it applies expires (unix ns; 0: neither).
	now    time.Time
	next   int64
	shifts *shiftIndex
}

// snapGeo is what a snapshot's geo services read: the tables, and the
// location table of the database geo maps are compiled against (nil
// while it is not built, or without a database).
type snapGeo struct {
	tables *GeoTables
	db     *geo.DB
	lt     *locTable
	// users counts the services of each partition; merges are the
	// partitions' merges built so far, which every geo view reads.
	users  map[*partition]int
	merges map[*partition]*merge
}

// nameIndex maps service names to their index in Snapshot.services.
type nameIndex struct{ m map[string]int32 }

// BuildStats says what building a snapshot did.
type BuildStats struct {
	// Services counts the services of the state; Compiled the ones
	// compiled from scratch, Refreshed the ones whose regions' health,
	// drains or addresses, or whose geo merge changed (their compiled map
	// kept); the rest were taken over from the previous snapshot.
	Services  int `json:"services"`
	Compiled  int `json:"compiled"`
	Refreshed int `json:"refreshed"`
	// Took is how long the build took.
	Took time.Duration `json:"took"`
}

// policyKind is a Policy as a small integer for the query path.
type policyKind uint8

const (
	kindWeighted policyKind = iota
	kindFailover
	kindGeo
	kindNearest
	kindLatency
)

type allDownKind uint8

const (
	downOpen allDownKind = iota
	downClosed
	downFallback
)

// ServiceView is a service compiled for one snapshot: its regions with
// their health, addresses and weights resolved, candidate sets per address
// family and its geo map as region positions. Read-only.
//
// What the build compiles from the service alone (viewConst, and each
// slot's slotConst) is shared by every view refreshed from it: a region
// change refreshes thousands of views, and copies only what follows the
// regions (docs/architecture.md, The incremental snapshot).
type ServiceView struct {
	*viewConst

	// lowTTL: a region of the service (not drained) is down, or its
	// health is unknown while probers are registered (they distrust
	// themselves, as in a global outage, or have not voted yet), so that
	// answering it is a guess: every answer carries the degraded TTL.
	lowTTL bool
	// spill: a slot keeps less than all its clients (slot.keep), which
	// the policies other than weighted send to their next candidate.
	spill bool
	slots []slot
	// next is when the factors change again (unix ns; 0: they rest).
	next int64
	// asks models when the service's resolvers ask (slow start only).
	asks *resolvers
	fam  [2]famView
	geo  *geoTable
	gen  uint64 // the build that made the view (Snapshot.gen)
}

// viewConst is the part of a view compiled from the service alone,
// never written after the compile.
type viewConst struct {
	name string
	svc  *Service
	key  string // the state's key

	policy      policyKind
	sticky      bool
	mode        allDownKind
	maxAnswers  int
	ttl         uint32
	degradedTTL uint32
	nearTol     float64
	latTol      float64
	nw          int // words of a slotSet in use
	// slotOf maps a region id to the slot that holds it, or -1.
	slotOf []int16
	// fallback: the all_down addresses by family (fallback mode).
	fallback [2][]netip.Addr
}

// slot is one region of a service, in the service's order.
type slot struct {
	*slotConst
	// weight is the configured one (base) as a shift leaves it, 0 while
	// the region is drained: what makes a slot a candidate.
	weight uint32
	// eff is the effective weight of the draws (weight × 2^16, with the
	// kept fraction solved in for weighted services); keep is the
	// rendezvous position below which a client stays (keepAll: every
	// client). Factors computed at build time land here, never in a geo
	// table (docs/controller.md).
	eff  uint64
	keep uint64
	// ctl is the controller state (nil: no factor moves).
	ctl *slotCtl
	// vr, while VIPs of the region ramp in: the answers without them
	// (nil: no VIP ramps).
	vr     *vipRamp
	vec    *vec3 // the region's location on the unit sphere
	status healthCode
	// addrs are the healthy VIPs by family, what answers carry; all are
	// every VIP, answered when failing open. Never nil: they point into
	// the snapshot's tables of the region (or at the VIPs passive health
	// kept), shared by every slot of the region rather than copied.
	addrs *[2][]netip.Addr
	all   *[2][]netip.Addr
}

// healthCode is a HealthStatus in a byte, as slots hold it.
type healthCode uint8

const (
	codeUnknown healthCode = iota
	codeUp
	codeDown
)

// codeOf is h as a healthCode.
func codeOf(h HealthStatus) healthCode {
	switch h {
	case HealthUp:
		return codeUp
	case HealthDown:
		return codeDown
	}
	return codeUnknown
}

// health is c as a HealthStatus.
func (c healthCode) health() HealthStatus {
	switch c {
	case codeUp:
		return HealthUp
	case codeDown:
		return HealthDown
	}
	return HealthUnknown
}

// slotConst is the part of a slot compiled from the service and the
// region's name, never written after the compile.
type slotConst struct {
	name   string
	region int // region id in the snapshot
	base   uint32
	biasKm float64
	hash   uint64 // regionHash(name)
}

// famView holds a service's candidates for one address family.
type famView struct {
	// cands: not drained, with addresses of the family; up: cands with
	// healthy addresses of the family. Never nil, never written through:
	// shared between views (sharedSet), the query path copies them.
	cands *slotSet
	up    *slotSet
	// any counts the slots with addresses of the family, drained or
	// not; nCands and nUp the slots of cands and up (at most
	// MaxRegions).
	any, nCands, nUp int32
}

// geoTable is a service's geo map with region names turned into slots.
type geoTable struct {
	countries  map[string]int // country code -> index in lists
	continents [numContinents]int
	def        int // index in lists, or -1
	lists      [][]int
	// needsLoc is false when only a default is given: then the answer
	// does not depend on the client and no lookup is made.
	needsLoc bool
	// With the snapshot's location table (and needsLoc): the service's
	// partition of its locations, its merge once built (nil until then),
	// and each group's class: the service's slots in the order the group
	// prefers them, every slot once.
	part   *partition
	merge  *merge
	orders [][]int16
	gen    uint64 // the build that made the table (Snapshot.gen)
}

const numContinents = 7

// NumContinents is how many continents there are: Continents' length.
const NumContinents = numContinents

// Continents are the continent codes (geo.Location.Continent), in the
// order of the indexes ClientContinent returns.
var Continents = [NumContinents]string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

// continentIndex maps a continent code to its index in Continents, or -1.
func continentIndex(code string) int {
	switch code {
	case "AF":
		return 0
	case "AN":
		return 1
	case "AS":
		return 2
	case "EU":
		return 3
	case "NA":
		return 4
	case "OC":
		return 5
	case "SA":
		return 6
	}
	return -1
}

// BuildSnapshot compiles st into an immutable snapshot. It never fails:
// entries it cannot use (a service naming a region that does not exist,
// an invalid latency table...) are skipped and listed in Problems. prev
// (may be nil) lets it reuse work that did not change: the compiled
// latency table (same LatencyData.ID), and with the same options every
// service whose object is the same and whose regions did not change
// (docs/architecture.md, The incremental snapshot). st must not change
// afterwards.
func BuildSnapshot(st *State, prev *Snapshot, opts SnapshotOptions) *Snapshot {
	return BuildSnapshotAt(st, prev, opts, time.Now())
}

// BuildSnapshotAt is BuildSnapshot for the time now: the factors
// (docs/controller.md) are evolved from prev's to now, load readings
// are fresh or stale as of now, and the shifts in force are those
// active at now (docs/shifts.md). now should not go back from prev's.
func BuildSnapshotAt(st *State, prev *Snapshot, opts SnapshotOptions, now time.Time) *Snapshot {
	start := time.Now()
	if st == nil {
		st = NewState()
	}
	s := &Snapshot{state: st, now: now}
	s.problems = append(s.problems, st.Problems...)
	s.opts = s.normalize(opts)
	same := prev
	if prev != nil && prev.opts != s.opts {
		same = nil
	}

	s.buildRegions()
	s.buildShifts(prev)
	s.buildLatency(prev)
	s.buildGeo(same)
	s.buildServices(same)
	s.stats.Took = time.Since(start)
	return s
}

func (s *Snapshot) problemf(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *Snapshot) normalize(o SnapshotOptions) SnapshotOptions {
	switch {
	case o.Quorum == 0:
		o.Quorum = DefaultQuorum
	case !(o.Quorum > 0 && o.Quorum < 1):
		s.problemf("options: quorum %v: want a fraction above 0 and below 1; using %v", o.Quorum, DefaultQuorum)
		o.Quorum = DefaultQuorum
	}
	switch {
	case o.StickyBitsV4 == 0:
		o.StickyBitsV4 = DefaultStickyBitsV4
	case o.StickyBitsV4 < 0 || o.StickyBitsV4 > 32:
		s.problemf("options: sticky IPv4 bits %d: want 1 to 32; using %d", o.StickyBitsV4, DefaultStickyBitsV4)
		o.StickyBitsV4 = DefaultStickyBitsV4
	}
	switch {
	case o.StickyBitsV6 == 0:
		o.StickyBitsV6 = DefaultStickyBitsV6
	case o.StickyBitsV6 < 0 || o.StickyBitsV6 > 128:
		s.problemf("options: sticky IPv6 bits %d: want 1 to 128; using %d", o.StickyBitsV6, DefaultStickyBitsV6)
		o.StickyBitsV6 = DefaultStickyBitsV6
	}
	return o
}

func (s *Snapshot) buildRegions() {
	st := s.state
	names := make([]string, 0, len(st.Regions))
	for key, r := range st.Regions {
		switch {
		case r == nil:
			s.problemf("region %q: no data; skipped", key)
		case r.Name != key:
			s.problemf("region %q: stored under the name %q; skipped", r.Name, key)
		default:
			names = append(names, key)
		}
	}
	slices.Sort(names)
	s.regions = make([]RegionStatus, len(names))
	s.addrs = make([][2][]netip.Addr, len(names))
	s.healthy = make([][2][]netip.Addr, len(names))
	s.vecs = make([]vec3, len(names))
	s.regionIdx = make(map[string]int, len(names))
	for i, name := range names {
		r := st.Regions[name]
		s.regionIdx[name] = i
		s.vecs[i] = unitVector(r.Location.Lat, r.Location.Lon)
		rs := s.regionHealth(r)
		for k, a := range r.VIPs {
			fam := 1
			switch {
			case !a.IsValid() || a.Zone() != "":
				s.problemf("region %s: address %v cannot be answered; skipped", name, a)
				continue
			case a.Unmap().Is4():
				a, fam = a.Unmap(), 0
			}
			s.addrs[i][fam] = append(s.addrs[i][fam], a)
			if rs.VIPs[k].Status != HealthDown {
				s.healthy[i][fam] = append(s.healthy[i][fam], a)
			}
		}
		s.regions[i] = rs
	}
}

// regionHealth counts the votes on each of r's VIPs. A report counts while
// its prober is registered under the report's lease (so a report written
// by hand, or left behind by a prober that is gone, does not) and while
// the prober trusts itself.
func (s *Snapshot) regionHealth(r *Region) RegionStatus {
	st := s.state
	rs := RegionStatus{Name: r.Name, Region: r, Drained: r.Drained, Status: HealthUnknown, VIPs: make([]VIPStatus, len(r.VIPs))}
	index := make(map[netip.Addr]int, len(r.VIPs))
	for k, a := range r.VIPs {
		rs.VIPs[k] = VIPStatus{Addr: a, Status: HealthUnknown, Votes: []Vote{}}
		index[a.Unmap()] = k
	}
	for _, rep := range st.Health[r.Name] {
		if rep != nil {
			rs.Reports = append(rs.Reports, rep)
		}
	}
	slices.SortFunc(rs.Reports, func(a, b *HealthReport) int { return strings.Compare(a.Prober, b.Prober) })
	for _, rep := range rs.Reports {
		ignored := s.ignored(rep)
		for _, vh := range rep.VIPs {
			k, ok := index[vh.Addr.Unmap()]
			if !ok {
				continue // a VIP the region no longer has
			}
			vs := &rs.VIPs[k]
			vs.Votes = append(vs.Votes, Vote{Prober: rep.Prober, ProberRegion: rep.ProberRegion, Up: vh.Up,
				Counted: ignored == "", Ignored: ignored, Reason: vh.Reason, RTT: vh.RTT, Since: vh.Since, Observed: rep.Observed,
				Passive: vh.Passive && !vh.Up, Capacity: vh.Capacity})
			if ignored != "" {
				continue
			}
			if vh.Up {
				vs.Up++
			} else {
				vs.Down++
			}
		}
	}
	rs.loads, rs.loadErrs = regionLoads(r, rs.Reports, func(rep *HealthReport) bool { return s.ignored(rep) == "" })
	q := s.opts.Quorum
	counted, down := false, 0
	for k := range rs.VIPs {
		vs := &rs.VIPs[k]
		if n := vs.Up + vs.Down; n > 0 {
			counted = true
			vs.Status = HealthUp
			if float64(vs.Down) > q*float64(n) {
				vs.Status = HealthDown
				vs.Passive = passiveOnly(vs, q)
				down++
			}
		}
	}
	rs.ejectSig = ejectionFacts(&rs)
	rs.Healthy = len(rs.VIPs) - down
	switch {
	case down == len(rs.VIPs) && down > 0:
		rs.Status = HealthDown
	case counted:
		rs.Status = HealthUp
	}
	return rs
}

// ignored says why a report's votes (and load readings) do not count,
// "" when they do.
func (s *Snapshot) ignored(rep *HealthReport) string {
	switch reg := s.state.Probers[rep.Prober]; {
	case reg == nil:
		return "the prober is not registered"
	case reg.Lease != rep.Lease:
		return "the report is not bound to the prober's registration lease"
	case !rep.Trusted:
		return "the prober failed its self-check"
	}
	return ""
}

func (s *Snapshot) buildLatency(prev *Snapshot) {
	d := s.state.Latency
	if d == nil {
		return
	}
	switch {
	case prev != nil && prev.lat != nil && prev.lat.ID() == d.ID:
		s.lat = prev.lat
	case prev != nil && prev.latencyErrID == d.ID && prev.latencyErr != "":
		s.latencyErrID, s.latencyErr = d.ID, prev.latencyErr
	default:
		t, err := latency.Compile(d.ID, d.CSV)
		if err != nil {
			s.latencyErrID, s.latencyErr = d.ID, err.Error()
		} else {
			s.lat = t
		}
	}
	if s.latencyErr != "" {
		s.problemf("latency table %q: %s; latency steering falls back to nearest", d.ID, s.latencyErr)
		return
	}
	s.latRegion = make([]int32, len(s.lat.Regions()))
	for i, name := range s.lat.Regions() {
		s.latRegion[i] = -1
		if r, ok := s.regionIdx[name]; ok {
			s.latRegion[i] = int32(r)
		}
	}
}

// NextChange is when the snapshot answers differently with the state
// unchanged: a service's factors move, or a shift it applies expires.
// It should be built again (from this one) then; only the services due
// or shifted are refreshed. Zero when nothing is due.
func (s *Snapshot) NextChange() time.Time {
	if s.next == 0 {
		return time.Time{}
	}
	return time.Unix(0, s.next)
}

// Time is the time the snapshot was built for.
func (s *Snapshot) Time() time.Time { return s.now }

// Revision is the etcd revision of the state the snapshot was built from.
func (s *Snapshot) Revision() int64 { return s.state.Revision }

// State is the input the snapshot was built from. Read-only.
func (s *Snapshot) State() *State { return s.state }

// Options are the options the snapshot was built with, defaults filled in.
func (s *Snapshot) Options() SnapshotOptions { return s.opts }

// Services lists the services sorted by name.
func (s *Snapshot) Services() []*ServiceView { return slices.Clone(s.services) }

// Regions lists every region's health sorted by name.
func (s *Snapshot) Regions() []RegionStatus { return slices.Clone(s.regions) }

// RegionStatus returns one region's health.
func (s *Snapshot) RegionStatus(name string) (RegionStatus, bool) {
	i, ok := s.regionIdx[name]
	if !ok {
		return RegionStatus{}, false
	}
	return s.regions[i], true
}

// Latency is the compiled latency table; nil if there is none.
func (s *Snapshot) Latency() *latency.Table { return s.lat }

// Name is the service's canonical name (lower case, fully qualified).
func (v *ServiceView) Name() string { return v.name }

// Service is the service as stored. Read-only.
func (v *ServiceView) Service() *Service { return v.svc }

// TTL is the service's TTL (not degraded).
func (v *ServiceView) TTL() uint32 { return v.ttl }

// NumRegions is how many regions the service answers with: those it
// lists that exist, each once, in its order.
func (v *ServiceView) NumRegions() int { return len(v.slots) }

// RegionName is the name of the service's i-th region, i < NumRegions.
func (v *ServiceView) RegionName(i int) string { return v.slots[i].name }

// RegionPos is the position among the service's regions of the region
// at index r of the snapshot's Regions (Decision.RegionIndex), -1 when
// the service does not list it. It costs a slice read, for counting
// answers by service and region on the query path.
func (v *ServiceView) RegionPos(r int) int {
	if r < 0 || r >= len(v.slotOf) {
		return -1
	}
	return int(v.slotOf[r])
}

// AllRegionAddrs lists the addresses of every region of the service that
// is not drained, whatever its health, in the service's order without
// duplicates: the answer a service fails open to, and what a zone
// transfer carries for it. IPv4 in v4, IPv6 in v6.
func (v *ServiceView) AllRegionAddrs() (v4, v6 []netip.Addr) {
	out := [2][]netip.Addr{}
	for i := range v.slots {
		sl := &v.slots[i]
		if sl.weight == 0 {
			continue
		}
		for f := range out {
			for _, a := range sl.all[f] {
				if !slices.Contains(out[f], a) {
					out[f] = append(out[f], a)
				}
			}
		}
	}
	return out[0], out[1]
}
