// Command mixgen makes the query file of the mixed case of bench/run.sh
// and checks the answers of the servers under test before they are
// timed (see bench/README.md).
//
//	mixgen gen -db MMDB -out FILE [-n 100000] [-seed 1] [-probes FILE] [-do]
//	mixgen check -probes FILE [-do] -server NAME=HOST:PORT [-server ...]
//	mixgen sizes -in FILE -server NAME=HOST:PORT [-server ...]
//
// gen writes n queries in dnsperf's binary format (-B: each packet after
// its length in two bytes), over these names of gslb.example:
//
//	static  static, h00 ... h31          A records of the zone file
//	geo     www                          steered by continent
//	cname   alias (CNAME www)            a CNAME to the steered name
//	sticky  api                          weighted, sticky by client subnet
//	nx      nx-<random>                  names that do not exist (NXDOMAIN)
//
// Most queries carry an ECS option with one of a few thousand /24s, drawn
// from every continent of the database (and some it does not know); the
// others carry EDNS without ECS. The probes file lists a sample of the
// queries, each with the answer it must get. With -do every query has the
// DNSSEC OK bit set; the same seed gives the same queries with and
// without it.
//
// check asks every server each probe and prints one line a server and
// class: "check SERVER CLASS ok" or "check SERVER CLASS differs: WHY".
// With -do it asks with the DO bit and also holds each answer to its
// signatures: every RRset of the answer and authority sections must carry
// an RRSIG that verifies with a key of the zone's DNSKEY RRset, and a
// name error its NSEC records.
//
// sizes sends every query of a file to each server, as the timed run
// does, and prints one line a server: "sizes SERVER answers N tc N
// over1232 N max N mean N lost N" (tc: answers with the TC bit; over1232:
// answers longer than 1232 bytes). Servers are only on loopback.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/geo"
)

const zone = "gslb.example."

// The answers of www by the client's continent: bench/meridian-state.yaml,
// bench/gdnsd/config-geo and bench/knot/geo.conf route alike.
var wwwByContinent = map[string]string{"EU": "192.0.2.10", "NA": "192.0.2.20", "AS": "192.0.2.30"}

const wwwDefault = "192.0.2.20"

// apiAddrs are the addresses api is weighted over.
var apiAddrs = []string{"192.0.2.10", "192.0.2.20", "192.0.2.30"}

// staticNames and their addresses, as in bench/zones/gslb.example.zone.
func staticNames() map[string]string {
	m := map[string]string{"static." + zone: "192.0.2.1"}
	for i := range 32 {
		m[fmt.Sprintf("h%02d.%s", i, zone)] = fmt.Sprintf("198.51.100.%d", i+1)
	}
	return m
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "check":
		err = check(os.Args[2:])
	case "sizes":
		err = sizes(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mixgen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mixgen gen -db MMDB -out FILE [-n N] [-seed S] [-probes FILE] [-do]\n"+
		"       mixgen check -probes FILE [-do] -server NAME=HOST:PORT ...\n"+
		"       mixgen sizes -in FILE -server NAME=HOST:PORT ...")
	os.Exit(2)
}

