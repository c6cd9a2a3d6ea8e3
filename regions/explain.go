package regions

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions/latency"
)

// Explanation is a decision with every step that led to it: the
// candidates each step saw, what it kept and why. It is what
// GET /v1/explain returns, and encodes to JSON.
type Explanation struct {
	Service  string        `json:"service"`
	Policy   Policy        `json:"policy"`
	Sticky   bool          `json:"sticky,omitempty"`
	QType    string        `json:"qtype"`
	Revision int64         `json:"revision"`
	Client   ExplainClient `json:"client"`
	Steps    []ExplainStep `json:"steps"`
	Decision Decision      `json:"decision"`
	// Answer is the addresses in the order they are sent.
	Answer []netip.Addr `json:"answer"`
	// Reason sums the result up in one sentence.
	Reason string `json:"reason"`
}

// ExplainClient is the client as the decision saw it.
type ExplainClient struct {
	Addr netip.Addr `json:"addr,omitzero"`
	Bits int        `json:"bits"`
	// Location is set when the policy looked the client up.
	Location *ExplainLocation `json:"location,omitempty"`
	// Latency is set when the policy looked the client up in the latency
	// table.
	Latency *ExplainLatency `json:"latency,omitempty"`
}

// ExplainLocation is a GeoIP lookup result.
type ExplainLocation struct {
	Country   string       `json:"country,omitempty"`
	Continent string       `json:"continent,omitempty"`
	Lat       *float64     `json:"lat,omitempty"`
	Lon       *float64     `json:"lon,omitempty"`
	Network   netip.Prefix `json:"network,omitzero"`
	// Block, set when the decision read the service's compiled geo
	// table, is the widest block around the client in which every
	// address gets the same geo class: the database's neighbouring
	// networks of that class merged. Scope is then its length.
	Block netip.Prefix `json:"block,omitzero"`
	// Scope is how many address bits the lookup result holds for.
	Scope int `json:"scope"`
}

// ExplainLatency is a latency table lookup result.
type ExplainLatency struct {
	Matched bool         `json:"matched"`
	Prefix  netip.Prefix `json:"prefix,omitzero"`
	// Scope is how many address bits the lookup result holds for.
	Scope int             `json:"scope"`
	RTTs  []ExplainRegRTT `json:"rtts,omitempty"`
}

// ExplainRegRTT is one region's RTT from the latency table.
type ExplainRegRTT struct {
	Region string  `json:"region"`
	RTTms  float64 `json:"rtt_ms"`
}

// ExplainStep is one step of a decision: family, health, all-down,
// preference, weights.
type ExplainStep struct {
	Step       string             `json:"step"`
	Candidates []ExplainCandidate `json:"candidates,omitempty"`
	// Result lists the regions the step kept.
	Result []string `json:"result,omitempty"`
	Reason string   `json:"reason"`
}

// ExplainCandidate is one region as a step saw it.
type ExplainCandidate struct {
	Region     string       `json:"region"`
	Status     HealthStatus `json:"status"`
	Weight     uint32       `json:"weight"`
	Kept       bool         `json:"kept"`
	DistanceKm *float64     `json:"distance_km,omitempty"` // including the bias
	BiasKm     float64      `json:"bias_km,omitempty"`
	RTTms      *float64     `json:"rtt_ms,omitempty"`
	Score      *float64     `json:"score,omitempty"` // rendezvous score
	Note       string       `json:"note,omitempty"`
	// Factors (in the health step) are what makes the region's
	// effective weight.
	Factors *ExplainFactors `json:"factors,omitempty"`
	// Shift (in the health step) is the shift that decides the region's
	// weight, until when.
	Shift *ShiftRef `json:"shift,omitempty"`
}

