package dnsserver

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/bits"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Response rate limiting (RRL) of UDP answers, as BIND and Knot do it
// (docs/rrl.md). Every answer is accounted to the client's network (a /24
// or /56 by default) and what the answer is: the same positive answer
// for a name and type, NXDOMAIN from a zone, NODATA for a name, a
// referral to a delegation, or an error. Each account may send Rate
// answers a second, with a burst of Rate×Window after it was idle; over
// that, every Slip-th answer goes out empty with TC set (a real client
// retries over TCP), the others are dropped. A spoofed flood aimed at a
// victim therefore reflects at most Rate answers a second per account,
// and otherwise less than it sends.
//
// The accounts live in a fixed table of 16-byte entries, four to a
// 64-byte bucket chosen by a keyed hash, updated with atomic operations
// only: the query path takes no lock and allocates nothing. See rrlTable
// for how it stays fair under a flood of random sources.

// Defaults and bounds of RRLConfig (docs/rrl.md explains the defaults).
const (
	DefaultRRLRate       = 50
	DefaultRRLWindow     = time.Second
	DefaultRRLSlip       = 2
	DefaultRRLPrefixV4   = 24
	DefaultRRLPrefixV6   = 56
	DefaultRRLTableSize  = 1 << 18
	MaxRRLRate           = 1_000_000
	MinRRLWindow         = time.Second
	MaxRRLWindow         = time.Minute
	MaxRRLSlip           = 10
	MinRRLTableSize      = 1 << 10
	MaxRRLTableSize      = 1 << 26
	RRLEntryBytes        = 16 // per account in the table
	rrlWays              = 4  // accounts per bucket: one cache line
	rrlLogRepeat         = 5 * time.Minute
	rrlLogLinesPerSecond = 10
)

// RRLConfig configures response rate limiting. Zero values of Rate,
// Window, the prefix lengths and TableSize take the defaults above; Slip
// is taken as given (0 drops every answer over the limit).
type RRLConfig struct {
	// Rate is the answers per second each account may send.
	Rate int
	// Window is the burst: an account idle for Window may send
	// Rate×Window answers at once.
	Window time.Duration
	// Slip: every Slip-th answer over the limit is sent truncated and
	// empty (TC set), or as BADCOOKIE with a fresh server cookie to a
	// client that sent a cookie; the rest are dropped. 0: all dropped.
	Slip int
	// PrefixV4 and PrefixV6 are how much of a client's address names its
	// network.
	PrefixV4, PrefixV6 int
	// TableSize is the number of accounts held (RRLEntryBytes each),
	// rounded up to a power of two.
	TableSize int
	// Exempt lists networks whose answers are never limited.
	Exempt []netip.Prefix
	// LogOnly counts and logs what would be limited, and sends every
	// answer.
	LogOnly bool
	// Clock is a monotonic clock (any origin) for tests; nil: the
	// process's monotonic clock.
	Clock func() time.Duration
	// Logger gets one line per network that starts being limited (see
	// RRL.Run); nil discards them.
	Logger *slog.Logger
}

// RRLFieldError is a field of RRLConfig out of range. Field is its name
// in the server's configuration (under dns.rrl).
type RRLFieldError struct {
	Field string
	Msg   string
}