// query is one query of the mix.
type query struct {
	class string
	name  string
	ecs   netip.Prefix // invalid: EDNS without ECS
	do    bool         // the DNSSEC OK bit
}

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	dbPath := fs.String("db", "", "country mmdb the subnets are drawn from")
	out := fs.String("out", "", "query file (dnsperf -B format)")
	n := fs.Int("n", 100000, "queries")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same file")
	probes := fs.String("probes", "", "write a sample of the queries with their expected answers here")
	do := fs.Bool("do", false, "set the DNSSEC OK bit in every query")
	_ = fs.Parse(args)
	if *dbPath == "" || *out == "" || *n < 1 {
		return errors.New("gen needs -db, -out and -n above 0")
	}
	db, err := geo.Open(*dbPath)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(*seed, 0x6d6978))

	// Subnets: random /24s, kept up to a quota per continent, so that
	// every continent (and addresses the database does not know) is
	// asked about, from many networks.
	quota := map[string]int{"EU": 900, "NA": 900, "AS": 900, "SA": 300, "AF": 300, "OC": 300, "": 100}
	var subnets []netip.Prefix
	var conts []string
	for tries := 0; len(subnets) < 3700 && tries < 10_000_000; tries++ {
		x := rng.Uint32()
		a := netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), 0})
		if !a.IsGlobalUnicast() || a.IsPrivate() || x>>28 == 0xE || x>>28 == 0xF {
			continue
		}
		c := db.Locate(a).Continent
		if quota[c] == 0 {
			continue
		}
		quota[c]--
		subnets = append(subnets, netip.PrefixFrom(a, 24))
		conts = append(conts, c)
	}
	statics := staticNames()
	staticList := slices.Sorted(maps.Keys(statics))
	pick := func() query {
		q := query{}
		switch r := rng.IntN(100); {
		case r < 30:
			q.class, q.name = "static", staticList[rng.IntN(len(staticList))]
		case r < 60:
			q.class, q.name = "geo", "www."+zone
		case r < 70:
			q.class, q.name = "cname", "alias."+zone
		case r < 85:
			q.class, q.name = "sticky", "api."+zone
		default:
			q.class, q.name = "nx", fmt.Sprintf("nx-%d.%s", rng.IntN(5000), zone)
		}
		if rng.IntN(100) < 85 {
			q.ecs = subnets[rng.IntN(len(subnets))]
		}
		return q
	}

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	var sample []query
	perClass := map[string]int{}
	for i := range *n {
		q := pick()
		q.do = *do
		b, err := pack(q, uint16(i))
		if err != nil {
			f.Close()
			return err
		}
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(b)))
		w.Write(l[:])
		w.Write(b)
		if perClass[q.class] < 40 {
			perClass[q.class]++
			sample = append(sample, q)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	byCont := map[string]int{}
	for _, c := range conts {
		byCont[c]++
	}
	var parts []string
	for _, c := range []string{"EU", "NA", "AS", "SA", "AF", "OC", ""} {
		if c == "" {
			parts = append(parts, fmt.Sprintf("%d unknown to the database", byCont[c]))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", c, byCont[c]))
		}
	}
	fmt.Fprintf(os.Stderr, "mixgen: %d queries, 85%% with ECS from %d /24s (%s)\n", *n, len(subnets), strings.Join(parts, ", "))
	if *probes == "" {
		return nil
	}
	pf, err := os.Create(*probes)
	if err != nil {
		return err
	}
	pw := bufio.NewWriter(pf)
	for _, q := range sample {
		ecs := "-"
		if q.ecs.IsValid() {
			ecs = q.ecs.String()
		}
		fmt.Fprintf(pw, "%s %s %s %s\n", q.class, q.name, ecs, expect(db, statics, q))
	}
	if err := pw.Flush(); err != nil {
		pf.Close()
		return err
	}
	return pf.Close()
}

// expect is the answer a query must get, as one word: an address,
// "NXDOMAIN", "CNAME>ADDRESS" or "ONEOF:A,B,C".
func expect(db *geo.DB, statics map[string]string, q query) string {
	www := wwwDefault
	if q.ecs.IsValid() {
		if a, ok := wwwByContinent[db.Locate(q.ecs.Addr()).Continent]; ok {
			www = a
		}
	}
	switch q.class {
	case "static":
		return statics[q.name]
	case "geo":
		return www
	case "cname":
		return "CNAME>" + www
	case "sticky":
		return "ONEOF:" + strings.Join(apiAddrs, ",")
	}
	return "NXDOMAIN"
}