// ExplainFactors is a region's effective weight in a service, factor by
// factor (docs/controller.md): configured weight × shift × health × load
// × ramp.
type ExplainFactors struct {
	ConfiguredWeight uint32 `json:"configured_weight"`
	// Shift is a shift's factor (1 without a shift); ShiftNote says
	// which shift, and a weight it sets.
	Shift     float64 `json:"shift"`
	ShiftNote string  `json:"shift_note,omitempty"`
	// Health is 1 while the region can be answered, else 0 (down,
	// drained or weight 0).
	Health float64 `json:"health"`
	// Load is the load factor; Utilisation, LoadObserved, LoadAgeSeconds
	// and LoadSource the signal it follows (absent without a fresh
	// reading), LoadNote what the controller made of it.
	Load           float64   `json:"load"`
	Utilisation    *float64  `json:"utilisation,omitempty"`
	LoadObserved   time.Time `json:"load_observed,omitzero"`
	LoadAgeSeconds *float64  `json:"load_age_seconds,omitempty"`
	LoadSource     string    `json:"load_source,omitempty"`
	LoadNote       string    `json:"load_note,omitempty"`
	// Ramp is the slow-start factor; RampNote where the ramp is.
	Ramp     float64 `json:"ramp"`
	RampNote string  `json:"ramp_note,omitempty"`
	// RampingVIPs came back up while the region was answered: they are
	// in the share VIPRamp of its answers, VIPRampNote says why.
	RampingVIPs []netip.Addr `json:"ramping_vips,omitempty"`
	VIPRamp     *float64     `json:"vip_ramp,omitempty"`
	VIPRampNote string       `json:"vip_ramp_note,omitempty"`
	// Kept is shift × load × ramp: the fraction of its full share the
	// region keeps.
	Kept float64 `json:"kept"`
	// EffectiveWeight is the weight the draws use, in units of the
	// configured weights.
	EffectiveWeight float64 `json:"effective_weight"`
	// Share is the share of the family's answers the region can expect
	// now (weighted services; for the others the client's place decides
	// first, and Kept is the share of its own clients it keeps).
	Share *float64 `json:"share,omitempty"`
	Why   string   `json:"why"`
}

// Explain makes the same decision as Decide (the same inputs give the
// same Decision) and records every step. It allocates; it is for the
// API and tests, not the query path.
func (s *Snapshot) Explain(v *ServiceView, c *Client, qtype uint16, rnd uint64) (Decision, *Explanation) {
	if v == nil {
		return Decision{}, &Explanation{QType: qtypeName(qtype), Revision: s.Revision(), Steps: []ExplainStep{},
			Reason: "no such service: NODATA"}
	}
	e := &Explanation{
		Service:  v.name,
		Policy:   v.svc.Policy,
		Sticky:   v.sticky,
		QType:    qtypeName(qtype),
		Revision: s.Revision(),
	}
	addr, cbits := clientAddr(c)
	e.Client.Addr, e.Client.Bits = addr, cbits
	tr := &tracer{s: s, v: v, e: e}
	d := s.decide(v, c, qtype, rnd, tr)
	e.Decision = d
	for i := 0; i < d.Count; i++ {
		e.Answer = append(e.Answer, d.Addr(i))
	}
	e.Reason = summary(&d, qtype, degradedWhy(v, &d))
	if e.Steps == nil {
		e.Steps = []ExplainStep{}
	}
	return d, e
}

func qtypeName(q uint16) string {
	switch q {
	case QTypeA:
		return "A"
	case QTypeAAAA:
		return "AAAA"
	}
	return "TYPE" + strconv.Itoa(int(q))
}

// degradedWhy says why a decision carries the degraded TTL ("" when it
// does not).
func degradedWhy(v *ServiceView, d *Decision) string {
	if !d.Degraded {
		return ""
	}
	switch {
	case d.FailOpen:
		return "failing open"
	case d.Fallback || d.Kind == KindNoData && !v.lowTTL:
		return "no region is up"
	}
	for _, sl := range v.slots {
		if sl.weight > 0 && sl.status == codeDown {
			return "region " + sl.name + " is down"
		}
	}
	for _, sl := range v.slots {
		if sl.weight > 0 && sl.status == codeUnknown {
			return "no counted vote on region " + sl.name + " while probers run"
		}
	}
	return ""
}

