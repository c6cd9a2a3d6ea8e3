// Command ecscover counts the EDNS Client Subnet blocks a DNS server
// needs to cover all of IPv4 for one name: it asks for the name with the
// ECS subnet of the first address, reads the scope of the reply, jumps
// past the block that scope names and asks again, to the end of IPv4.
// The fewer the blocks, the fewer entries a resolver's ECS cache holds
// and the fewer queries it sends. bench/cover.sh runs it against gdnsd
// and Meridian serving the same map from the same database.
//
//	ecscover -server 127.0.0.1:5322 -name www.gslb.example. [-source 32] [-list FILE] [-against FILE] [-ready URL]
//
// -list writes every block with its answer; -against reads such a list
// from another server and counts the blocks whose first address gets
// another answer there. -ready names a Meridian server's HTTP API: the
// walk starts once its /v1/status says the geo tables are built (the
// location table, and no merge pending), since until then its scopes
// are narrower.
//
// Only loopback servers are accepted, and the walk stops after -max
// queries. IPv4 is split into its 256 /8s, walked by -workers workers at
// once; a block is counted by the walk of the /8 it starts in.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

type config struct {
	server  string
	name    string
	source  int
	workers int
	max     int64
	timeout time.Duration
	list    string
	against string
	ready   string
}

func main() {
	var c config
	flag.StringVar(&c.server, "server", "127.0.0.1:5322", "DNS server, host:port on loopback")
	flag.StringVar(&c.name, "name", "www.gslb.example.", "name to ask for (type A)")
	flag.IntVar(&c.source, "source", 32, "ECS source prefix length sent, 1 to 32")
	flag.IntVar(&c.workers, "workers", 4, "walks at once")
	flag.Int64Var(&c.max, "max", 4_000_000, "stop with an error after this many queries")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Second, "wait for one reply (3 tries)")
	flag.StringVar(&c.list, "list", "", "write every block with its answer to this file")
	flag.StringVar(&c.against, "against", "", "compare the answers with this list from another server")
	flag.StringVar(&c.ready, "ready", "", "a Meridian server's HTTP API, http://host:port on loopback: wait until its geo tables are built")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "ecscover:", err)
		os.Exit(1)
	}
}

// block is one ECS block of the walk and the answer given for it.
type block struct {
	prefix netip.Prefix
	answer string
}

