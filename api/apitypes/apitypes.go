package apitypes

import (
	"encoding/json"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/regions"
)

// Problem is an RFC 9457 problem details object: the body of every
// answer with a status of 400 or more.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists the invalid fields, each by its name in the request
	// ("regions[0].weight", "weights.eu-west", a query parameter, a
	// header).
	Errors []FieldError `json:"errors,omitempty"`
	// CurrentRevision is the object's mod revision when a precondition
	// failed (0: it does not exist).
	CurrentRevision *int64 `json:"current_revision,omitempty"`
	// RetryAfter (seconds) repeats the Retry-After header of a 503.
	RetryAfter int `json:"retry_after,omitempty"`
	// NoData lists, on a 409 "would answer NODATA", the services the
	// refused write would leave without an answer.
	NoData []NoData `json:"nodata,omitempty"`
	// InUseBy lists, on a 409 "in use", the services that use the region
	// a delete was refused for.
	InUseBy []string `json:"in_use_by,omitempty"`
}

// FieldError is one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// NoData is a service that a write leaves without an answer: every
// query of Types gets NODATA, whatever the health of its regions.
type NoData struct {
	Service string `json:"service"`
	// Types are the query types answered NODATA: "A", "AAAA".
	Types []string `json:"types"`
	// Reason says why no region can answer them.
	Reason string `json:"reason"`
}

// Health is the body of /health/live and /health/ready.
type Health struct {
	Status string `json:"status"` // live, ready, not ready
	Reason string `json:"reason,omitempty"`
}

// RegionList is GET /v1/regions.
type RegionList struct {
	// Revision is the etcd revision the list was read at (also the
	// ETag).
	Revision int64             `json:"revision"`
	Regions  []*regions.Region `json:"regions"`
}

// ServiceList is GET /v1/services.
type ServiceList struct {
	// Revision is the etcd revision the list was read at (also the
	// ETag).
	Revision int64              `json:"revision"`
	Services []*regions.Service `json:"services"`
}

// Change is what one write of a region, service or latency table changed
// (or, in a dry run, would change): the object before and after as JSON
// (null when absent), and the revision. It is also the body of an audit
// record.
type Change struct {
	Kind   string `json:"kind"` // region, service, latency, state, shift
	Name   string `json:"name"`
	Action string `json:"action"` // put, delete, drain, undrain, set-weights, replace-weights, import, accept-empty; for shifts create, extend, cancel, expire, revert
	// Before and After are the object as stored; null when it does not
	// exist (before a create, after a delete).
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	// Changed is false when the write would leave the object as it is: a
	// write that changes nothing is not made and not audited.
	Changed bool `json:"changed"`
	DryRun  bool `json:"dry_run"`
	// Revision is the write's revision, or when nothing was written (a
	// dry run, no change) the object's current mod revision, 0 if absent.
	Revision int64 `json:"revision"`
	// NoData lists the services that answer NODATA after this write
	// and did not before: a write made with force=true (the API refuses
	// such a write otherwise).
	NoData []NoData `json:"nodata,omitempty"`
}

// Absent says whether an object of a Change (Before or After) is absent:
// null in the JSON, or not there at all.
func Absent(obj json.RawMessage) bool {
	return len(obj) == 0 || string(obj) == "null"
}

// ChangeResponse is what every write answers: what changed (or, with
// dry_run, would change).
type ChangeResponse struct {
	Change
	// ExpectedShare (weights) is the share of answers each region can
	// expect after the change, per address family ("ipv4", "ipv6"), with
	// the health the server sees now.
	ExpectedShare map[string]regions.Shares `json:"expected_share,omitempty"`
	// Entries (latency) is the number of entries in the table after the
	// import, EntriesBefore in the table it replaces (0: none).
	Entries       int `json:"entries,omitempty"`
	EntriesBefore int `json:"entries_before,omitempty"`
}

// ServiceBatch is the body of POST /v1/services.
type ServiceBatch struct {
	Services []*regions.Service `json:"services"`
}

// BatchResponse answers POST /v1/services: each service's change, in the
// order of the request.
type BatchResponse struct {
	Changes []Change `json:"changes"`
	// Changed says whether any service changed (or would, in a dry run);
	// Counts how many were created, replaced and left as they were.
	Changed bool        `json:"changed"`
	DryRun  bool        `json:"dry_run"`
	Counts  BatchCounts `json:"counts"`
}