func (e *RRLFieldError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks the ranges of every field, after defaults; the errors
// are *RRLFieldError, joined.
func (c RRLConfig) Validate() error {
	c.defaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &RRLFieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Rate < 1 || c.Rate > MaxRRLRate {
		bad("rate", "%d: want 1 to %d answers per second per account", c.Rate, MaxRRLRate)
	}
	if c.Window < MinRRLWindow || c.Window > MaxRRLWindow {
		bad("window", "%v: want %v to %v", c.Window, MinRRLWindow, MaxRRLWindow)
	}
	if c.Slip < 0 || c.Slip > MaxRRLSlip {
		bad("slip", "%d: want 0 (drop every answer over the limit) to %d", c.Slip, MaxRRLSlip)
	}
	if c.PrefixV4 < 1 || c.PrefixV4 > 32 {
		bad("ipv4_prefix_length", "%d: want 1 to 32", c.PrefixV4)
	}
	if c.PrefixV6 < 1 || c.PrefixV6 > 128 {
		bad("ipv6_prefix_length", "%d: want 1 to 128", c.PrefixV6)
	}
	if c.TableSize < MinRRLTableSize || c.TableSize > MaxRRLTableSize {
		bad("table_size", "%d: want %d to %d accounts (%d bytes each)", c.TableSize, MinRRLTableSize, MaxRRLTableSize, RRLEntryBytes)
	}
	for i, p := range c.Exempt {
		if !p.IsValid() || p != p.Masked() {
			bad(fmt.Sprintf("exempt[%d]", i), "%v: want a network without host bits", p)
		}
	}
	return errors.Join(errs...)
}

func (c *RRLConfig) defaults() {
	if c.Rate == 0 {
		c.Rate = DefaultRRLRate
	}
	if c.Window == 0 {
		c.Window = DefaultRRLWindow
	}
	if c.PrefixV4 == 0 {
		c.PrefixV4 = DefaultRRLPrefixV4
	}
	if c.PrefixV6 == 0 {
		c.PrefixV6 = DefaultRRLPrefixV6
	}
	if c.TableSize == 0 {
		c.TableSize = DefaultRRLTableSize
	}
}

// RRL is a response rate limiter, shared by every UDP loop of a handler
// (HandlerConfig.RRL). Run logs the networks it starts limiting.
type RRL struct {
	cfg      RRLConfig
	interval int64 // ns of rate per answer
	tau      int64 // ns an account's budget may run ahead of now: the burst less one answer
	slip     uint64
	mask4    uint32
	mask6    [2]uint64
	exempt4  []span4
	exempt6  []span6
	seed     maphash.Seed
	table    rrlTable
	counts   [rrlActions]paddedCounter
	evicted  atomic.Uint64
	starts   atomic.Uint64
	log      *slog.Logger
	events   rrlEvents
}

// NewRRL checks cfg (see Validate) and builds the limiter with an empty
// table.
func NewRRL(cfg RRLConfig) (*RRL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dnsserver: rrl: %w", err)
	}
	cfg.defaults()
	cfg.Exempt = slices.Clone(cfg.Exempt)
	r := &RRL{
		cfg:      cfg,
		interval: int64(time.Second) / int64(cfg.Rate),
		slip:     uint64(cfg.Slip),
		mask4:    netmask4(cfg.PrefixV4),
		seed:     maphash.MakeSeed(),
		log:      cfg.Logger,
	}
	// The burst is Rate×Window answers: the first is always allowed and
	// each later one needs the budget to be at most tau ahead of now.
	burst := max(int64(cfg.Rate)*int64(cfg.Window)/int64(time.Second), 1)
	r.tau = (burst - 1) * r.interval
	r.mask6 = prefixMask128(cfg.PrefixV6)
	r.exempt4, r.exempt6 = exemptSpans(cfg.Exempt)
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.table = newRRLTable(cfg.TableSize)
	return r, nil
}

// Config returns the configuration in force, defaults filled in.
func (r *RRL) Config() RRLConfig { return r.cfg }

// Capacity is the number of accounts the table holds.
func (r *RRL) Capacity() int { return len(r.table.buckets) * rrlWays }

// now is the time in nanoseconds: the test clock, or received (when
// the datagram was received, monoNow), or the clock read now.
func (r *RRL) now(received int64) int64 {
	switch {
	case r.cfg.Clock != nil:
		return int64(r.cfg.Clock())
	case received != 0:
		return received
	}
	return monoNow()
}

// monoStart is the origin of monoNow.
var monoStart = time.Now()

// monoNow reads the monotonic clock (time.Since reads only that one), in
// nanoseconds since the package was initialized: a clock read costs
// tens of nanoseconds, so the UDP loops read it once per batch.
func monoNow() int64 { return int64(time.Since(monoStart)) }

func prefixMask128(bits int) [2]uint64 {
	var m [2]uint64
	if bits >= 64 {
		m[0] = ^uint64(0)
		if bits > 64 {
			m[1] = ^uint64(0) << (128 - bits)
		}
	} else {
		m[0] = ^uint64(0) << (64 - bits)
	}
	return m
}

// The exempt networks as sorted, merged address ranges, searched with a
// binary search per query.
type span4 struct{ lo, hi uint32 }
type span6 struct{ lo, hi [2]uint64 }

