package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// WatchStatus is what a Watcher reports for /v1/status and metrics.
type WatchStatus = apitypes.WatchStatus

// Watcher keeps a State in sync with etcd: list the prefix at one
// revision, then watch from the next, relisting after a compaction or
// when the watch is lost. It never blocks its caller beyond onState and
// keeps going while etcd is away.
type Watcher struct {
	c    *clientv3.Client
	keys Keys
	log  *slog.Logger

	// Timing; change before Run only. Zero values take the defaults.
	ListTimeout   time.Duration // one listing attempt (default 5s)
	ProbeInterval time.Duration // idle time before asking etcd for a progress notification (default 2s)
	ProbeTimeout  time.Duration // wait for that notification before the watch counts as lost (default 3s)
	MinBackoff    time.Duration // first wait after a failure (default 100ms), doubling…
	MaxBackoff    time.Duration // …up to this (default 5s), with jitter
	// Subtree, when set before Run, limits the watcher to the keys under
	// it (a prefix inside the layout, such as Keys.Regions() for a prober,
	// which needs nothing else); "" follows everything.
	Subtree string

	id     string // names the watcher's own gRPC stream
	mu     sync.Mutex
	status WatchStatus

	// saw is the highest revision the caller saw etcd at through other
	// requests (Saw); it raises seen's mark.
	saw atomic.Int64
	// seen is the cluster followed and the highest revision it answered
	// with; only the goroutine of Run uses it.
	seen clusterMark

	// follow, if set (Store.Follow), is given every State delivered.
	follow func(*regions.State)

	// testHookBeforeWatch runs after a listing, before the watch starts
	// at rev+1: tests compact etcd there to force a compacted watch.
	testHookBeforeWatch func(rev int64)
}

// NewWatcher returns a watcher of prefix ("" for DefaultPrefix) over c.
func NewWatcher(c *clientv3.Client, prefix string, logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{c: c, keys: NewKeys(prefix), log: logger, id: strconv.FormatUint(watcherSeq.Add(1), 10)}
}

var watcherSeq atomic.Uint64

// Status returns the watcher's current status.
func (w *Watcher) Status() WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

func (w *Watcher) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&w.ListTimeout, 5*time.Second)
	def(&w.ProbeInterval, 2*time.Second)
	def(&w.ProbeTimeout, 3*time.Second)
	def(&w.MinBackoff, 100*time.Millisecond)
	def(&w.MaxBackoff, 5*time.Second)
	if w.MaxBackoff < w.MinBackoff {
		w.MaxBackoff = w.MinBackoff
	}
}

// compactedError ends a watch whose start revision was compacted away.
type compactedError struct{ rev int64 }

func (e *compactedError) Error() string {
	return fmt.Sprintf("watch start revision compacted (compact revision %d)", e.rev)
}