func run(ctx context.Context, c config) error {
	ap, err := netip.ParseAddrPort(c.server)
	if err != nil {
		return fmt.Errorf("-server: %w", err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("-server %s: only loopback servers are walked", c.server)
	}
	if c.source < 1 || c.source > 32 || c.workers < 1 || c.max < 1 {
		return errors.New("want -source 1 to 32, -workers and -max above 0")
	}
	c.name = dns.Fqdn(c.name)
	if c.ready != "" {
		if err := waitTables(ctx, c.ready, time.Minute); err != nil {
			return err
		}
	}

	start := time.Now()
	var queries atomic.Int64
	jobs := make(chan uint32, 256)
	for i := range 256 {
		jobs <- uint32(i) << 24
	}
	close(jobs)
	results := make([][]block, 256)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range c.workers {
		wg.Go(func() {
			w, err := newWalker(c, &queries)
			if err == nil {
				defer w.conn.Close()
				for lo := range jobs {
					if err = ctx.Err(); err != nil {
						break
					}
					var bs []block
					if bs, err = w.walk(lo, lo|0x00FFFFFF); err != nil {
						break
					}
					results[lo>>24] = bs
				}
			}
			if err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	var all []block
	for _, bs := range results {
		all = append(all, bs...)
	}
	took := time.Since(start)

	hist := map[int]int{}
	answers := map[string]int{}
	for _, b := range all {
		hist[b.prefix.Bits()]++
		answers[b.answer]++
	}
	fmt.Printf("server %s, %s A, ECS source /%d: %d blocks cover IPv4 (%d queries in %v)\n",
		c.server, c.name, c.source, len(all), queries.Load(), took.Round(time.Millisecond))
	var parts []string
	for _, bits := range slices.Sorted(maps.Keys(hist)) {
		parts = append(parts, fmt.Sprintf("/%d:%d", bits, hist[bits]))
	}
	fmt.Printf("blocks by scope: %s\n", strings.Join(parts, " "))
	parts = parts[:0]
	for _, a := range slices.Sorted(maps.Keys(answers)) {
		parts = append(parts, fmt.Sprintf("%s:%d", a, answers[a]))
	}
	fmt.Printf("blocks by answer: %s\n", strings.Join(parts, " "))
	if c.list != "" {
		if err := writeList(c.list, all); err != nil {
			return err
		}
	}
	if c.against != "" {
		other, err := readList(c.against)
		if err != nil {
			return err
		}
		differ, same := 0, 0
		for _, b := range all {
			switch o, ok := find(other, b.prefix.Addr()); {
			case !ok || o.answer != b.answer:
				if differ < 5 {
					fmt.Printf("  %s: %s here, %s in %s\n", b.prefix, b.answer, o.answer, c.against)
				}
				differ++
			case o.prefix == b.prefix:
				same++
			}
		}
		fmt.Printf("against %s (%d blocks): %d blocks answered otherwise, %d blocks identical\n", c.against, len(other), differ, same)
	}
	return nil
}

func readList(path string) ([]block, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []block
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p, answer, _ := strings.Cut(sc.Text(), " ")
		pp, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, block{pp, answer})
	}
	return out, sc.Err()
}

// find is the block of a sorted list that holds a.
func find(list []block, a netip.Addr) (block, bool) {
	i, _ := slices.BinarySearchFunc(list, a, func(b block, a netip.Addr) int {
		if b.prefix.Contains(a) {
			return 0
		}
		return b.prefix.Addr().Compare(a)
	})
	if i < len(list) && list[i].prefix.Contains(a) {
		return list[i], true
	}
	return block{}, false
}

func writeList(path string, all []block) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, b := range all {
		fmt.Fprintf(w, "%s %s\n", b.prefix, b.answer)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type walker struct {
	c       config
	conn    *dns.Conn
	queries *atomic.Int64
	id      uint16
}

func newWalker(c config, queries *atomic.Int64) (*walker, error) {
	conn, err := net.Dial("udp", c.server)
	if err != nil {
		return nil, err
	}
	return &walker{c: c, conn: &dns.Conn{Conn: conn}, queries: queries}, nil
}

// walk covers [lo, hi] with blocks, counting those that start in it. A
// scope longer than the source prefix moves on by the source prefix: the
// next subnet sent must be a whole one.
func (w *walker) walk(lo, hi uint32) ([]block, error) {
	var out []block
	for x := uint64(lo); x <= uint64(hi); {
		a := addr4(uint32(x))
		scope, answer, err := w.ask(a)
		if err != nil {
			return nil, err
		}
		bits := min(scope, 32)
		start := x >> (32 - bits) << (32 - bits)
		if start >= uint64(lo) {
			out = append(out, block{netip.PrefixFrom(addr4(uint32(start)), bits), answer})
		}
		step := min(bits, w.c.source)
		x = (x>>(32-step) + 1) << (32 - step)
	}
	return out, nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ask sends one query with the ECS subnet a/source and returns the
// reply's scope and its A records, sorted and joined.
func (w *walker) ask(a netip.Addr) (int, string, error) {
	if w.queries.Add(1) > w.c.max {
		return 0, "", fmt.Errorf("more than %d queries: stopped", w.c.max)
	}
	m := new(dns.Msg)
	m.SetQuestion(w.c.name, dns.TypeA)
	w.id++
	m.Id = w.id
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(w.c.source), Address: a.AsSlice()})
	m.Extra = append(m.Extra, o)
	var lastErr error
	for range 3 {
		r, err := w.exchange(m)
		if err != nil {
			lastErr = err
			continue
		}
		if r.Rcode != dns.RcodeSuccess {
			return 0, "", fmt.Errorf("%s/%d: %s", a, w.c.source, dns.RcodeToString[r.Rcode])
		}
		var addrs []string
		for _, rr := range r.Answer {
			if rec, ok := rr.(*dns.A); ok {
				addrs = append(addrs, rec.A.String())
			}
		}
		slices.Sort(addrs)
		scope := -1
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if s, ok := o.(*dns.EDNS0_SUBNET); ok {
					scope = int(s.SourceScope)
				}
			}
		}
		if scope < 0 {
			return 0, "", fmt.Errorf("%s/%d: no ECS option in the reply", a, w.c.source)
		}
		return scope, strings.Join(addrs, ","), nil
	}
	return 0, "", fmt.Errorf("%s/%d: %w", a, w.c.source, lastErr)
}

// exchange sends m and reads until the reply with its id comes (a late
// reply to an earlier try is skipped).
func (w *walker) exchange(m *dns.Msg) (*dns.Msg, error) {
	if err := w.conn.SetDeadline(time.Now().Add(w.c.timeout)); err != nil {
		return nil, err
	}
	if err := w.conn.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		r, err := w.conn.ReadMsg()
		if err != nil {
			return nil, err
		}
		if r.Id == m.Id {
			return r, nil
		}
	}
}

// waitTables polls base's /v1/status until the geo tables are built:
// the location table is there and no partition waits for its merge.
func waitTables(ctx context.Context, base string, limit time.Duration) error {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("-ready %q: want http://host:port", base)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("-ready %s: only loopback servers are asked", base)
	}
	u.Path, u.RawQuery = "/v1/status", "services=false"
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	var last string
	for {
		var st struct {
			Snapshot struct {
				GeoTables struct {
					Location *struct {
						IntervalsV4 int `json:"intervals_v4"`
					} `json:"location"`
					Partitions int `json:"partitions"`
					Merged     int `json:"merged"`
					Pending    int `json:"pending"`
				} `json:"geo_tables"`
			} `json:"snapshot"`
		}
		if err := getJSON(ctx, u.String(), &st); err != nil {
			last = err.Error()
		} else if gt := st.Snapshot.GeoTables; gt.Location != nil && gt.Partitions > 0 && gt.Pending == 0 {
			fmt.Fprintf(os.Stderr, "ecscover: geo tables built after %v: %d partitions, %d merged\n",
				time.Since(start).Round(time.Millisecond), gt.Partitions, gt.Merged)
			return nil
		} else {
			last = fmt.Sprintf("geo tables %+v", gt)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("-ready %s: geo tables not built within %v (%s)", base, limit, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
