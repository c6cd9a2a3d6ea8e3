package sigstore

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
	"github.com/meridian-gslb/meridian/zones"
)

// RunnerConfig is a signer's set-up.
type RunnerConfig struct {
	Client *clientv3.Client
	Prefix string
	// ID names this signer in etcd and in the name servers' status.
	ID string
	// Signer holds the private keys of every zone; Zones are the zone
	// files loaded with its apex records (Signer.Apex).
	Signer *dnssec.Signer
	Zones  *zones.Set
	// Files are each zone's keys as read from its key directory, with
	// their private halves (by canonical zone name).
	Files map[string]*dnssec.KeySet
	// Rollover steps each zone's rollovers; a zone without one keeps its
	// keys.
	Rollover map[string]*dnssec.Rollover
	// Interval: how often signatures due are made again and rollovers
	// step; 0: 1 minute.
	Interval time.Duration
	// SessionTTL is the lease of the signer's election keys, in
	// seconds: a signer gone is replaced after it. 0: 10.
	SessionTTL int
	// GCDelay: how long signatures no longer signed stay (0:
	// DefaultGCDelay).
	GCDelay time.Duration
	Log     *slog.Logger
	Now     func() time.Time
}

// Runner signs a deployment's signed zones for its name servers: per
// zone, it stands in an election under dnssec/<zone>/signer (one signer
// leads; others wait to take over), and while it leads it signs every
// snapshot it is given (with what Foresee signs ahead), keeps the key
// records and steps the rollovers, and publishes the signatures, then
// the key records, then what it signed, each write guarded by its
// leadership.
type Runner struct {
	cfg  RunnerConfig
	l    layout
	kick chan struct{}

	mu    sync.Mutex // guards what follows
	set   *zones.Set
	snap  *regions.Snapshot
	zones map[string]*zoneRun
	st    *dnssec.State // built last
}

// zoneRun is one zone's signing.
type zoneRun struct {
	origin  string
	pub     *publisher
	guard   clientv3.Cmp
	leading bool
	records *dnssec.KeyRecords
	dirty   bool // records to write
	private map[uint16]crypto.Signer
	keys    *dnssec.KeySet // the key set records make now
	status  string
}

// NewRunner returns a Runner; Run starts it.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 10
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Runner{cfg: cfg, l: newLayout(cfg.Prefix), kick: make(chan struct{}, 1), set: cfg.Zones, zones: map[string]*zoneRun{}}
	for zone, ks := range cfg.Files {
		zr := &zoneRun{origin: zone, private: map[uint16]crypto.Signer{}}
		for _, k := range ks.Keys {
			if k.Signer != nil {
				zr.private[k.Tag()] = k.Signer
			}
		}
		zr.pub = newPublisher(cfg.Client, r.l, zone, cfg.Log.With("zone", zone), cfg.GCDelay)
		r.zones[zone] = zr
	}
	return r
}

// SetSnapshot gives the runner a new snapshot to sign.
func (r *Runner) SetSnapshot(s *regions.Snapshot) {
	r.mu.Lock()
	r.snap = s
	r.mu.Unlock()
	r.poke()
}

// SetZones gives the runner zone files loaded again (SIGHUP); their apex
// records are replaced by those of the keys in force.
func (r *Runner) SetZones(set *zones.Set) {
	r.mu.Lock()
	r.set = set
	for _, zr := range r.zones {
		if zr.keys != nil {
			r.applyKeysLocked(zr)
		}
	}
	r.mu.Unlock()
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Status says, per zone, whether this signer leads and how it goes.
func (r *Runner) Status() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for z, zr := range r.zones {
		s := "standing by"
		if zr.leading {
			s = "leading"
		}
		if zr.status != "" {
			s += ": " + zr.status
		}
		out[z] = s
	}
	return out
}

// Run signs until ctx ends; it returns nil then. It keeps going while
// etcd is away.
func (r *Runner) Run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(r.cfg.Client, concurrency.WithTTL(r.cfg.SessionTTL), concurrency.WithContext(ctx))
		if err != nil {
			r.cfg.Log.Warn("signer: no etcd session", "err", err, "retry_in", backoff)
			if !store.SleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		err = r.lead(ctx, sess)
		r.mu.Lock()
		for _, zr := range r.zones {
			zr.leading = false
		}
		r.mu.Unlock()
		// Close revokes the lease: a standby signer takes over at once.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = closeSession(cctx, sess)
		cancel()
		if err == nil {
			backoff = 200 * time.Millisecond
			continue
		}
		// A zone this signer cannot sign: another signer may lead it
		// meanwhile.
		if !store.SleepCtx(ctx, r.cfg.Interval) {
			return nil
		}
	}
	return nil
}