func exemptSpans(ps []netip.Prefix) ([]span4, []span6) {
	var s4 []span4
	var s6 []span6
	for _, p := range ps {
		a := p.Addr()
		if a.Is4() {
			lo := addr4(a)
			s4 = append(s4, span4{lo, lo | ^netmask4(p.Bits())})
			continue
		}
		lo := addr6(a)
		m := prefixMask128(p.Bits())
		s6 = append(s6, span6{lo, [2]uint64{lo[0] | ^m[0], lo[1] | ^m[1]}})
	}
	slices.SortFunc(s4, func(a, b span4) int { return cmp.Compare(a.lo, b.lo) })
	slices.SortFunc(s6, func(a, b span6) int { return cmp128(a.lo, b.lo) })
	var m4 []span4
	for _, s := range s4 {
		if n := len(m4); n > 0 && (s.lo <= m4[n-1].hi || m4[n-1].hi != math.MaxUint32 && s.lo == m4[n-1].hi+1) {
			m4[n-1].hi = max(m4[n-1].hi, s.hi)
			continue
		}
		m4 = append(m4, s)
	}
	var m6 []span6
	for _, s := range s6 {
		if n := len(m6); n > 0 && cmp128(s.lo, m6[n-1].hi) <= 0 {
			if cmp128(s.hi, m6[n-1].hi) > 0 {
				m6[n-1].hi = s.hi
			}
			continue
		}
		m6 = append(m6, s)
	}
	return m4, m6
}

// netmask4 is the network mask of a prefix length.
func netmask4(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr6(a netip.Addr) [2]uint64 {
	b := a.As16()
	var v [2]uint64
	for i := range 8 {
		v[0] = v[0]<<8 | uint64(b[i])
		v[1] = v[1]<<8 | uint64(b[8+i])
	}
	return v
}

func cmp128(a, b [2]uint64) int {
	if a[0] != b[0] {
		return cmp.Compare(a[0], b[0])
	}
	return cmp.Compare(a[1], b[1])
}

// exempt reports whether a is in an exempt network.
func (r *RRL) exempt(a netip.Addr) bool {
	if a.Is4() {
		if len(r.exempt4) == 0 {
			return false
		}
		v := addr4(a)
		i, _ := slices.BinarySearchFunc(r.exempt4, v, func(s span4, v uint32) int { return cmp.Compare(s.lo, v) })
		// i is the first span starting above v (or at it).
		if i < len(r.exempt4) && r.exempt4[i].lo == v {
			return true
		}
		return i > 0 && v <= r.exempt4[i-1].hi
	}
	if len(r.exempt6) == 0 {
		return false
	}
	v := addr6(a)
	i, found := slices.BinarySearchFunc(r.exempt6, v, func(s span6, v [2]uint64) int { return cmp128(s.lo, v) })
	return found || i > 0 && cmp128(v, r.exempt6[i-1].hi) <= 0
}

// rrlClass is the kind of answer an account counts.
type rrlClass uint8

const (
	rrlError    rrlClass = iota + 1 // an error rcode; one account per network
	rrlPositive                     // records for the name and type
	rrlNoData                       // no records of the type at the name
	rrlNXDomain                     // the name does not exist: one account per zone
	rrlReferral                     // a delegation: one account per delegation point
	rrlClasses

	// rrlWildcard marks positive and NODATA answers synthesized from a
	// wildcard: they are accounted to the wildcard, whatever name was
	// asked, so random names below it share one account.
	rrlWildcard rrlClass = 0x80
)

var rrlClassNames = [rrlClasses]string{
	rrlError:    "error",
	rrlPositive: "positive",
	rrlNoData:   "nodata",
	rrlNXDomain: "nxdomain",
	rrlReferral: "referral",
}

func (c rrlClass) String() string {
	s := "?"
	if b := c &^ rrlWildcard; b < rrlClasses && rrlClassNames[b] != "" {
		s = rrlClassNames[b]
	}
	if c&rrlWildcard != 0 {
		s += " (wildcard)"
	}
	return s
}

// What happened to the answers RRL saw, for the metrics.
const (
	rrlAnswered     = iota // within the account's rate
	rrlSlipped             // sent truncated (or BADCOOKIE) instead
	rrlDropped             // not sent
	rrlWouldSlip           // LogOnly: sent, but would have slipped
	rrlWouldDrop           // LogOnly: sent, but would have been dropped
	rrlExemptNet           // from an exempt network
	rrlExemptCookie        // with a valid server cookie
	rrlActions
)

var rrlActionNames = [rrlActions]string{"answered", "slipped", "dropped", "would_slip", "would_drop", "exempt_network", "exempt_cookie"}

// rrlVerdict is what becomes of one answer.
type rrlVerdict uint8

const (
	rrlAllow rrlVerdict = iota
	rrlSlip
	rrlDrop
)

// rrlKeyMax bounds an account's key: class, type, family, address, name.
const rrlKeyMax = 1 + 2 + 1 + 16 + 255

// rrlKey writes the key of an account into buf: the class, the type
// (positive answers only), the client's network and the name, and
// returns it.
func (r *RRL) rrlKey(buf *[rrlKeyMax]byte, a netip.Addr, class rrlClass, qtype uint16, name []byte) []byte {
	buf[0], buf[1], buf[2] = byte(class), byte(qtype>>8), byte(qtype)
	n := 4
	if a.Is4() {
		buf[3] = 4
		v := addr4(a) & r.mask4
		buf[4], buf[5], buf[6], buf[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		n = 8
	} else {
		buf[3] = 6
		v := addr6(a)
		for w := range 2 {
			x := v[w] & r.mask6[w]
			for i := range 8 {
				buf[n] = byte(x >> (56 - 8*i))
				n++
			}
		}
	}
	n += copy(buf[n:], name)
	return buf[:n]
}

// network is the client network an address is accounted to.
func (r *RRL) network(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, r.cfg.PrefixV4).Masked()
	}
	return netip.PrefixFrom(a, r.cfg.PrefixV6).Masked()
}