func summary(d *Decision, qtype uint16, degraded string) string {
	var b strings.Builder
	switch {
	case d.Kind == KindNoData:
		b.WriteString("NODATA")
	case d.Fallback:
		fmt.Fprintf(&b, "fallback addresses, %d of %d from index %d", d.Count, len(d.Addrs), d.Start)
	default:
		fmt.Fprintf(&b, "region %s: %d of %d %s addresses from index %d", d.Region, d.Count, len(d.Addrs), qtypeName(qtype), d.Start)
	}
	fmt.Fprintf(&b, "; TTL %d", d.TTL)
	if d.Degraded {
		b.WriteString(" (degraded")
		if degraded != "" {
			b.WriteString(": " + degraded)
		}
		b.WriteString(")")
	}
	if d.FailOpen {
		b.WriteString("; failing open")
	}
	fmt.Fprintf(&b, "; ECS scope /%d", d.Scope)
	return b.String()
}

// tracer records a decision's steps for Explain.
type tracer struct {
	s  *Snapshot
	v  *ServiceView
	e  *Explanation
	fi int
	// cur is the index of the step being recorded in e.Steps, and
	// bySlot where each slot's candidate is in it.
	cur    int
	bySlot map[int]int
}

func famName(fi int) string {
	if fi == 0 {
		return "A"
	}
	return "AAAA"
}

// begin starts a step listing the slots in set (every slot when set is
// nil).
func (t *tracer) begin(name string, set *slotSet) {
	st := ExplainStep{Step: name}
	t.bySlot = map[int]int{}
	for i := range t.v.slots {
		if set != nil && !set.has(i) {
			continue
		}
		sl := &t.v.slots[i]
		t.bySlot[i] = len(st.Candidates)
		st.Candidates = append(st.Candidates, ExplainCandidate{Region: sl.name, Status: sl.status.health(), Weight: sl.weight})
	}
	t.e.Steps = append(t.e.Steps, st)
	t.cur = len(t.e.Steps) - 1
}

func (t *tracer) cand(slot int) *ExplainCandidate {
	i, ok := t.bySlot[slot]
	if !ok {
		return nil
	}
	return &t.e.Steps[t.cur].Candidates[i]
}

// endStep marks the candidates in kept and gives the reason.
func (t *tracer) endStep(kept *slotSet, reason string) {
	st := &t.e.Steps[t.cur]
	for slot, i := range t.bySlot {
		if kept.has(slot) {
			st.Candidates[i].Kept = true
		}
	}
	st.Result = nil
	for i := range t.v.slots {
		if kept.has(i) {
			st.Result = append(st.Result, t.v.slots[i].name)
		}
	}
	st.Reason = reason
}

func (t *tracer) noData(reason string) {
	t.e.Steps = append(t.e.Steps, ExplainStep{Step: "family", Reason: reason + ": NODATA"})
}

func (t *tracer) family(fi int) {
	t.fi = fi
	t.begin("family", nil)
	var kept slotSet
	for i := range t.v.slots {
		if len(t.v.slots[i].all[fi]) > 0 {
			kept.add(i)
		} else if c := t.cand(i); c != nil {
			c.Note = "no " + famName(fi) + " address"
		}
	}
	fv := &t.v.fam[fi]
	reason := fmt.Sprintf("%d of %d regions have %s addresses", fv.any, len(t.v.slots), famName(fi))
	if fv.any == 0 {
		reason += ": NODATA (not an all-down event)"
	}
	t.endStep(&kept, reason)
}