// BatchCounts counts the services of a batch by what happened to them.
type BatchCounts struct {
	Created   int `json:"created"`
	Replaced  int `json:"replaced"`
	Unchanged int `json:"unchanged"`
}

// AuditRecord is one accepted write as the audit log keeps it.
type AuditRecord struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	Change
}

// AuditPage is a page of GET /v1/audit.
type AuditPage struct {
	Records []AuditRecord `json:"records"`
	// Next is the cursor of the next page (?after=), absent on the last.
	Next string `json:"next,omitempty"`
}

// Weights is GET /v1/services/{name}/weights.
type Weights struct {
	Service string `json:"service"`
	// Revision is the service's mod revision (also the ETag).
	Revision      int64                     `json:"revision"`
	Weights       map[string]uint32         `json:"weights"`
	ExpectedShare map[string]regions.Shares `json:"expected_share"`
}

// WeightsRequest is the body of PUT and PATCH
// /v1/services/{name}/weights.
type WeightsRequest struct {
	Weights map[string]uint32 `json:"weights"`
}

// Status is GET /v1/status.
type Status struct {
	// Revision is the etcd revision of the served snapshot (0: none yet).
	Revision int64           `json:"revision"`
	Snapshot *SnapshotStatus `json:"snapshot,omitempty"`
	Regions  []RegionStatus  `json:"regions"`
	Services []ServiceStatus `json:"services"`
	Etcd     *EtcdStatus     `json:"etcd,omitempty"`
	GeoIP    *geo.Info       `json:"geoip,omitempty"`
	// DNSSEC describes each signed zone; empty without one.
	DNSSEC []DNSSECZoneStatus `json:"dnssec,omitempty"`
	// TLS is the API's TLS (api.tls), when it has one.
	TLS *TLSStatus `json:"tls,omitempty"`
	// Certificates lists every certificate the server uses (the API's,
	// its client CA, etcd's), with its end.
	Certificates []CertificateInfo `json:"certificates,omitempty"`
	// Shifts are the shifts of the served snapshot, in force or ended
	// within the last day.
	Shifts []ShiftStatus `json:"shifts"`
}