// pack builds the query: no recursion wanted, EDNS, ECS and DO when set.
func pack(q query, id uint16) ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(q.name, dns.TypeA)
	m.Id = id
	m.RecursionDesired = false
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	if q.do {
		o.SetDo()
	}
	if q.ecs.IsValid() {
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(q.ecs.Bits()), Address: q.ecs.Addr().AsSlice()})
	}
	m.Extra = append(m.Extra, o)
	return m.Pack()
}

type serverFlag []string

func (s *serverFlag) String() string     { return strings.Join(*s, " ") }
func (s *serverFlag) Set(v string) error { *s = append(*s, v); return nil }

func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	probes := fs.String("probes", "", "probes file written by gen")
	do := fs.Bool("do", false, "ask with the DNSSEC OK bit and verify the signatures of every answer")
	var servers serverFlag
	fs.Var(&servers, "server", "NAME=HOST:PORT of a server to check (repeat)")
	targets, err := parseWithServers(fs, args, &servers, probes, "-probes")
	if err != nil {
		return err
	}
	lines, err := readLines(*probes)
	if err != nil {
		return err
	}
	for _, t := range targets {
		var classes []string
		why := map[string]string{}
		var keys []*dns.DNSKEY
		keyErr := ""
		if *do {
			// Without the zone's keys no answer can be verified: every
			// class differs, for the same reason.
			if keys, err = zoneKeys(t.addr); err != nil {
				keyErr = err.Error()
			}
		}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 4 {
				return fmt.Errorf("%s: bad line %q", *probes, l)
			}
			class := f[0]
			if !slices.Contains(classes, class) {
				classes = append(classes, class)
			}
			if keyErr != "" {
				why[class] = keyErr
			}
			if why[class] != "" {
				continue
			}
			if w := probe(t.addr, f[1], f[2], f[3], *do, keys); w != "" {
				why[class] = w
			}
		}
		for _, c := range classes {
			if why[c] == "" {
				fmt.Printf("check %s %s ok\n", t.name, c)
			} else {
				fmt.Printf("check %s %s differs: %s\n", t.name, c, why[c])
			}
		}
	}
	return nil
}

// target is a server named on the command line.
type target struct{ name, addr string }

// parseWithServers parses a subcommand's flags, of which the file one
// (named need) and at least one -server are required, and reads the
// servers: NAME=HOST:PORT, only on loopback.
func parseWithServers(fs *flag.FlagSet, args []string, servers *serverFlag, file *string, need string) ([]target, error) {
	_ = fs.Parse(args)
	if *file == "" || len(*servers) == 0 {
		return nil, fmt.Errorf("%s needs %s and at least one -server", fs.Name(), need)
	}
	var out []target
	for _, sv := range *servers {
		name, addr, ok := strings.Cut(sv, "=")
		ap, err := netip.ParseAddrPort(addr)
		if !ok || err != nil || !ap.Addr().IsLoopback() {
			return nil, fmt.Errorf("-server %q: want NAME=HOST:PORT on loopback", sv)
		}
		out = append(out, target{name, addr})
	}
	return out, nil
}

// zoneKeys asks the server for the zone's DNSKEY RRset (over TCP, where
// it cannot be truncated).
func zoneKeys(addr string) ([]*dns.DNSKEY, error) {
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeDNSKEY)
	m.RecursionDesired = false
	m.SetEdns0(4096, true)
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, fmt.Errorf("DNSKEY: %v", err)
	}
	var keys []*dns.DNSKEY
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("DNSKEY: no key in the answer (%s)", dns.RcodeToString[r.Rcode])
	}
	return keys, nil
}