// vipNote sums up the health of a region's VIPs of one family as a
// service's slot sees it: each VIP's status with its counted votes, and
// whether passive health alone took it down and the service's
// max_ejection kept it.
func vipNote(rs *RegionStatus, sl *slot, fi int) string {
	var parts []string
	for _, vs := range rs.VIPs {
		if vs.Addr.Unmap().Is4() != (fi == 0) {
			continue
		}
		switch n := vs.Up + vs.Down; {
		case n == 0:
			parts = append(parts, fmt.Sprintf("%s unknown (no counted vote: counted as up)", vs.Addr))
		case vs.Passive && slices.Contains(sl.addrs[fi], vs.Addr.Unmap()):
			parts = append(parts, fmt.Sprintf("%s answered: down by passive health alone (%d of %d probers say down), but ejecting it would take out more than max_ejection of the service's healthy capacity", vs.Addr, vs.Down, n))
		case vs.Passive:
			parts = append(parts, fmt.Sprintf("%s down by passive health alone (%d of %d probers say down; within max_ejection)", vs.Addr, vs.Down, n))
		default:
			parts = append(parts, fmt.Sprintf("%s %s (%d of %d probers say down)", vs.Addr, vs.Status, vs.Down, n))
		}
	}
	return strings.Join(parts, "; ")
}

func (t *tracer) health(fi int) {
	var fam slotSet
	for i := range t.v.slots {
		if len(t.v.slots[i].all[fi]) > 0 {
			fam.add(i)
		}
	}
	t.begin("health", &fam)
	fv := &t.v.fam[fi]
	for i := range t.v.slots {
		c := t.cand(i)
		if c == nil {
			continue
		}
		sl := &t.v.slots[i]
		rs := &t.s.regions[sl.region]
		c.Shift = t.s.shiftOf(t.v, sl).ref(sl)
		switch {
		case rs.Drained:
			c.Note = "drained (the region is drained)"
		case sl.weight == 0 && c.Shift != nil:
			c.Note = "drained " + shiftNote(c.Shift)
		case sl.weight == 0:
			c.Note = "drained (weight 0)"
		case c.Shift != nil:
			c.Note = fmt.Sprintf("weight %d %s; %s", sl.weight, shiftNote(c.Shift), vipNote(rs, sl, fi))
		default:
			c.Note = vipNote(rs, sl, fi)
		}
	}
	t.endStep(fv.up, fmt.Sprintf("%d of %d candidates up (a VIP is down only when more than %v of its counted votes say down, a tie stays up; "+
		"no counted vote: unknown, counted as up; a region is down when every VIP is; weight 0: drained); "+
		"effective weight = configured weight × shift × health × load × ramp",
		fv.nUp, fv.any, t.s.opts.Quorum))
	t.factors(fi)
}

// factors gives each candidate of the health step its factors.
func (t *tracer) factors(fi int) {
	now := time.Now()
	sh, _ := t.s.ExpectedShares(t.v, [2]uint16{QTypeA, QTypeAAAA}[fi])
	for i := range t.v.slots {
		c := t.cand(i)
		if c == nil {
			continue
		}
		f := t.s.slotFactors(t.v, i, now)
		if t.v.policy == kindWeighted && sh.Regions != nil {
			x := sh.Regions[t.v.slots[i].name]
			f.Share = &x
		}
		c.Factors = f
	}
}