// TLSStatus is the API's TLS: the files it serves with and their last
// reload.
type TLSStatus struct {
	// ClientAuth: clients must show a certificate the client CA signed.
	ClientAuth bool `json:"client_auth"`
	// Loaded is when the files served were read.
	Loaded time.Time `json:"loaded"`
	// Reloads counts the files read again since the start (on SIGHUP,
	// or a change seen), Failures those that did not load.
	Reloads  uint64 `json:"reloads"`
	Failures uint64 `json:"failures"`
	// LastError says why the files on disk do not load while the ones
	// loaded before keep serving; empty once a reload succeeds.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// CertificateInfo is one certificate the server uses.
type CertificateInfo struct {
	// Name says what it is for, as meridian_tls_certificate_expiry_timestamp_seconds
	// labels it: api, api_client_ca, etcd_ca, etcd_client.
	Name     string    `json:"name"`
	File     string    `json:"file"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
}

// DNSSECZoneStatus is how a signed zone's signing goes on this server
// (docs/dnssec.md).
type DNSSECZoneStatus struct {
	Zone string `json:"zone"`
	// Signer is "local" (this server holds the keys and signs) or
	// "etcd" (keyless: the zone's signer's signatures, read from etcd).
	Signer string      `json:"signer"`
	Keys   []DNSSECKey `json:"keys"`
	// Rollover says where a key rollover is and what it waits for.
	Rollover string `json:"rollover,omitempty"`
	// Parent is the zone's DS at its parent, as the signer last saw it.
	Parent *DNSSECParent `json:"parent,omitempty"`
	// SignerStatus is what a keyless server knows of the zone's signer.
	SignerStatus *DNSSECSigner `json:"signer_status,omitempty"`
	// Expires is when the first signature served expires.
	Expires          time.Time `json:"expires,omitzero"`
	ExpiresInSeconds float64   `json:"expires_in_seconds,omitempty"`
	// Substituted counts the address sets answered with a signed
	// superset because their own signatures are not there.
	Substituted int `json:"substituted"`
	// PendingSince: a zone set or snapshot waits to be signed while the
	// previous one serves, since then, for Why.
	PendingSince time.Time `json:"pending_since,omitzero"`
	PendingWhy   string    `json:"pending_why,omitempty"`
	// Warnings are what an operator should act on.
	Warnings []string `json:"warnings,omitempty"`
}

// DNSSECKey is one key of a signed zone.
type DNSSECKey struct {
	Tag       uint16 `json:"tag"`
	Role      string `json:"role"` // CSK, KSK or ZSK
	Algorithm uint8  `json:"algorithm"`
	Published bool   `json:"published"`
	Signing   bool   `json:"signing"`
	CDS       bool   `json:"cds"`          // its CDS and CDNSKEY are at the apex
	DS        string `json:"ds,omitempty"` // the DS (SHA-256) of a SEP key
}

// DNSSECParent is the DS RRset at the parent.
type DNSSECParent struct {
	Checked time.Time `json:"checked"`
	DS      []string  `json:"ds,omitempty"`
	// Unknown are the DS records that match no key of the zone.
	Unknown []string `json:"unknown,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// DNSSECSigner is a zone's signer as a keyless name server sees it.
type DNSSECSigner struct {
	Alive bool   `json:"alive"`
	ID    string `json:"id,omitempty"`
	// SignedRevision is the etcd revision of the regions state it signed
	// last, at SignedAt; Entries the RRsets with signatures it published.
	SignedRevision int64     `json:"signed_revision,omitempty"`
	SignedAt       time.Time `json:"signed_at,omitzero"`
	Entries        int       `json:"entries"`
	Problem        string    `json:"problem,omitempty"`
}

// SnapshotStatus is the served snapshot: where it came from and how old
// its data is.
type SnapshotStatus struct {
	Revision int64  `json:"revision"`
	Source   string `json:"source"` // etcd or file
	// Built is when the snapshot was built; AgeSeconds is the age of its
	// data: how long ago etcd last confirmed it current (Confirmed).
	Built      time.Time `json:"built,omitzero"`
	AgeSeconds float64   `json:"age_seconds"`
	Confirmed  time.Time `json:"confirmed,omitzero"`
	// EmptyRefused is set while an empty state from etcd is refused and
	// the previous state kept serving.
	EmptyRefused *EmptyRefused `json:"empty_refused,omitempty"`
	// Reports lists every health report served, with its age.
	Reports  []ReportAge `json:"reports"`
	Regions  int         `json:"regions"`
	Services int         `json:"services"`
	// Latency names the latency table served, with its entries.
	Latency  string   `json:"latency_table,omitempty"`
	Problems []string `json:"problems"`
	// Build says what building the snapshot compiled, refreshed and
	// took over, and how long it took.
	Build regions.BuildStats `json:"build"`
	// GeoTables sums up the geo tables: the location table, the
	// partitions merged and pending, their memory.
	GeoTables GeoTablesStatus `json:"geo_tables"`
	// ServiceBytes is the memory of the compiled services (without what
	// they share).
	ServiceBytes int `json:"service_bytes"`
}

// GeoTablesStatus sums up a snapshot's geo tables.
type GeoTablesStatus struct {
	Location    *regions.LocationTableInfo `json:"location,omitempty"`
	Partitions  int                        `json:"partitions"`
	Merged      int                        `json:"merged"`
	Pending     int                        `json:"pending"`
	OverBudget  int                        `json:"over_budget"`
	Evicted     int                        `json:"evicted"`
	MergeBytes  int64                      `json:"merge_bytes"`
	MergeBudget int64                      `json:"merge_budget"`
	// MergedServices counts the geo services whose partition has a
	// merge, UnmergedServices those whose runs come from the location
	// table's sets (see regions.GeoTablesInfo).
	MergedServices   int `json:"merged_services"`
	UnmergedServices int `json:"unmerged_services"`
}

// EmptyRefused describes an empty state from etcd that is not served.
type EmptyRefused struct {
	Since time.Time `json:"since"`
	// Revision is etcd's revision of the empty state.
	Revision int64  `json:"revision"`
	Message  string `json:"message"`
}

// ReportAge is a health report's observation time and age.
type ReportAge struct {
	Region     string    `json:"region"`
	Prober     string    `json:"prober"`
	Observed   time.Time `json:"observed"`
	AgeSeconds float64   `json:"age_seconds"`
}

// RegionStatus is one region's health as the server serves it.
type RegionStatus struct {
	Name   string               `json:"name"`
	Status regions.HealthStatus `json:"status"`
	// Reason says in one line why the region has its status, or what
	// keeps it out of answers (drained, VIPs down and the probers'
	// reasons, no counted vote); empty when all is well.
	Reason string `json:"reason,omitempty"`
	// Drained: taken out of every answer by an operator.
	Drained bool `json:"drained"`
	// Healthy counts the VIPs answers carry (up or unknown).
	Healthy int                 `json:"healthy"`
	VIPs    []regions.VIPStatus `json:"vips"`
	// Answers counts the steered answers that went to this region since
	// the server started.
	Answers  uint64           `json:"answers"`
	Location regions.Location `json:"location"`
	// Load is the region's load signal now (utilisation, its age and
	// source) with readings up to three check intervals old; absent when
	// no counted prober reads its load (docs/controller.md).
	Load *regions.RegionLoad `json:"load,omitempty"`
}

// ServiceStatus is one service's weights and expected shares.
type ServiceStatus struct {
	Name    string                `json:"name"`
	Policy  regions.Policy        `json:"policy"`
	TTL     uint32                `json:"ttl"`
	Regions []ServiceRegionStatus `json:"regions"`
	// ExpectedShare: the share of answers each region can expect now, per
	// address family ("ipv4", "ipv6").
	ExpectedShare map[string]regions.Shares `json:"expected_share"`
}

// ServiceRegionStatus is one region of a service.
type ServiceRegionStatus struct {
	Region  string               `json:"region"`
	Weight  uint32               `json:"weight"`
	Status  regions.HealthStatus `json:"status"`
	Drained bool                 `json:"drained"`
	// Factors is the region's effective weight factor by factor: shift,
	// health, load (with the utilisation it follows), ramp
	// (docs/controller.md).
	Factors *regions.ExplainFactors `json:"factors,omitempty"`
	// Shift is the shift that gives the region another weight than
	// Weight, until its expiry.
	Shift *regions.ShiftRef `json:"shift,omitempty"`
}

// EtcdStatus is the server's connection to etcd.
type EtcdStatus struct {
	Embedded bool `json:"embedded"`
	// Up is true while the watcher is in sync with etcd; Reason says why
	// not.
	Up     bool   `json:"up"`
	Reason string `json:"reason,omitempty"`
	// Member is the embedded member, when there is one.
	Member *EtcdMember `json:"member,omitempty"`
	Watch  WatchStatus `json:"watch"`
}

// EtcdMember is the embedded etcd member.
type EtcdMember struct {
	Running bool `json:"running"`
	// PID is the member's process while it runs (it runs in a child
	// process of the server).
	PID int `json:"pid,omitempty"`
	// Since is when it started, or when it last failed while it does not
	// run.
	Since time.Time `json:"since,omitzero"`
	// Failures counts failed starts and failures while running.
	Failures      int       `json:"failures"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// NextAttempt is when the next start is tried, while it does not run.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// WatchStatus is how the server's watch of etcd goes.
type WatchStatus struct {
	// Connected is true while the watcher follows etcd: from the creation
	// of its watch after a listing until the watch is lost.
	Connected bool `json:"connected"`
	// Revision is the etcd revision of the last State delivered.
	Revision int64 `json:"revision"`
	// LastUpdate is when the last State was delivered.
	LastUpdate time.Time `json:"last_update,omitzero"`
	// LastContact is when etcd last answered (a listing or any watch
	// response, progress notifications included): the state is known
	// current up to then, so now minus LastContact is its staleness.
	LastContact time.Time `json:"last_contact,omitzero"`
	// Relists counts the listings after the first one.
	Relists int `json:"relists"`
	// Compactions counts watches ended by a compaction, the last at
	// LastCompactRevision.
	Compactions         int   `json:"compactions"`
	LastCompactRevision int64 `json:"last_compact_revision,omitempty"`
	// LastError is the last reason the watch was lost or a listing failed.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// ClusterID is the etcd cluster of the last listing, in hex.
	ClusterID string `json:"cluster_id,omitempty"`
	// WentBack counts the listings that found etcd behind the revision
	// the watcher had seen, or a cluster of another ID: etcd restored
	// from a backup or replaced. The state listed is served then.
	WentBack int `json:"went_back"`
}

// Details is GET /health/details.
type Details struct {
	Ready  bool       `json:"ready"`
	Reason string     `json:"reason,omitempty"`
	Zones  []ZoneInfo `json:"zones"`
	// Transport holds the DNS listeners' counters.
	Transport *TransportStats `json:"transport,omitempty"`
	// HTTP counts the HTTP server's connections.
	HTTP   *HTTPStats `json:"http,omitempty"`
	Status Status     `json:"status"`
}

// HTTPStats counts the HTTP server's connections (docs/architecture.md,
// Connections and descriptors).
type HTTPStats struct {
	Open int `json:"open"`
	// Idle counts the open connections waiting for a request.
	Idle     int    `json:"idle"`
	Max      int    `json:"max"`
	Accepted uint64 `json:"accepted"`
	// Evicted counts connections closed to make room for a new one.
	Evicted uint64 `json:"evicted"`
	// Waits counts the times the server stopped accepting because every
	// connection was serving a request.
	Waits uint64 `json:"waits"`
}

// ZoneInfo is one zone being served.
type ZoneInfo struct {
	Origin  string `json:"origin"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
}

// TransportStats counts what the DNS listeners did. It has the fields of
// dnsserver.TransportStats, which converts to it.
type TransportStats struct {
	UDPPacketsIn   uint64 `json:"udp_packets_in"`   // datagrams received, including truncated ones
	UDPPacketsOut  uint64 `json:"udp_packets_out"`  // replies sent
	UDPDropped     uint64 `json:"udp_dropped"`      // queries the handler chose not to answer
	UDPTruncated   uint64 `json:"udp_truncated"`    // datagrams larger than the receive buffer, dropped unanswered
	UDPSendErrors  uint64 `json:"udp_send_errors"`  // replies the kernel refused
	UDPRecvErrors  uint64 `json:"udp_recv_errors"`  // transient receive errors
	UDPBatches     uint64 `json:"udp_batches"`      // receive calls that returned datagrams
	TCPAccepted    uint64 `json:"tcp_accepted"`     // connections accepted
	TCPRejected    uint64 `json:"tcp_rejected"`     // connections closed at once because too many were open
	TCPActive      uint64 `json:"tcp_active"`       // connections open now
	TCPQueries     uint64 `json:"tcp_queries"`      // messages received over TCP
	TCPIdleClosed  uint64 `json:"tcp_idle_closed"`  // connections closed idle
	TCPReadTimeout uint64 `json:"tcp_read_timeout"` // connections closed with a partly received message
	TCPErrors      uint64 `json:"tcp_errors"`       // connections closed on a write error or an oversized reply
	HandlerPanics  uint64 `json:"handler_panics"`   // handler panics recovered by the transport
}

// Explain is GET /v1/explain.
type Explain struct {
	Name string `json:"name"`
	// Service is the service that answers Name: Name itself, or the end
	// of the CNAME chain that starts at it.
	Service string `json:"service"`
	// CNAMEs are the CNAME records a resolver passes from Name to Service.
	CNAMEs []string `json:"cnames,omitempty"`
	QType  string   `json:"type"`
	// Client is who the decision is for, as DNS derives it from Resolver
	// and ECS.
	Client      string               `json:"client"`
	Resolver    string               `json:"resolver"`
	ECS         *ExplainECS          `json:"ecs,omitempty"`
	Revision    int64                `json:"revision"`
	Decision    regions.Decision     `json:"decision"`
	Explanation *regions.Explanation `json:"explanation"`
}

// ExplainECS is the ECS option of the explained query and what DNS makes
// of it.
type ExplainECS struct {
	Subnet string         `json:"subnet"`
	Use    regions.ECSUse `json:"use"`
	// Scope is the SCOPE PREFIX-LENGTH the DNS reply carries.
	Scope int `json:"scope"`
}

// Latency is GET /v1/latency: the latency table stored in etcd.
type Latency struct {
	ID string `json:"id"`
	// Revision is the mod revision of the table's manifest.
	Revision int64 `json:"revision"`
	// Created is when it was imported; AgeSeconds how long ago.
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
	Entries    int       `json:"entries"`
	// Prefixes counts the distinct client networks, IPv4 and IPv6.
	Prefixes   int `json:"prefixes"`
	PrefixesV4 int `json:"prefixes_v4"`
	PrefixesV6 int `json:"prefixes_v6"`
	// Bytes and SHA256 are of the table's CSV as stored.
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Regions lists every region the table names, by name.
	Regions []LatencyRegion `json:"regions"`
	// Served says whether this server's snapshot holds this table;
	// ServedID names the one it holds otherwise ("" for none).
	Served   bool   `json:"served"`
	ServedID string `json:"served_id,omitempty"`
}

// LatencyRegion is one region named by the latency table.
type LatencyRegion struct {
	Name    string `json:"name"`
	Entries int    `json:"entries"`
	// Known says whether the region exists; the entries of one that does
	// not are never used.
	Known bool `json:"known"`
}

// ShiftRequest is the body of POST /v1/shifts: a temporary override of
// where traffic goes, with an expiry (docs/shifts.md).
type ShiftRequest struct {
	// Service is the service shifted; "" with Drain shifts every
	// service that lists the region.
	Service string `json:"service,omitempty"`
	// Drain takes a region out of the service's answers (or every
	// service's); Weights replace the weights of the regions named
	// (one service). One of the two.
	Drain   string            `json:"drain,omitempty"`
	Weights map[string]uint32 `json:"weights,omitempty"`
	// ExpiresIn ("30m", "1h") or Expires (RFC 3339) says when the shift
	// ends: one of the two, in the future and at most 72 h ahead.
	ExpiresIn string `json:"expires_in,omitempty"`
	Expires   string `json:"expires,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// RevertIf ends the shift early when a region it moves traffic to
	// gets into trouble.
	RevertIf *regions.ShiftGuard `json:"revert_if,omitempty"`
}

// ShiftPatch is the body of PATCH /v1/shifts/{id}: a new expiry (one of
// ExpiresIn and Expires, as in ShiftRequest), and a new reason if given.
type ShiftPatch struct {
	ExpiresIn string  `json:"expires_in,omitempty"`
	Expires   string  `json:"expires,omitempty"`
	Reason    *string `json:"reason,omitempty"`
}

// ShiftStatus is a shift as stored, with its state as the server
// applies it now.
type ShiftStatus struct {
	regions.Shift
	// State: active, expired, cancelled or reverted. A shift stops
	// applying at its expiry, or when its guard trips, before the end
	// is recorded (Ended).
	State regions.ShiftState `json:"state"`
	// ExpiresInSeconds is how long an active shift still applies; 0
	// once it ended.
	ExpiresInSeconds float64 `json:"expires_in_seconds"`
	// Why says why its guard reverted it.
	Why string `json:"why,omitempty"`
	// Does says what the shift does, in a few words.
	Does string `json:"does"`
}

// ShiftList is GET /v1/shifts: every stored shift, in force or ended
// within the last day.
type ShiftList struct {
	// Revision is the etcd revision the list was read at (also the
	// ETag).
	Revision int64         `json:"revision"`
	Shifts   []ShiftStatus `json:"shifts"`
}

// ShiftChange is what every shift write answers.
type ShiftChange struct {
	Change
	// Shift is the shift after the write (or as it would be, with
	// dry_run).
	Shift *ShiftStatus `json:"shift,omitempty"`
	// Services are the services whose answers the write changes, by
	// name, with the share of answers their regions can expect before
	// and after it, per address family ("ipv4", "ipv6"), with the
	// health the server sees now; at most MaxShiftServices of them,
	// ServicesTotal in all.
	Services      []ShiftedService `json:"services"`
	ServicesTotal int              `json:"services_total"`
}

// MaxShiftServices bounds the services a ShiftChange lists.
const MaxShiftServices = 100

// ShiftedService is one service a shift changes, with its expected
// shares before and after.
type ShiftedService struct {
	Service string                    `json:"service"`
	Before  map[string]regions.Shares `json:"before"`
	After   map[string]regions.Shares `json:"after"`
}