// rrlTable holds the accounts: buckets of rrlWays entries, each a meta
// word (a 48-bit tag from the key's hash, flags, the slip counter) and
// the account's budget as a GCRA "theoretical arrival time" (tat): the
// time when the account will have earned back every answer it sent,
// never more than tau ahead of now while answers go out. An answer is
// allowed when max(tat, now) is at most tau ahead and then moves tat on
// by one interval; an answer over the limit leaves tat alone, so a flood
// still gets exactly Rate answers a second.
//
// Fairness. A new account replaces the entry of its bucket with the
// smallest tat: an empty one, one idle the longest, or one that has sent
// the fewest answers lately. A flood of random sources makes accounts
// that sent one answer (tat = now + interval); an account being limited,
// or close to it, has a tat about tau ahead of now, so the flood replaces
// its own entries and the limits of the heavy accounts stay in force. A
// replaced account within its rate loses nothing: it starts again with
// its full burst. Only when more accounts than a bucket holds are over
// their limits at once does one of them lose its state.
type rrlTable struct {
	buckets []rrlBucket
	mask    uint64
}

// rrlBucket is one cache line: a lookup reads one line of memory.
type rrlBucket [rrlWays]rrlEntry

type rrlEntry struct {
	meta atomic.Uint64
	tat  atomic.Int64
}

// The meta word: tag<<16 | flags<<8 | slip counter. 0 is an empty entry.
// An entry being replaced carries its new tag and rrlFlagInserting until
// its tat is set: a concurrent first answer of the same account then
// finds it and waits for it, instead of inserting the account twice
// (which would give it a second burst).
const (
	rrlTagShift      = 16
	rrlFlagLimited   = 1 // the account is over its limit (logged once per episode)
	rrlFlagInserting = 2 // the entry's tat is being set for its new tag

	// rrlInsertSpins bounds the wait for a concurrent insertion: it is
	// two stores, so only a descheduled inserter makes it run out; the
	// answer is then allowed, as when every entry is being replaced.
	rrlInsertSpins = 64
)

func newRRLTable(size int) rrlTable {
	n := max(1, (size+rrlWays-1)/rrlWays)
	n = 1 << bits.Len(uint(n-1)) // a power of two
	return rrlTable{buckets: make([]rrlBucket, n), mask: uint64(n - 1)}
}

// take spends one answer of the account whose key hashes to h, at now
// (ns). started: the account went over its limit with this answer (for
// the first time since it last had its full burst).
func (r *RRL) take(h uint64, now int64) (v rrlVerdict, started bool) {
	t := &r.table
	b := &t.buckets[h&t.mask]
	tag := h >> rrlTagShift
	if tag == 0 {
		tag = 1
	}
	for range 3 {
		victim, victimMeta, oldest := -1, uint64(0), int64(math.MaxInt64)
		for i := range rrlWays {
			m := b[i].meta.Load()
			switch tg := m >> rrlTagShift; {
			case tg == tag:
				if m>>8&rrlFlagInserting != 0 && !waitInserted(&b[i].meta, m) {
					return rrlAllow, false
				}
				return r.spend(b, i, tag, now)
			case m == 0:
				if oldest != math.MinInt64 {
					victim, victimMeta, oldest = i, 0, math.MinInt64
				}
			case m>>8&rrlFlagInserting == 0:
				if tt := b[i].tat.Load(); tt < oldest {
					victim, victimMeta, oldest = i, m, tt
				}
			}
		}
		if victim < 0 {
			break // every entry is being replaced this instant
		}
		// Mark the entry while its tat is set, so that nobody finds the
		// new tag with the old account's budget.
		if !b[victim].meta.CompareAndSwap(victimMeta, tag<<rrlTagShift|rrlFlagInserting<<8) {
			continue // changed meanwhile: look again
		}
		if victimMeta != 0 && oldest > now {
			r.evicted.Add(1)
		}
		b[victim].tat.Store(now + r.interval)
		b[victim].meta.Store(tag << rrlTagShift)
		return rrlAllow, false
	}
	return rrlAllow, false
}