// slotFactors is slot i's effective weight, factor by factor, with
// signal ages as of now.
func (s *Snapshot) slotFactors(v *ServiceView, i int, now time.Time) *ExplainFactors {
	sl := &v.slots[i]
	rs := &s.regions[sl.region]
	sh := s.shiftOf(v, sl)
	kept := s.keptOf(v, sl)
	f := &ExplainFactors{ConfiguredWeight: sl.base, Shift: sh.factor, ShiftNote: sh.note, Load: 1, Ramp: 1, Kept: kept,
		EffectiveWeight: float64(sl.eff) / weightScale}
	if sh.note == "" {
		f.ShiftNote = "no shift"
	}
	if sl.answerable() {
		f.Health = 1
	}
	if c := sl.ctl; c != nil {
		f.Load, f.Ramp, f.LoadNote, f.RampNote = c.load, c.ramp.value, c.loadWhy, c.ramp.why
		if c.vipRamp.from != 0 {
			x := c.vipRamp.value
			f.RampingVIPs, f.VIPRamp, f.VIPRampNote = c.vips, &x, c.vipRamp.why
		}
	}
	if v.svc.Load != nil {
		if l := rs.LoadAt(s.now, s.signalAge(v, sl.region)); l != nil && l.Probers > 0 {
			u := l.Utilisation
			age := max(now.Sub(l.Observed), 0).Seconds()
			f.Utilisation, f.LoadObserved, f.LoadAgeSeconds, f.LoadSource = &u, l.Observed, &age, l.Source
		}
		if f.LoadNote == "" {
			f.LoadNote = "no evaluation yet"
		}
	}
	switch {
	case f.Health == 0 && rs.Drained:
		f.Why = "the region is drained: never answered"
	case f.Health == 0 && sl.weight == 0 && sh.by != nil:
		f.Why = "drained by shift " + sh.by.ID + ": never answered until it ends, then ramped in by slow start if the service has one"
	case f.Health == 0 && sl.weight == 0:
		f.Why = "weight 0: never answered"
	case f.Health == 0:
		f.Why = "the region is down: answered only when failing open"
	case kept >= 1:
		f.Why = "keeps its full share"
	case v.policy == kindWeighted:
		f.Why = fmt.Sprintf("weighted: its weight is solved so that it gets %.0f%% of its full share, the regions at their full share taking the rest by weight", 100*kept)
	default:
		f.Why = fmt.Sprintf("keeps the %.0f%% of its clients first in its rendezvous order; the others go to their next candidate", 100*kept)
	}
	return f
}

// Factors is each region of v with its effective weight, factor by
// factor, signal ages as of now: what /v1/status shows of the
// controller.
func (s *Snapshot) Factors(v *ServiceView, now time.Time) map[string]*ExplainFactors {
	out := make(map[string]*ExplainFactors, len(v.slots))
	for i := range v.slots {
		out[v.slots[i].name] = s.slotFactors(v, i, now)
	}
	return out
}

// vipRamp records whether a client's answers carry the VIPs that ramp
// in after coming back up.
func (t *tracer) vipRamp(sl *slot, fi int, pos uint64, with bool, addr netip.Addr, sb int) {
	slot := int(t.v.slotOf[sl.region])
	t.begin("vip-ramp", new(single(slot)))
	who := "nothing is known of the client: a random position"
	if addr.IsValid() && sb > 0 {
		p, _ := addr.Prefix(sb)
		who = "the client network " + p.String()
	}
	var ramping []string
	for _, a := range sl.addrs[fi] {
		if !slices.Contains(sl.vr.steady[fi], a) {
			ramping = append(ramping, a.String())
		}
	}
	share := 1.0
	if sl.vr.keep != keepAll {
		share = float64(sl.vr.keep) / (1 << 64)
	}
	reason := fmt.Sprintf("%s came back up and ramps in: %.1f%% of the client networks get it; %s is at %.1f%% of the order",
		strings.Join(ramping, ", "), 100*share, who, 100*float64(pos)/(1<<64))
	if with {
		reason += ": the answer carries it"
	} else {
		reason += ": the answer leaves it out"
	}
	kept := single(slot)
	t.endStep(&kept, reason)
}