func closeSession(ctx context.Context, s *concurrency.Session) error {
	s.Orphan()
	_, err := s.Client().Revoke(ctx, s.Lease())
	return err
}

// lead campaigns for every zone in sess and signs the zones it leads,
// until the session or ctx ends, or a zone it won cannot be signed.
func (r *Runner) lead(ctx context.Context, sess *concurrency.Session) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the campaigns end with sctx
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	info, _ := json.Marshal(SignerInfo{ID: r.cfg.ID, Started: r.cfg.Now()})
	won := make(chan *zoneRun, len(r.zones))
	for _, zr := range r.zones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := concurrency.NewElection(sess, r.l.election(zr.origin))
			if err := e.Campaign(sctx, string(info)); err != nil {
				return
			}
			r.mu.Lock()
			zr.guard = clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())
			r.mu.Unlock()
			won <- zr
		}()
	}
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			r.cfg.Log.Warn("signer: etcd session lost; standing again")
			return nil
		case zr := <-won:
			r.cfg.Log.Info("signer: leading", "zone", zr.origin)
			if err := r.takeOver(sctx, zr); err != nil {
				r.cfg.Log.Error("signer: cannot sign the zone; standing down", "zone", zr.origin, "err", err)
				r.setStatus(zr, err.Error())
				return err
			}
			r.cycle(sctx, false)
		case <-r.kick:
			r.cycle(sctx, false)
		case <-tick.C:
			r.step(sctx)
			r.cycle(sctx, true)
		}
	}
}

func (r *Runner) setStatus(zr *zoneRun, s string) {
	r.mu.Lock()
	zr.status = s
	r.mu.Unlock()
}

// takeOver reads the zone's key records (or writes them from the key
// files, the first time) and signs with the keys they say are in force.
func (r *Runner) takeOver(ctx context.Context, zr *zoneRun) error {
	kr, err := GetRecords(ctx, r.cfg.Client, r.cfg.Prefix, zr.origin)
	if err != nil {
		return fmt.Errorf("reading the key records: %w", err)
	}
	now := r.cfg.Now()
	dirty := false
	if kr == nil {
		kr = dnssec.NewKeyRecords(r.cfg.Files[zr.origin], now)
		dirty = true
		r.cfg.Log.Info("signer: key records written from the key files", "zone", zr.origin, "keys", len(kr.Keys))
	}
	for tag := range zr.private {
		if kr.Record(tag) == nil {
			r.cfg.Log.Warn("signer: a key of the key directory is not in the zone's key records; not used", "zone", zr.origin, "tag", tag)
		}
	}
	ks, err := kr.KeySet(zr.private, now)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	zr.records, zr.dirty, zr.keys, zr.leading, zr.status = kr, dirty, ks, true, ""
	zr.pub.loaded = false
	r.applyKeysLocked(zr)
	return nil
}

// applyKeysLocked signs the zone with zr.keys and puts their apex
// records into the zone set. Under mu.
func (r *Runner) applyKeysLocked(zr *zoneRun) {
	if err := r.cfg.Signer.SetKeys(zr.origin, zr.keys); err != nil {
		zr.status = err.Error()
		return
	}
	z := r.set.Zone(zr.origin)
	if z == nil {
		return
	}
	nz, err := z.WithDNSSEC(zr.keys.Apex())
	if err == nil {
		r.set, err = r.set.With(nz)
	}
	if err != nil {
		zr.status = err.Error()
		r.cfg.Log.Error("signer: the zone with its new keys", "zone", zr.origin, "err", err)
	}
}

