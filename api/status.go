package api

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/geo"
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
	Etcd *apitypes.EtcdStatus
	// GeoIP describes the GeoIP database; nil leaves it out.
	GeoIP *geo.Info
	// RegionAnswers counts the steered answers of each region since the
	// server started.
	RegionAnswers map[string]uint64
	// TLS is the API's TLS; nil without it.
	TLS *apitypes.TLSStatus
	// Certificates lists the certificates the server uses.
	Certificates []apitypes.CertificateInfo
	// DNSSEC describes each signed zone.
	DNSSEC []apitypes.DNSSECZoneStatus
}

// Details is what /health/details shows besides readiness and status.
type Details struct {
	Zones []ZoneInfo
	// Transport holds the DNS listeners' counters; nil leaves them out.
	Transport *apitypes.TransportStats
	// HTTP counts the HTTP server's connections; nil leaves them out.
	HTTP *apitypes.HTTPStats
}

// ZoneInfo is one zone being served.
type ZoneInfo = apitypes.ZoneInfo

// statusOf builds the status from the snapshot and what the server says;
// without services, the list of services is left out (it is most of the
// document, and of its cost, with thousands of services).
func (a *apiServer) statusOf(services bool) apitypes.Status {
	var srv ServerStatus
	if a.opts.Status != nil {
		srv = a.opts.Status()
	}
	out := apitypes.Status{Etcd: srv.Etcd, GeoIP: srv.GeoIP, TLS: srv.TLS, Certificates: srv.Certificates, DNSSEC: srv.DNSSEC}
	var snap *regions.Snapshot
	if a.opts.Snapshot != nil {
		snap = a.opts.Snapshot()
	}
	if snap == nil {
		return out
	}
	st := snap.State()
	out.Revision = snap.Revision()
	out.Snapshot = &apitypes.SnapshotStatus{Revision: snap.Revision(), Source: srv.Source, Built: srv.Built, AgeSeconds: srv.Staleness.Seconds(),
		Confirmed: srv.Confirmed, EmptyRefused: srv.EmptyRefused, Reports: srv.Reports,
		Regions: len(st.Regions), Services: len(st.Services), Problems: snap.Problems(), Build: snap.Stats()}
	gt := snap.GeoTables()
	out.Snapshot.GeoTables = apitypes.GeoTablesStatus{Location: gt.Location, Partitions: len(gt.Partitions), Merged: gt.Merged, Pending: gt.Pending, OverBudget: gt.OverBudget,
		Evicted: gt.Evicted, MergeBytes: gt.MergeBytes, MergeBudget: gt.MergeBudget, MergedServices: gt.MergedServices, UnmergedServices: gt.UnmergedServices}
	for _, v := range snap.Services() {
		out.Snapshot.ServiceBytes += v.Bytes()
	}
	if st.Latency != nil {
		out.Snapshot.Latency = st.Latency.ID + " (" + strconv.Itoa(st.Latency.Entries) + " entries)"
	}
	now := time.Now()
	byName := map[string]regions.RegionStatus{}
	for _, rs := range snap.Regions() {
		byName[rs.Name] = rs
		out.Regions = append(out.Regions, apitypes.RegionStatus{Name: rs.Name, Status: rs.Status, Reason: regionReason(rs), Drained: rs.Drained, Healthy: rs.Healthy,
			VIPs: rs.VIPs, Answers: srv.RegionAnswers[rs.Name], Location: rs.Region.Location, Load: rs.LoadAt(now, 0)})
	}
	for _, v := range snap.Services() {
		if !services {
			break
		}
		svc := v.Service()
		ss := apitypes.ServiceStatus{Name: v.Name(), Policy: svc.Policy, TTL: svc.TTL, ExpectedShare: familyShares(snap, v)}
		factors := snap.Factors(v, now)
		for _, sr := range svc.Regions {
			rs := byName[sr.Region]
			ss.Regions = append(ss.Regions, apitypes.ServiceRegionStatus{Region: sr.Region, Weight: sr.Weight, Status: rs.Status, Drained: rs.Drained,
				Factors: factors[sr.Region], Shift: snap.ShiftOf(v, sr.Region)})
		}
		out.Services = append(out.Services, ss)
	}
	for _, id := range slices.Sorted(maps.Keys(st.Shifts)) {
		if sh := st.Shifts[id]; sh != nil {
			out.Shifts = append(out.Shifts, shiftStatus(sh, snap, now))
		}
	}
	return out
}

// regionReason says in one line why a region has its status, or what
// keeps it out of answers: drained, its VIPs that are down with the
// probers' most frequent reason, no counted vote and why votes were not
// counted. "" when every VIP is up and the region is not drained.
func regionReason(rs regions.RegionStatus) string {
	var parts []string
	if rs.Drained {
		parts = append(parts, "drained")
	}
	var unknown []string
	ignored := map[string]int{}
	for _, v := range rs.VIPs {
		for _, vote := range v.Votes {
			if !vote.Counted && vote.Ignored != "" {
				ignored[vote.Ignored]++
			}
		}
		switch v.Status {
		case regions.HealthDown:
			why := map[string]int{}
			for _, vote := range v.Votes {
				if vote.Counted && !vote.Up && vote.Reason != "" {
					why[vote.Reason]++
				}
			}
			p := fmt.Sprintf("%s down (%d of %d probers)", v.Addr, v.Down, v.Up+v.Down)
			if r := mostFrequent(why); r != "" {
				p += ": " + r
			}
			parts = append(parts, p)
		case regions.HealthUnknown:
			unknown = append(unknown, v.Addr.String())
		}
	}
	if len(unknown) > 0 {
		p := "no counted vote on " + strings.Join(unknown, ", ") + " (counted as up)"
		if len(unknown) == len(rs.VIPs) {
			p = "no counted vote (counted as up)"
		}
		if r := mostFrequent(ignored); r != "" {
			p += "; reports not counted: " + r
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// mostFrequent is the key with the highest count, the first in order
// among equals; "" for none.
func mostFrequent(counts map[string]int) string {
	best := ""
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if best == "" || counts[k] > counts[best] {
			best = k
		}
	}
	return best
}

// status answers GET /v1/status[?services=false].
func (a *apiServer) status(w http.ResponseWriter, r *http.Request) {
	services := true
	if v := r.URL.Query().Get("services"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeProblem(w, badField("services", "%q: want true or false", v))
			return
		}
		services = b
	}
	writeJSON(w, http.StatusOK, a.statusOf(services))
}

func (a *apiServer) details(w http.ResponseWriter, _ *http.Request) {
	out := apitypes.Details{Ready: true, Status: a.statusOf(true)}
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			out.Ready, out.Reason = false, err.Error()
		}
	}
	if a.opts.Details != nil {
		d := a.opts.Details()
		out.Zones, out.Transport, out.HTTP = d.Zones, d.Transport, d.HTTP
	}
	writeJSON(w, http.StatusOK, out)
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
	writeJSON(w, http.StatusOK, apitypes.AuditPage{Records: recs, Next: next})
}