// verifySigned says what is wrong with the signatures of an answer to a
// query with DO; "" when every RRset of its answer and authority sections
// carries an RRSIG that verifies with one of keys and is valid now, and a
// name error carries NSEC records.
func verifySigned(r *dns.Msg, keys []*dns.DNSKEY) string {
	nsec := false
	for _, section := range [][]dns.RR{r.Answer, r.Ns} {
		sets := map[[2]any][]dns.RR{}
		var order [][2]any
		var sigs []*dns.RRSIG
		for _, rr := range section {
			h := rr.Header()
			if sig, ok := rr.(*dns.RRSIG); ok {
				sigs = append(sigs, sig)
				continue
			}
			if h.Rrtype == dns.TypeNSEC {
				nsec = true
			}
			k := [2]any{strings.ToLower(h.Name), h.Rrtype}
			if sets[k] == nil {
				order = append(order, k)
			}
			sets[k] = append(sets[k], rr)
		}
		for _, k := range order {
			set := sets[k]
			what := fmt.Sprintf("%s %s", k[0], dns.TypeToString[k[1].(uint16)])
			if why := verifySet(set, sigs, keys); why != "" {
				return what + ": " + why
			}
		}
	}
	if r.Rcode == dns.RcodeNameError && !nsec {
		return "NXDOMAIN without NSEC"
	}
	return ""
}

// verifySet checks one RRset against the RRSIGs of its section.
func verifySet(set []dns.RR, sigs []*dns.RRSIG, keys []*dns.DNSKEY) string {
	h := set[0].Header()
	why := "no RRSIG"
	for _, sig := range sigs {
		if sig.TypeCovered != h.Rrtype || !strings.EqualFold(sig.Header().Name, h.Name) {
			continue
		}
		if why == "no RRSIG" {
			why = "its RRSIG is by no key of the zone's DNSKEY RRset"
		}
		for _, k := range keys {
			if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
				continue
			}
			if err := sig.Verify(k, set); err != nil {
				why = "RRSIG does not verify: " + err.Error()
				continue
			}
			if !sig.ValidityPeriod(time.Now()) {
				why = "RRSIG not valid now"
				continue
			}
			return ""
		}
	}
	return why
}

// sizeWorkers is how many queries sizes keeps in flight, one per socket.
const sizeWorkers = 8

func sizes(args []string) error {
	fs := flag.NewFlagSet("sizes", flag.ExitOnError)
	in := fs.String("in", "", "query file written by gen (dnsperf -B format)")
	var servers serverFlag
	fs.Var(&servers, "server", "NAME=HOST:PORT of a server to ask (repeat)")
	targets, err := parseWithServers(fs, args, &servers, in, "-in")
	if err != nil {
		return err
	}
	packets, err := readPackets(*in)
	if err != nil {
		return err
	}
	for _, t := range targets {
		st, err := askAll(t.addr, packets)
		if err != nil {
			return fmt.Errorf("%s: %v", t.name, err)
		}
		mean := 0
		if st.answers > 0 {
			mean = st.bytes / st.answers
		}
		fmt.Printf("sizes %s answers %d tc %d over1232 %d max %d mean %d lost %d\n",
			t.name, st.answers, st.tc, st.over, st.max, mean, st.lost)
	}
	return nil
}

// readPackets reads a file in dnsperf's -B format: each packet after its
// length in two bytes.
func readPackets(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%s: truncated length", path)
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n || n < 12 {
			return nil, fmt.Errorf("%s: packet %d truncated", path, len(out))
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

// sizeStats sums up the answers to a query file.
type sizeStats struct {
	answers, tc, over, max, bytes, lost int
}

// askAll sends every packet once (once more if no answer comes within
// 2 s) from sizeWorkers sockets, each waiting for its answer before it
// sends the next, and sums up the answers' sizes and TC bits.
func askAll(addr string, packets [][]byte) (sizeStats, error) {
	var next atomic.Int64
	results := make([]sizeStats, sizeWorkers)
	errs := make([]error, sizeWorkers)
	var wg sync.WaitGroup
	for w := range sizeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", addr)
			if err != nil {
				errs[w] = err
				return
			}
			defer conn.Close()
			st := &results[w]
			buf := make([]byte, 65535)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(packets)) {
					return
				}
				n, err := exchange(conn, packets[i], buf)
				if err != nil {
					errs[w] = err
					return
				}
				if n == 0 {
					st.lost++
					continue
				}
				st.answers++
				st.bytes += n
				st.max = max(st.max, n)
				if n > 1232 {
					st.over++
				}
				if buf[2]&0x02 != 0 { // TC
					st.tc++
				}
			}
		}()
	}
	wg.Wait()
	var sum sizeStats
	for w, st := range results {
		if errs[w] != nil {
			return sum, errs[w]
		}
		sum.answers += st.answers
		sum.tc += st.tc
		sum.over += st.over
		sum.bytes += st.bytes
		sum.lost += st.lost
		sum.max = max(sum.max, st.max)
	}
	return sum, nil
}

