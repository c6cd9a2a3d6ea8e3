package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// ServerStatus is what the server knows beyond its snapshot, for
// /v1/status. Etcd and GeoIP are shown as they encode to JSON (types with
// snake_case JSON names).
type ServerStatus struct {
	// Source says where the snapshot came from: "etcd" or "file".
	Source string
	// Built is when the snapshot was built.
	Built time.Time
	// Staleness is the age of the served data: how long ago etcd last
	// confirmed it current (Confirmed), also after a restart from the
	// state file.
	Staleness time.Duration
	Confirmed time.Time
	// EmptyRefused is set while an empty state from etcd is not served.
	EmptyRefused *store.EmptyRefused
	// Reports lists every health report served, with its age.
	Reports []store.ReportAge
	// Etcd describes the connection to etcd; nil leaves it out.
	Etcd any
	// GeoIP describes the GeoIP database; nil leaves it out.
	GeoIP any
	// RegionAnswers counts the steered answers of each region since the
	// server started.
	RegionAnswers map[string]uint64
}

// Details is what /health/details shows besides readiness and status.
type Details struct {
	Zones []ZoneInfo
	// Transport holds the DNS listeners' counters (JSON-encodable).
	Transport any
}

// ZoneInfo is one zone being served.
type ZoneInfo struct {
	Origin  string `json:"origin"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
}

// statusResponse is GET /v1/status.
type statusResponse struct {
	// Revision is the etcd revision of the served snapshot (0: none yet).
	Revision int64           `json:"revision"`
	Snapshot *snapshotStatus `json:"snapshot,omitempty"`
	Regions  []regionStatus  `json:"regions"`
	Services []serviceStatus `json:"services"`
	Etcd     any             `json:"etcd,omitempty"`
	GeoIP    any             `json:"geoip,omitempty"`
}

type snapshotStatus struct {
	Revision int64  `json:"revision"`
	Source   string `json:"source"`
	// Built is when the snapshot was built; AgeSeconds is the age of its
	// data: how long ago etcd last confirmed it current (Confirmed).
	Built      time.Time `json:"built,omitzero"`
	AgeSeconds float64   `json:"age_seconds"`
	Confirmed  time.Time `json:"confirmed,omitzero"`
	// EmptyRefused is set while an empty state from etcd is refused and
	// the previous state kept serving.
	EmptyRefused *store.EmptyRefused `json:"empty_refused,omitempty"`
	// Reports lists every health report served, with its age.
	Reports  []store.ReportAge `json:"reports"`
	Regions  int               `json:"regions"`
	Services int               `json:"services"`
	Latency  string            `json:"latency_table,omitempty"`
	Problems []string          `json:"problems"`
	// Build says what building the snapshot compiled, refreshed and
	// took over, and how long it took.
	Build regions.BuildStats `json:"build"`
	// GeoTables sums up the geo tables: the location table, the
	// partitions merged and pending, their memory.
	GeoTables geoTablesStatus `json:"geo_tables"`
	// ServiceBytes is the memory of the compiled services (without what
	// they share).
	ServiceBytes int `json:"service_bytes"`
}

type geoTablesStatus struct {
	Location    *regions.LocationTableInfo `json:"location,omitempty"`
	Partitions  int                        `json:"partitions"`
	Merged      int                        `json:"merged"`
	Pending     int                        `json:"pending"`
	OverBudget  int                        `json:"over_budget"`
	MergeBytes  int64                      `json:"merge_bytes"`
	MergeBudget int64                      `json:"merge_budget"`
}

type regionStatus struct {
	Name   string               `json:"name"`
	Status regions.HealthStatus `json:"status"`
	// Drained: taken out of every answer by an operator.
	Drained bool `json:"drained"`
	// Healthy counts the VIPs answers carry (up or unknown).
	Healthy int                 `json:"healthy"`
	VIPs    []regions.VIPStatus `json:"vips"`
	// Answers counts the steered answers that went to this region since
	// the server started.
	Answers  uint64           `json:"answers"`
	Location regions.Location `json:"location"`
}

type serviceStatus struct {
	Name    string                `json:"name"`
	Policy  regions.Policy        `json:"policy"`
	TTL     uint32                `json:"ttl"`
	Regions []serviceRegionStatus `json:"regions"`
	// ExpectedShare: the share of answers each region can expect now, per
	// address family ("ipv4", "ipv6").
	ExpectedShare map[string]regions.Shares `json:"expected_share"`
}

type serviceRegionStatus struct {
	Region  string               `json:"region"`
	Weight  uint32               `json:"weight"`
	Status  regions.HealthStatus `json:"status"`
	Drained bool                 `json:"drained"`
}

// statusOf builds the status from the snapshot and what the server says.
func (a *apiServer) statusOf() statusResponse {
	var srv ServerStatus
	if a.opts.Status != nil {
		srv = a.opts.Status()
	}
	out := statusResponse{Etcd: srv.Etcd, GeoIP: srv.GeoIP}
	var snap *regions.Snapshot
	if a.opts.Snapshot != nil {
		snap = a.opts.Snapshot()
	}
	if snap == nil {
		return out
	}
	st := snap.State()
	out.Revision = snap.Revision()
	out.Snapshot = &snapshotStatus{Revision: snap.Revision(), Source: srv.Source, Built: srv.Built, AgeSeconds: srv.Staleness.Seconds(),
		Confirmed: srv.Confirmed, EmptyRefused: srv.EmptyRefused, Reports: srv.Reports,
		Regions: len(st.Regions), Services: len(st.Services), Problems: snap.Problems(), Build: snap.Stats()}
	gt := snap.GeoTables()
	out.Snapshot.GeoTables = geoTablesStatus{Location: gt.Location, Partitions: len(gt.Partitions), Merged: gt.Merged, Pending: gt.Pending, OverBudget: gt.OverBudget,
		MergeBytes: gt.MergeBytes, MergeBudget: gt.MergeBudget}
	for _, v := range snap.Services() {
		out.Snapshot.ServiceBytes += v.Bytes()
	}
	if st.Latency != nil {
		out.Snapshot.Latency = st.Latency.ID + " (" + strconv.Itoa(st.Latency.Entries) + " entries)"
	}
	byName := map[string]regions.RegionStatus{}
	for _, rs := range snap.Regions() {
		byName[rs.Name] = rs
		out.Regions = append(out.Regions, regionStatus{Name: rs.Name, Status: rs.Status, Drained: rs.Drained, Healthy: rs.Healthy,
			VIPs: rs.VIPs, Answers: srv.RegionAnswers[rs.Name], Location: rs.Region.Location})
	}
	for _, v := range snap.Services() {
		svc := v.Service()
		ss := serviceStatus{Name: v.Name(), Policy: svc.Policy, TTL: svc.TTL, ExpectedShare: map[string]regions.Shares{}}
		for _, sr := range svc.Regions {
			rs := byName[sr.Region]
			ss.Regions = append(ss.Regions, serviceRegionStatus{Region: sr.Region, Weight: sr.Weight, Status: rs.Status, Drained: rs.Drained})
		}
		for fam, qt := range map[string]uint16{"ipv4": regions.QTypeA, "ipv6": regions.QTypeAAAA} {
			if sh, ok := snap.ExpectedShares(v, qt); ok {
				ss.ExpectedShare[fam] = sh
			}
		}
		out.Services = append(out.Services, ss)
	}
	return out
}

func (a *apiServer) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.statusOf())
}

// detailsResponse is GET /health/details.
type detailsResponse struct {
	Ready     bool           `json:"ready"`
	Reason    string         `json:"reason,omitempty"`
	Zones     []ZoneInfo     `json:"zones"`
	Transport any            `json:"transport,omitempty"`
	Status    statusResponse `json:"status"`
}

func (a *apiServer) details(w http.ResponseWriter, _ *http.Request) {
	out := detailsResponse{Ready: true, Status: a.statusOf()}
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			out.Ready, out.Reason = false, err.Error()
		}
	}
	if a.opts.Details != nil {
		d := a.opts.Details()
		out.Zones, out.Transport = d.Zones, d.Transport
	}
	writeJSON(w, http.StatusOK, out)
}

// auditResponse is a page of GET /v1/audit.
type auditResponse struct {
	Records []store.AuditRecord `json:"records"`
	// Next is the cursor of the next page (?after=), absent on the last.
	Next string `json:"next,omitempty"`
}

// audit answers GET /v1/audit?limit=N&after=ID: the audit log, newest
// first.
func (a *apiServer) audit(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxAuditPage {
			writeProblem(w, badField("limit", "%q: want 1 to %d", s, store.MaxAuditPage))
			return
		}
		limit = n
	}
	st, ctx, cancel, ok := a.storeFor(w, r)
	if !ok {
		return
	}
	defer cancel()
	after := r.URL.Query().Get("after")
	recs, next, err := st.ListAudit(ctx, after, limit)
	if err != nil {
		p := a.storeProblem(r, err)
		if p.Status == http.StatusBadRequest {
			p = badField("after", "%q is not a record id from an earlier page", after)
		}
		writeProblem(w, p)
		return
	}
	writeJSON(w, http.StatusOK, auditResponse{Records: recs, Next: next})
}