// spill records whether a client stays with the chosen region that
// keeps less than all its clients.
func (t *tracer) spill(slot int, pos uint64, stay bool, addr netip.Addr, sb, cbits int) {
	sl := &t.v.slots[slot]
	t.begin("spill", new(single(slot)))
	who := "nothing is known of the client: a random position"
	if cbits > 0 {
		p, _ := addr.Prefix(sb)
		who = "the client network " + p.String()
	}
	at := float64(pos) / (1 << 64)
	frac := float64(sl.keep) / (1 << 64)
	reason := fmt.Sprintf("%s keeps %.1f%% of its clients (shift × load × ramp); %s is at %.1f%% of its order", sl.name, 100*frac, who, 100*at)
	var kept slotSet
	if stay {
		kept.add(slot)
		reason += ": it stays"
	} else {
		reason += ": it goes to its next candidate"
	}
	if c := t.cand(slot); c != nil {
		c.Note = fmt.Sprintf("kept %.3f, position %.3f", frac, at)
	}
	t.endStep(&kept, reason)
}

// shiftNote says which shift decides a weight and until when.
func shiftNote(r *ShiftRef) string {
	return fmt.Sprintf("by shift %s until %s (configured weight %d)", r.ID, r.Expires.UTC().Format(time.RFC3339), r.ConfiguredWeight)
}

func (t *tracer) allDown(reason string) {
	t.e.Steps = append(t.e.Steps, ExplainStep{Step: "all-down", Reason: "no candidate is up: " + reason})
}

func (t *tracer) beginPreference(set *slotSet) {
	t.begin("preference", set)
}

func (t *tracer) location(loc geo.Location, scope int, ok bool) {
	if !ok {
		return
	}
	el := &ExplainLocation{Country: loc.Country, Continent: loc.Continent, Network: loc.Network, Scope: scope}
	if loc.HasCoords {
		lat, lon := loc.Lat, loc.Lon
		el.Lat, el.Lon = &lat, &lon
	}
	t.e.Client.Location = el
}

// geoBlock records a geo choice read from the compiled table: where the
// database puts the client (looked up here, for the explanation only), the
// lists that apply and the merged block that gives the scope. set is the
// candidates before the choice.
func (t *tracer) geoBlock(c *Client, addr netip.Addr, scope int, set *slotSet, chosen int) {
	g := t.v.geo
	loc := c.Locator.Locate(addr)
	lists := g.listsFor(loc)
	want, used := g.pick(t.v, set, lists)
	block, _ := addr.Prefix(scope)
	el := &ExplainLocation{Country: loc.Country, Continent: loc.Continent, Network: loc.Network, Block: block, Scope: scope}
	if loc.HasCoords {
		lat, lon := loc.Lat, loc.Lon
		el.Lat, el.Lon = &lat, &lon
	}
	t.e.Client.Location = el
	t.geoLists(loc, lists, used)
	reason := t.geoReason(loc, lists, used)
	reason += fmt.Sprintf("; scope /%d: the merged block %s, in which every address gets the same order of regions", scope, block)
	if want != chosen {
		reason += fmt.Sprintf("; the compiled table chose %s where the database lookup gives %s", t.v.slots[chosen].name, t.v.slots[want].name)
	}
	kept := single(chosen)
	t.endStep(&kept, reason)
}

// geoListName names one of the lists preferGeo walks.
func geoListName(k int, loc geo.Location) string {
	switch k {
	case geoCountry:
		return "country " + loc.Country
	case geoContinent:
		return "continent " + loc.Continent
	}
	return "default"
}

// geoLists notes each candidate's positions in the lists that apply.
func (t *tracer) geoLists(loc geo.Location, lists [numGeoLists]int, used int) {
	for k, li := range lists {
		if li < 0 {
			continue
		}
		for pos, sl := range t.v.geo.lists[li] {
			if c := t.cand(sl); c != nil {
				if c.Note != "" {
					c.Note += "; "
				}
				c.Note += fmt.Sprintf("%s list position %d", geoListName(k, loc), pos+1)
			}
		}
	}
}