// exchange sends a query on a connected socket and reads its answer into
// buf: its length, or 0 when none came in two tries of 2 s. Answers to
// earlier queries that come late (another ID) are skipped.
func exchange(conn net.Conn, q, buf []byte) (int, error) {
	for range 2 {
		if _, err := conn.Write(q); err != nil {
			return 0, err
		}
		if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			return 0, err
		}
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return 0, err
			}
			if n >= 12 && buf[0] == q[0] && buf[1] == q[1] {
				return n, nil
			}
		}
	}
	return 0, nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// probe asks addr once (twice for a sticky name) and says how the answer
// differs from want; "" when it does not.
// With do, the query carries the DO bit and the answer must verify with
// keys.
func probe(addr, name, ecs, want string, do bool, keys []*dns.DNSKEY) string {
	q := query{name: name, do: do}
	if ecs != "-" {
		p, err := netip.ParsePrefix(ecs)
		if err != nil {
			return err.Error()
		}
		q.ecs = p
	}
	ask := func() (*dns.Msg, error) {
		b, err := pack(q, uint16(rand.Uint32()))
		if err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return nil, err
		}
		c := &dns.Client{Timeout: 2 * time.Second}
		var r *dns.Msg
		for range 3 {
			if r, _, err = c.Exchange(m, addr); err == nil {
				return r, nil
			}
		}
		return nil, err
	}
	r, err := ask()
	if err != nil {
		return fmt.Sprintf("%s (ECS %s): %v", name, ecs, err)
	}
	got := answerOf(r)
	what := fmt.Sprintf("%s (ECS %s): %s, want %s", name, ecs, got, want)
	switch {
	case want == "NXDOMAIN":
		if r.Rcode != dns.RcodeNameError {
			return what
		}
	case r.Rcode != dns.RcodeSuccess:
		return what
	case strings.HasPrefix(want, "ONEOF:"):
		if !slices.Contains(strings.Split(strings.TrimPrefix(want, "ONEOF:"), ","), got) {
			return what
		}
		r2, err := ask()
		if err != nil {
			return fmt.Sprintf("%s (ECS %s): %v", name, ecs, err)
		}
		if again := answerOf(r2); again != got {
			return fmt.Sprintf("%s (ECS %s): %s, then %s: not sticky", name, ecs, got, again)
		}
	default:
		if got != want {
			return what
		}
	}
	if do {
		if why := verifySigned(r, keys); why != "" {
			return fmt.Sprintf("%s (ECS %s): %s", name, ecs, why)
		}
	}
	return ""
}

// answerOf sums an answer up as expect writes it: "CNAME>" before the
// address of a chain, the address; "CNAME>" alone for a CNAME whose
// target was not followed.
func answerOf(r *dns.Msg) string {
	if r.Rcode == dns.RcodeNameError {
		return "NXDOMAIN"
	}
	var parts []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.CNAME:
			parts = append(parts, "CNAME>")
		case *dns.A:
			parts = append(parts, rr.A.String())
		}
	}
	if len(parts) == 0 {
		return dns.RcodeToString[r.Rcode] + "/empty"
	}
	return strings.Join(parts, "")
}