// step advances the rollovers of the zones it leads.
func (r *Runner) step(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for zone, zr := range r.zones {
		ro := r.cfg.Rollover[zone]
		if !zr.leading || ro == nil || zr.records == nil {
			continue
		}
		next, made, err := ro.Step(ctx, zr.records, r.maxTTL(zone))
		if err != nil {
			zr.status = err.Error()
			r.cfg.Log.Error("signer: rollover", "zone", zone, "err", err)
			continue
		}
		if made != nil {
			zr.private[made.Tag()] = made.Signer
			r.cfg.Log.Warn("signer: rollover started; a new key was made", "zone", zone, "key", made.Describe(), "file", made.File)
		}
		if next == nil {
			continue
		}
		ks, err := next.KeySet(zr.private, r.cfg.Now())
		if err != nil {
			zr.status = err.Error()
			r.cfg.Log.Error("signer: rollover", "zone", zone, "err", err)
			continue
		}
		if next.Rollover != zr.records.Rollover && next.Rollover != "" {
			r.cfg.Log.Info("signer: rollover", "zone", zone, "status", next.Rollover)
		}
		zr.records, zr.dirty, zr.keys = next, true, ks
		r.applyKeysLocked(zr)
	}
}

// maxTTL is the largest TTL zone answers with: its records, its negative
// answers, its services. Under mu.
func (r *Runner) maxTTL(zone string) time.Duration {
	z := r.set.Zone(zone)
	if z == nil {
		return 0
	}
	ttl := z.NegativeTTL()
	for _, rr := range z.Records() {
		ttl = max(ttl, rr.Header().Ttl)
	}
	if r.snap != nil {
		for _, v := range r.snap.Services() {
			if w, err := zones.WireName(v.Name()); err == nil && r.set.Find([]byte(w)) == z {
				ttl = max(ttl, v.TTL())
			}
		}
	}
	return time.Duration(ttl) * time.Second
}

// cycle signs the current zones and snapshot (with refresh, the
// signatures due again too), signs ahead, and publishes what changed for
// the zones it leads.
func (r *Runner) cycle(ctx context.Context, refresh bool) {
	r.mu.Lock()
	set, snap, prev := r.set, r.snap, r.st
	leading := map[string]*zoneRun{}
	for z, zr := range r.zones {
		if zr.leading {
			leading[z] = zr
		}
	}
	r.mu.Unlock()
	if len(leading) == 0 {
		return
	}
	s := r.cfg.Signer
	start := r.cfg.Now()
	var st *dnssec.State
	var err error
	if refresh && prev != nil && prev.Zones() == set && prev.Snapshot() == snap {
		if st, err = s.Refresh(prev); st == nil && err == nil {
			st = prev
		}
	} else {
		st, err = s.Build(set, snap)
	}
	if err != nil {
		r.cfg.Log.Error("signer: signing failed", "err", err)
		for _, zr := range leading {
			r.setStatus(zr, err.Error())
		}
		return
	}
	ahead, err := s.Foresee(st)
	if err != nil {
		r.cfg.Log.Error("signer: signing ahead failed", "err", err)
	}
	s.Sweep(st)
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
	var rev int64
	if snap != nil {
		rev = snap.Revision()
	}
	now := r.cfg.Now()
	for zone, zr := range leading {
		entries := s.Entries(zone)
		ss, err := zr.pub.sync(ctx, zr.guard, entries, now)
		if err == nil && zr.dirty {
			r.mu.Lock()
			kr := zr.records
			r.mu.Unlock()
			if err = zr.pub.putJSON(ctx, zr.guard, r.l.records(zone), kr); err == nil {
				r.mu.Lock()
				if zr.records == kr {
					zr.dirty = false
				}
				r.mu.Unlock()
			}
		}
		if err == nil {
			err = zr.pub.putJSON(ctx, zr.guard, r.l.signed(zone), Signed{Revision: rev, At: now, Signer: r.cfg.ID, Entries: len(entries), Expires: ss.Expires})
		}
		if errors.Is(err, errNotLeader) {
			r.mu.Lock()
			zr.leading = false
			r.mu.Unlock()
			r.cfg.Log.Warn("signer: no longer leading", "zone", zone)
			continue
		}
		if err != nil {
			r.setStatus(zr, err.Error())
			r.cfg.Log.Error("signer: publishing failed; trying again at the next change or tick", "zone", zone, "err", err)
			continue
		}
		r.setStatus(zr, "")
		if ss.Wrote > 0 || ss.Deleted > 0 {
			r.cfg.Log.Info("signer: published", "zone", zone, "revision", rev, "written", ss.Wrote, "deleted", ss.Deleted,
				"entries", len(entries), "signed_ahead", ahead, "took", r.cfg.Now().Sub(start).Round(time.Millisecond))
		}
	}
}

// Zones lists the zones the runner signs.
func (r *Runner) Zones() []string { return slices.Sorted(maps.Keys(r.zones)) }