// waitInserted waits, a bounded number of yields, for a concurrent
// insertion to finish: meta leaves the value m it had while inserting.
func waitInserted(meta *atomic.Uint64, m uint64) bool {
	for range rrlInsertSpins {
		if meta.Load() != m {
			return true
		}
		runtime.Gosched()
	}
	return meta.Load() != m
}

// spend debits entry i, which holds the account tagged tag.
func (r *RRL) spend(b *rrlBucket, i int, tag uint64, now int64) (rrlVerdict, bool) {
	for {
		tat := b[i].tat.Load()
		base := max(tat, now)
		if base-now > r.tau {
			break
		}
		if b[i].tat.CompareAndSwap(tat, base+r.interval) {
			if tat <= now {
				// The account had its whole burst back: a limiting
				// episode, if any, is over.
				if m := b[i].meta.Load(); m>>rrlTagShift == tag && m&0xFFFF != 0 {
					b[i].meta.CompareAndSwap(m, tag<<rrlTagShift)
				}
			}
			return rrlAllow, false
		}
	}
	for {
		m := b[i].meta.Load()
		if m>>rrlTagShift != tag {
			return rrlDrop, false // replaced meanwhile; it was over its limit
		}
		count, flags := m&0xFF, m>>8&0xFF
		v, next := rrlDrop, uint64(0)
		if r.slip > 0 {
			if count == 0 {
				v = rrlSlip
			}
			next = (count + 1) % r.slip
		}
		if b[i].meta.CompareAndSwap(m, tag<<rrlTagShift|(flags|rrlFlagLimited)<<8|next) {
			return v, flags&rrlFlagLimited == 0
		}
	}
}

// accounts counts the entries in use (whose budget is not full: they
// answered within the last window) and those of them being limited.
func (r *RRL) accounts() (inUse, limited int) {
	now := r.now(0)
	for bi := range r.table.buckets {
		b := &r.table.buckets[bi]
		for i := range rrlWays {
			m := b[i].meta.Load()
			if m == 0 || m>>8&rrlFlagInserting != 0 {
				continue
			}
			if b[i].tat.Load() > now {
				inUse++
				if m>>8&rrlFlagLimited != 0 {
					limited++
				}
			}
		}
	}
	return inUse, limited
}

var (
	descRRLResponses = prometheus.NewDesc("meridian_dns_rrl_responses_total",
		"UDP answers seen by response rate limiting, by what became of them: answered, slipped (sent truncated or BADCOOKIE), dropped, would_slip and would_drop (log_only: sent all the same), exempt_network, exempt_cookie (a valid server cookie).",
		[]string{"action"}, nil)
	descRRLAccounts = prometheus.NewDesc("meridian_dns_rrl_accounts",
		"Response rate limiting accounts: in_use (answered within the last window), limited (over their rate now), capacity (the table's size).",
		[]string{"state"}, nil)
	descRRLEvicted = prometheus.NewDesc("meridian_dns_rrl_evictions_total",
		"Accounts replaced by new ones before their burst was back: more than that means the table is too small.", nil, nil)
	descRRLStarts = prometheus.NewDesc("meridian_dns_rrl_limit_starts_total",
		"Times an account went over its rate after having its whole burst.", nil, nil)
)

// Describe implements prometheus.Collector.
func (r *RRL) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRRLResponses, descRRLAccounts, descRRLEvicted, descRRLStarts} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads the whole table: a
// few milliseconds for the largest.
func (r *RRL) Collect(ch chan<- prometheus.Metric) {
	for a := range r.counts {
		ch <- prometheus.MustNewConstMetric(descRRLResponses, prometheus.CounterValue, float64(r.counts[a].Load()), rrlActionNames[a])
	}
	inUse, limited := r.accounts()
	ch <- prometheus.MustNewConstMetric(descRRLAccounts, prometheus.GaugeValue, float64(inUse), "in_use")
	ch <- prometheus.MustNewConstMetric(descRRLAccounts, prometheus.GaugeValue, float64(limited), "limited")
	ch <- prometheus.MustNewConstMetric(descRRLAccounts, prometheus.GaugeValue, float64(r.Capacity()), "capacity")
	ch <- prometheus.MustNewConstMetric(descRRLEvicted, prometheus.CounterValue, float64(r.evicted.Load()))
	ch <- prometheus.MustNewConstMetric(descRRLStarts, prometheus.CounterValue, float64(r.starts.Load()))
}