// Saw tells the watcher that etcd answered another request of the
// caller's at rev: a watcher of a subtree sees only the revisions of its
// own keys, and a restore that takes etcd back behind a write the caller
// made elsewhere (a prober's reports) must still be noticed.
func (w *Watcher) Saw(rev int64) {
	for {
		cur := w.saw.Load()
		if rev <= cur || w.saw.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// clusterMark is an etcd cluster's ID and the highest revision seen from
// it. A cluster's revision never goes back; one that answers below the
// mark, or under another ID, is not the history the watcher followed: etcd
// restored from a backup (back at the backup's revision), or another
// cluster on the same endpoints. The etcd client would resume the watch
// after the mark, at a revision such a cluster has not reached or from a
// history it does not share, so the watcher lists again instead.
type clusterMark struct {
	id  uint64 // 0: unknown
	rev int64
}

// behind says why an answer with header h does not follow the cluster
// marked, or "" when it does (or tells nothing). sure is set when that is
// certain whoever answered: another cluster ID. A revision below the mark
// is certain only from a linearizable read; a member may answer a watch
// from a little behind the others.
func (m clusterMark) behind(h *etcdserverpb.ResponseHeader) (why string, sure bool) {
	switch {
	case h == nil:
		return "", false
	case m.id != 0 && h.ClusterId != 0 && h.ClusterId != m.id:
		return fmt.Sprintf("etcd cluster ID changed from %x to %x", m.id, h.ClusterId), true
	case h.Revision != 0 && h.Revision < m.rev:
		return fmt.Sprintf("etcd answered at revision %d, behind revision %d already seen", h.Revision, m.rev), false
	}
	return "", false
}

// see raises the mark to rev.
func (m *clusterMark) see(rev int64) { m.rev = max(m.rev, rev) }

// wentBackError ends a watch on an answer that does not follow the
// cluster marked (see clusterMark).
type wentBackError struct{ why string }

func (e *wentBackError) Error() string { return e.why }

// Run lists and watches until ctx ends, calling onState with every new
// State: a complete one after each listing, then one per watch response
// that changed something. A State passed to onState is never modified
// afterwards. Run returns nil when ctx ends. Only one Run (or RunLive) at
// a time.
func (w *Watcher) Run(ctx context.Context, onState func(*regions.State)) error {
	return w.run(ctx, sink{listed: onState, changed: onState})
}

// RunLive is Run feeding l: listings go to l.ApplyListing, watch changes
// to l.Apply, and after each answer from etcd (its State, if any,
// delivered) l.Confirm learns that the state is current.
func (w *Watcher) RunLive(ctx context.Context, l *Live) error {
	return w.run(ctx, sink{listed: l.ApplyListing, changed: l.Apply, contact: l.Confirm})
}

// sink is where a watcher delivers: States from listings and from watch
// changes, and the times etcd answered (contact may be nil).
type sink struct {
	listed, changed func(*regions.State)
	contact         func(time.Time)
}

func (w *Watcher) run(ctx context.Context, out sink) error {
	w.defaults()
	backoff := w.MinBackoff
	listed := false
	suspect := "" // why the last watch ended on an answer behind the mark
	for {
		// What the caller saw before the listing: a linearizable read is
		// behind nothing etcd answered before it.
		saw := w.saw.Load()
		st, probs, cluster, err := w.list(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.lost(fmt.Errorf("list: %w", err))
			if !SleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, w.MaxBackoff)
			continue
		}
		at := time.Now()
		w.listed(st.Revision, listed, at)
		listed = true
		w.checkListing(st.Revision, cluster, suspect, saw)
		suspect = ""
		w.deliver(st, out.listed)
		out.confirm(at)
		if w.testHookBeforeWatch != nil {
			w.testHookBeforeWatch(st.Revision)
		}
		established, err := w.watch(ctx, st, probs, out)
		if ctx.Err() != nil {
			return nil
		}
		if ce := (*compactedError)(nil); errors.As(err, &ce) {
			// Not a failure: the state is intact up to the watch's last
			// response; relist at once to get past the compaction.
			w.log.Info("etcd watch compacted; relisting", "compact_revision", ce.rev)
			backoff = w.MinBackoff
			continue
		}
		if wb := (*wentBackError)(nil); errors.As(err, &wb) {
			// The state may be from a history etcd no longer has: relist
			// at once; the listing tells whether etcd really went back.
			suspect = wb.why
			w.notFollowing(wb)
			backoff = w.MinBackoff
			continue
		}
		w.lost(err)
		if established {
			backoff = w.MinBackoff
		}
		if !SleepCtx(ctx, jitter(backoff)) {
			return nil
		}
		backoff = min(2*backoff, w.MaxBackoff)
	}
}

// list reads everything under the prefix at one revision into a new State,
// with the table of problems found and the ID of the cluster that
// answered.
func (w *Watcher) list(ctx context.Context) (*regions.State, map[string]string, uint64, error) {
	lctx, cancel := context.WithTimeout(ctx, w.ListTimeout)
	defer cancel()
	// Everything but the audit log, DNSSEC's keys and signatures and the
	// latency chunks (read through the manifest only), at one revision;
	// "audit/" sorts before "dnssec/", which sorts before
	// "latency/chunks/". A watcher of a subtree reads that one range.
	root, audit, sec, chunks := w.keys.Prefix(), w.keys.Audit(), w.keys.DNSSECAll(), w.keys.LatencyChunksAll()
	ranges := [][2]string{
		{root, audit},
		{clientv3.GetPrefixRangeEnd(audit), sec},
		{clientv3.GetPrefixRangeEnd(sec), chunks},
		{clientv3.GetPrefixRangeEnd(chunks), clientv3.GetPrefixRangeEnd(root)},
	}
	if w.Subtree != "" {
		ranges = [][2]string{{w.Subtree, clientv3.GetPrefixRangeEnd(w.Subtree)}}
	}
	var kvs []*mvccpb.KeyValue
	var rev int64
	var cluster uint64
	for _, rg := range ranges {
		part, hdr, err := listRangeHeader(lctx, w.c, rg[0], rg[1], rev)
		if err != nil {
			return nil, nil, 0, err
		}
		if rev == 0 {
			rev, cluster = hdr.Revision, hdr.ClusterId
		}
		kvs = append(kvs, part...)
	}
	st := regions.NewState()
	st.Revision = rev
	probs := map[string]string{}
	for _, kv := range kvs {
		if err := w.put(lctx, st, probs, kv, rev); err != nil {
			return nil, nil, 0, err
		}
	}
	st.Problems = renderProblems(probs)
	return st, probs, cluster, nil
}

// watch follows etcd after st.Revision, delivering a State per change,
// until the watch ends; established says whether etcd accepted it.
func (w *Watcher) watch(ctx context.Context, st *regions.State, probs map[string]string, out sink) (established bool, err error) {
	// Without a leader the member we talk to may be partitioned from the
	// cluster: WithRequireLeader makes it cancel the watch instead of
	// leaving it silently stale.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// A stream of our own: etcd answers a progress request only when every
	// watch on the stream is in sync, and others' watches on the same
	// client must not make ours look stalled.
	wctx = metadata.AppendToOutgoingContext(wctx, "meridian-watcher", w.id)
	// The watch starts at the listing's revision, not the next one, and
	// drops the events of that revision (already in the listing): etcd
	// answers progress requests only once the store has reached a
	// watch's start revision, and on an idle cluster rev+1 never comes.
	from := st.Revision
	// Watch itself blocks while the client cannot open a stream (etcd
	// down): get the channel asynchronously so the timeout below applies.
	chc := make(chan clientv3.WatchChan, 1)
	go func() {
		root := w.keys.Prefix()
		if w.Subtree != "" {
			root = w.Subtree
		}
		chc <- w.c.Watch(wctx, root, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithCreatedNotify())
	}()
	var wch clientv3.WatchChan // nil until Watch returns
	tick := time.NewTicker(min(w.ProbeInterval, w.ProbeTimeout) / 2)
	defer tick.Stop()
	last := time.Now() // last sign of life
	var probed time.Time
	// A response read while coalescing that is not plain changes: the
	// next turn handles it.
	var held clientv3.WatchResponse
	var heldOK, holding bool
	// A check of the cluster: a linearizable read, whose revision is at
	// least every revision the cluster committed before it, so one below
	// the mark means that etcd went back. One at a time.
	// A check's answer, with what the caller had seen (Saw) when it was
	// asked: a linearizable read is behind nothing etcd answered before.
	type checked struct {
		hdr *etcdserverpb.ResponseHeader
		saw int64
	}
	checkc := make(chan checked, 1)
	checking := false
	check := func() {
		if checking {
			return
		}
		checking = true
		saw := w.saw.Load()
		go func() {
			cctx, ccancel := context.WithTimeout(wctx, w.ProbeTimeout)
			defer ccancel()
			resp, err := w.c.Get(cctx, w.keys.Prefix(), clientv3.WithCountOnly())
			if err != nil { // the progress request tells whether etcd is away
				checkc <- checked{}
				return
			}
			checkc <- checked{resp.Header, saw}
		}()
	}
	for {
		var wr clientv3.WatchResponse
		var ok, got bool
		if holding {
			wr, ok, got, holding = held, heldOK, true, false
		}
		if !got {
			select {
			case <-ctx.Done():
				return established, ctx.Err()
			case wch = <-chc:
			case wr, ok = <-wch:
				got = true
			case c := <-checkc:
				checking = false
				w.seen.see(c.saw)
				if why, _ := w.seen.behind(c.hdr); why != "" {
					return established, &wentBackError{why}
				}
			case now := <-tick.C:
				// The client retries a broken stream silently and forever; a
				// watch that is not created in time, or a progress request
				// that goes unanswered, is how we notice. A restored etcd
				// may answer the resumed watch, but from behind the mark
				// (etcd 3.4 answers progress requests at its revision) or
				// not at all (later versions wait until their revision
				// reaches the watch's): the check of the cluster with every
				// probe is how we notice that.
				switch {
				case !established:
					if now.Sub(last) >= w.ProbeInterval+w.ProbeTimeout {
						return false, fmt.Errorf("watch stalled: not created within %v", w.ProbeInterval+w.ProbeTimeout)
					}
				case probed.IsZero() && now.Sub(last) >= w.ProbeInterval:
					check()
					pctx, pcancel := context.WithTimeout(wctx, w.ProbeTimeout)
					err := w.c.RequestProgress(pctx)
					pcancel()
					if err != nil {
						return established, fmt.Errorf("watch stalled: progress request: %w", err)
					}
					probed = now
				case !probed.IsZero() && now.Sub(probed) >= w.ProbeTimeout:
					return established, fmt.Errorf("watch stalled: no answer to a progress request within %v", w.ProbeTimeout)
				}
			}
		}
		if !got {
			continue
		}
		if !ok {
			return established, errors.New("watch channel closed")
		}
		last, probed = time.Now(), time.Time{}
		if wr.CompactRevision != 0 {
			w.compacted(wr.CompactRevision)
			return established, &compactedError{wr.CompactRevision}
		}
		if err := wr.Err(); err != nil {
			return established, fmt.Errorf("watch: %w", err)
		}
		if why, sure := w.seen.behind(wr.Header); why != "" {
			// Another cluster, or changes from a history the state
			// does not share: relist.
			if sure || len(wr.Events) > 0 {
				return established, &wentBackError{why}
			}
			// A member behind the one that answered before (after a
			// failover) answers below the mark too; the check tells.
			// Meanwhile the answer confirms nothing.
			if wr.Created {
				established = true
				w.connected(st.Revision)
			}
			check()
			continue
		}
		w.seen.see(wr.Header.Revision)
		w.contact(last)
		if wr.Created {
			established = true
			w.connected(st.Revision)
			out.confirm(last)
			continue
		}
		evs := w.events(wr, from)
		if len(evs) == 0 { // progress notification, the listing's revision, the audit log, signatures
			out.confirm(last)
			continue
		}
		// Responses already waiting join this one in one State (a ctl
		// apply of many objects makes one snapshot, not one each); a
		// lone change goes at once. A response that is not plain changes
		// waits for the next turn.
	coalesce:
		for len(evs) < maxCoalesce {
			select {
			case r, o := <-wch:
				if why, _ := w.seen.behind(r.Header); !o || r.CompactRevision != 0 || r.Err() != nil || r.Created || why != "" {
					held, heldOK, holding = r, o, true
					break coalesce
				}
				last = time.Now()
				w.seen.see(r.Header.Revision)
				w.contact(last)
				evs = append(evs, w.events(r, from)...)
			default:
				break coalesce
			}
		}
		w.seen.see(evs[len(evs)-1].Kv.ModRevision)
		next, err := w.apply(ctx, st, probs, evs)
		if err != nil {
			return established, err
		}
		st = next
		w.deliver(st, out.changed)
		out.confirm(last)
	}
}

// maxCoalesce bounds the events that responses already waiting add to
// one State.
const maxCoalesce = 4096

// events are the changes of wr that make a State: after from (the
// listing's revision, whose events the listing holds), without the audit
// log, DNSSEC's signatures and the services' mark, which are no part of
// the state (trimming the log or publishing signatures must not build
// snapshots; the mark changes with the service written with it).
func (w *Watcher) events(wr clientv3.WatchResponse, from int64) []*clientv3.Event {
	evs := wr.Events
	for len(evs) > 0 && evs[0].Kv.ModRevision <= from {
		evs = evs[1:]
	}
	return slices.DeleteFunc(evs, func(ev *clientv3.Event) bool {
		k := w.keys.parse(string(ev.Kv.Key)).kind
		return k == keyAudit || k == keyDNSSEC || k == keyMark
	})
}

// apply returns a copy of st with events applied; st is left alone. The
// copy remembers the services changed (regions.State.Derive): the
// snapshot built from it compiles those only.
func (w *Watcher) apply(ctx context.Context, st *regions.State, probs map[string]string, evs []*clientv3.Event) (*regions.State, error) {
	next := st.Derive()
	// Only the last manifest of a response matters: earlier ones are
	// replaced within it, and their chunks may already be gone.
	lastManifest := -1
	for i, ev := range evs {
		if w.keys.parse(string(ev.Kv.Key)).kind == keyLatencyManifest {
			lastManifest = i
		}
	}
	for i, ev := range evs {
		next.Revision = max(next.Revision, ev.Kv.ModRevision)
		k := w.keys.parse(string(ev.Kv.Key))
		if k.kind == keyLatencyManifest && i != lastManifest {
			continue
		}
		if ev.Type == clientv3.EventTypeDelete {
			remove(next, probs, string(ev.Kv.Key), k)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, w.ListTimeout)
		err := w.put(lctx, next, probs, ev.Kv, ev.Kv.ModRevision)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	next.Problems = renderProblems(probs)
	return next, nil
}

// put decodes one entry into st. Entries that cannot be used are left out
// and noted in probs; the error is only for failing to read etcd (the
// latency chunks, at rev).
func (w *Watcher) put(ctx context.Context, st *regions.State, probs map[string]string, kv *mvccpb.KeyValue, rev int64) error {
	key := string(kv.Key)
	k := w.keys.parse(key)
	var bad error
	switch k.kind {
	case keyRegion:
		r := new(regions.Region)
		if bad = decodeRegion(w.keys, kv, r); bad == nil {
			st.Regions[k.name] = r
		} else {
			delete(st.Regions, k.name)
		}
	case keyService:
		svc := new(regions.Service)
		if bad = decodeService(w.keys, kv, svc); bad == nil {
			st.PutService(k.name, svc)
		} else {
			st.DeleteService(k.name)
		}
	case keyHealth:
		h := new(regions.HealthReport)
		if bad = decodeHealth(kv, k, h); bad == nil {
			if st.Health[k.name] == nil {
				st.Health[k.name] = map[string]*regions.HealthReport{}
			}
			st.Health[k.name][k.prober] = h
		} else if m := st.Health[k.name]; m != nil {
			delete(m, k.prober)
			if len(m) == 0 {
				delete(st.Health, k.name)
			}
		}
	case keyProber:
		p := new(regions.ProberInfo)
		if bad = decodeProber(kv, k, p); bad == nil {
			st.Probers[k.name] = p
		} else {
			delete(st.Probers, k.name)
		}
	case keyShift:
		sh := new(regions.Shift)
		if bad = decodeShift(kv, k, sh); bad == nil {
			st.Shifts[k.name] = sh
		} else {
			delete(st.Shifts, k.name)
		}
	case keyLatencyManifest:
		ld, err := loadLatency(ctx, w.c, w.keys, kv.Value, rev)
		var be errBadEntry
		switch {
		case errors.As(err, &be):
			bad, st.Latency = err, nil
		case err != nil:
			return fmt.Errorf("load latency table: %w", err)
		default:
			st.Latency = ld
		}
	case keyLatencyChunk, keyAudit, keyDNSSEC, keyMark:
		return nil
	default:
		bad = errors.New("not a key Meridian uses")
	}
	if bad == nil {
		delete(probs, key)
		return nil
	}
	msg := key + ": " + bad.Error()
	if probs[key] != msg {
		w.log.Warn("skipping an unusable etcd entry", "key", key, "err", bad)
	}
	probs[key] = msg
	return nil
}

// remove applies a delete event.
func remove(st *regions.State, probs map[string]string, key string, k parsedKey) {
	delete(probs, key)
	switch k.kind {
	case keyRegion:
		delete(st.Regions, k.name)
	case keyService:
		st.DeleteService(k.name)
	case keyHealth:
		if m := st.Health[k.name]; m != nil {
			delete(m, k.prober)
			if len(m) == 0 {
				delete(st.Health, k.name)
			}
		}
	case keyProber:
		delete(st.Probers, k.name)
	case keyShift:
		delete(st.Shifts, k.name)
	case keyLatencyManifest:
		st.Latency = nil
	}
}

func decodeHealth(kv *mvccpb.KeyValue, k parsedKey, h *regions.HealthReport) error {
	if err := json.Unmarshal(kv.Value, h); err != nil {
		return err
	}
	if h.Region != k.name || h.Prober != k.prober {
		return fmt.Errorf("report of %s/%s does not match the key", h.Region, h.Prober)
	}
	// A report outlives its prober unless it is bound to a lease: one
	// without is ignored, whoever wrote it.
	if kv.Lease == 0 {
		return errors.New("the report is not bound to a lease")
	}
	h.Lease = kv.Lease
	return h.Validate()
}

func decodeProber(kv *mvccpb.KeyValue, k parsedKey, p *regions.ProberInfo) error {
	if err := json.Unmarshal(kv.Value, p); err != nil {
		return err
	}
	if p.ID != k.name {
		return fmt.Errorf("id %q does not match the key", p.ID)
	}
	if kv.Lease == 0 {
		return errors.New("the registration is not bound to a lease")
	}
	p.Lease = kv.Lease
	return p.Validate()
}

func renderProblems(probs map[string]string) []string {
	if len(probs) == 0 {
		return nil
	}
	out := make([]string, 0, len(probs))
	for _, p := range probs {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (w *Watcher) deliver(st *regions.State, onState func(*regions.State)) {
	w.mu.Lock()
	w.status.Revision = st.Revision
	w.status.LastUpdate = time.Now()
	w.mu.Unlock()
	if w.follow != nil {
		w.follow(st)
	}
	onState(st)
}

// confirm passes on that etcd answered at t.
func (out sink) confirm(t time.Time) {
	if out.contact != nil {
		out.contact(t)
	}
}

func (w *Watcher) listed(rev int64, relist bool, at time.Time) {
	w.mu.Lock()
	w.status.LastContact = at
	if relist {
		w.status.Relists++
	}
	w.mu.Unlock()
	w.log.Debug("etcd state listed", "revision", rev, "relist", relist)
}

// checkListing compares a listing at rev from cluster with what the
// watcher saw before, warns when etcd went back, and marks the listing as
// the start of what follows. suspect is why the watch before it ended on
// an answer behind the mark ("" if it did not).
func (w *Watcher) checkListing(rev int64, cluster uint64, suspect string, saw int64) {
	w.seen.see(saw)
	prev := w.seen
	w.seen = clusterMark{id: cluster, rev: rev}
	w.mu.Lock()
	w.status.ClusterID = ""
	if cluster != 0 {
		w.status.ClusterID = strconv.FormatUint(cluster, 16)
	}
	why, _ := prev.behind(&etcdserverpb.ResponseHeader{ClusterId: cluster, Revision: rev})
	if why != "" {
		w.status.WentBack++
		// What the caller saw was of the history that is gone.
		w.saw.Store(rev)
	}
	w.mu.Unlock()
	switch {
	case why != "":
		// The listing is a linearizable read: etcd really went back.
		w.log.Warn("etcd went back: restored from a backup, or another cluster on its endpoints; serving the state it holds now, changes made after it are lost",
			"revision", rev, "revision_seen", prev.rev, "cluster_id", fmt.Sprintf("%x", cluster), "cluster_id_seen", fmt.Sprintf("%x", prev.id), "noticed", cmp.Or(suspect, "listing"))
	case suspect != "":
		w.log.Info("an etcd member answered behind the revision seen; relisted, etcd did not go back", "revision", rev, "answer", suspect)
	}
}

// notFollowing records that the watch ended on an answer behind the
// mark, until the listing that follows at once.
func (w *Watcher) notFollowing(err error) {
	w.mu.Lock()
	w.status.Connected = false
	w.status.LastError = err.Error()
	w.status.LastErrorTime = time.Now()
	w.mu.Unlock()
	w.log.Debug("etcd answered behind the revision seen; relisting", "err", err)
}

func (w *Watcher) connected(rev int64) {
	w.mu.Lock()
	was := w.status.Connected
	w.status.Connected = true
	w.mu.Unlock()
	if !was {
		w.log.Info("etcd watch established", "revision", rev)
	}
}

func (w *Watcher) contact(t time.Time) {
	w.mu.Lock()
	w.status.LastContact = t
	w.mu.Unlock()
}

func (w *Watcher) compacted(rev int64) {
	w.mu.Lock()
	w.status.Compactions++
	w.status.LastCompactRevision = rev
	w.mu.Unlock()
}

// lost records why the watcher is out of sync; the transition is logged
// as a warning, repeated failures while out of sync at debug level.
func (w *Watcher) lost(err error) {
	w.mu.Lock()
	was := w.status.Connected
	w.status.Connected = false
	w.status.LastError = err.Error()
	w.status.LastErrorTime = time.Now()
	rev := w.status.Revision
	w.mu.Unlock()
	if was {
		w.log.Warn("etcd watch lost; keeping the last state and retrying", "revision", rev, "err", err)
	} else {
		w.log.Debug("etcd still unavailable", "err", err)
	}
}

// jitter spreads retries of many servers: a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// SleepCtx waits d or until ctx ends; it reports whether ctx is still
// live. The signer (dnssec/sigstore) backs off with it too.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