func (t *tracer) geoReason(loc geo.Location, lists [numGeoLists]int, used int) string {
	where := "the client's location is unknown"
	if l := t.e.Client.Location; l != nil {
		where = fmt.Sprintf("the client is in country %q, continent %q", l.Country, l.Continent)
	} else if t.v.geo != nil && !t.v.geo.needsLoc {
		where = "the map has only a default"
	}
	var skipped []string
	for k, li := range lists {
		if li < 0 {
			continue
		}
		if k == used {
			break
		}
		skipped = append(skipped, "the "+geoListName(k, loc)+" list")
	}
	var b strings.Builder
	b.WriteString("geo: " + where)
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "; no candidate in %s", strings.Join(skipped, ", then "))
	}
	switch {
	case used >= 0:
		fmt.Fprintf(&b, "; the %s list applies: its first candidate", geoListName(used, loc))
	case len(skipped) == 0:
		b.WriteString("; no list applies: the first candidate in the service's order")
	default:
		b.WriteString(": the first remaining candidate in the service's order")
	}
	return b.String()
}

func (t *tracer) distance(slot int, km float64) {
	if c := t.cand(slot); c != nil {
		c.DistanceKm = &km
		c.BiasKm = t.v.slots[slot].biasKm
	}
}

func (t *tracer) nearestReason(best, tol float64) string {
	return fmt.Sprintf("nearest: the nearest candidate is %.0f km away (bias included); kept those within %.0f km of it", best, tol)
}

func (t *tracer) latencyMatch(m *latency.Match, ok bool) {
	el := &ExplainLatency{Matched: ok, Prefix: m.Prefix(), Scope: m.Bits()}
	for i := 0; i < m.Len(); i++ {
		r, rtt := m.At(i)
		el.RTTs = append(el.RTTs, ExplainRegRTT{Region: r, RTTms: rtt})
	}
	t.e.Client.Latency = el
}

func (t *tracer) rtt(slot int, ms float64) {
	if c := t.cand(slot); c != nil {
		c.RTTms = &ms
	}
}

func (t *tracer) latencyReason(best, tol float64) string {
	return fmt.Sprintf("latency: the fastest candidate answers in %v ms for %s; kept those within %v ms of it (regions without an RTT rank after)",
		best, t.e.Client.Latency.Prefix, tol)
}

func (t *tracer) latencyFallback(matched bool) {
	switch {
	case t.s.lat == nil:
		t.e.Steps[t.cur].Reason = "latency: no latency table; "
	case t.e.Client.Latency == nil:
		t.e.Steps[t.cur].Reason = "latency: nothing is known of the client; "
	case !matched:
		t.e.Steps[t.cur].Reason = "latency: the client's network is not in the latency table; "
	default:
		t.e.Steps[t.cur].Reason = "latency: the table has no RTT for any candidate; "
	}
	t.e.Steps[t.cur].Reason += "falling back to nearest"
	// nearest records its own reason in a step of its own.
	t.begin("preference", t.currentKept())
}

// currentKept is the set of candidates of the current step.
func (t *tracer) currentKept() *slotSet {
	var s slotSet
	for slot := range t.bySlot {
		s.add(slot)
	}
	return &s
}

func (t *tracer) beginWeights(set *slotSet) {
	t.begin("weights", set)
}

func (t *tracer) score(slot int, sc float64) {
	if c := t.cand(slot); c != nil {
		c.Score = &sc
	}
}

func (t *tracer) stickyReason(addr netip.Addr, bits int) string {
	n := "no client network"
	if addr.IsValid() {
		p, _ := addr.Prefix(bits)
		n = p.String()
	}
	return "sticky: weighted rendezvous hash of the client network " + n + ": the highest score"
}

func (t *tracer) drawReason(draw, total uint64) string {
	return fmt.Sprintf("weighted random: drew %d of a total weight of %d", draw, total)
}

func (t *tracer) endWeights(chosen int, reason string) {
	t.endStep(new(single(chosen)), reason)
}
