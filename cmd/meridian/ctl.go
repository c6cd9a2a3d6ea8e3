package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

const ctlUsage = `meridian ctl — the command-line client of Meridian's HTTP API

Usage:
  meridian ctl [FLAGS] COMMAND ...

Commands:
  apply -f FILE [--dry-run]               create or update the regions and services of a state file; prints the diff
  get regions|services|status             list regions, services, or the health and weights of everything
  weights get SERVICE                     a service's weights and expected shares
  weights set SERVICE REGION=N... [--replace] [--dry-run]
                                          change the weights named (--replace: every other region gets 0)
  drain REGION [--dry-run]                take a region out of every answer
  undrain REGION [--dry-run]              answer a region again by its weights
  explain NAME [--client IP[/LEN]] [--type A|AAAA]
                                          the decision a DNS query would get now, step by step
  latency import FILE [--dry-run]         replace the latency table (CSV: cidr,region,rtt_ms)
  audit [--limit N] [--after ID]          the audit log, newest first
  state accept-empty                      serve the empty state from etcd this server refuses
                                          (etcd is meant to hold no regions and no services)

Flags (anywhere on the line):
  --server URL        the API (default $MERIDIAN_SERVER or http://127.0.0.1:8053)
  --token TOKEN       bearer token (default $MERIDIAN_TOKEN)
  --token-file FILE   file holding the token (default $MERIDIAN_TOKEN_FILE, or data/admin.token when present)
  -o table|json       output: human tables (default) or the API's JSON
  --timeout DURATION  bound on each request (default 30s)
`

// ctlFlags are the flags every ctl command takes.
type ctlFlags struct {
	server, token, tokenFile, output string
	timeout                          time.Duration
}

func (g *ctlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "", "API base URL")
	fs.StringVar(&g.token, "token", "", "bearer token")
	fs.StringVar(&g.tokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&g.output, "o", "table", "output: table or json")
	fs.StringVar(&g.output, "output", "table", "output: table or json")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "bound on each request")
}

// errUsage marks a command line that cannot be run; the message says why.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usagef(format string, args ...any) error { return errUsage{fmt.Sprintf(format, args...)} }

func runCtl(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, ctlUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	err := ctlCommand(ctx, args, stdout)
	var ue errUsage
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "meridian ctl: %s (see meridian ctl --help)\n", oneLine(ue.msg))
		return 2
	default:
		fmt.Fprintf(stderr, "meridian ctl: %s\n", oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// parseInterspersed parses flags found anywhere among args and returns
// the other arguments in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func ctlCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var g ctlFlags
	fs := flag.NewFlagSet("meridian ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	file := fs.String("f", "", "state file (apply)")
	fs.StringVar(file, "file", "", "state file (apply)")
	dryRun := fs.Bool("dry-run", false, "say what would change, change nothing")
	replace := fs.Bool("replace", false, "weights set: every region not named gets 0")
	client := fs.String("client", "", "explain: the client address or prefix")
	qtype := fs.String("type", "A", "explain: A or AAAA")
	limit := fs.Int("limit", 50, "audit: records per page")
	after := fs.String("after", "", "audit: the cursor of the next page")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if g.output != "table" && g.output != "json" {
		return usagef("-o %q: want table or json", g.output)
	}
	c, err := newCtlClient(g)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("no command")
	}
	cmd, rest := pos[0], pos[1:]
	want := func(n int, what string) error {
		if len(rest) != n {
			return usagef("%s: want %s", cmd, what)
		}
		return nil
	}
	out := &ctlOut{w: stdout, json: g.output == "json"}
	switch cmd {
	case "apply":
		if *file == "" || len(rest) != 0 {
			return usagef("apply: want -f FILE")
		}
		return c.apply(ctx, out, *file, *dryRun)
	case "get":
		if err := want(1, "regions, services or status"); err != nil {
			return err
		}
		return c.get(ctx, out, rest[0])
	case "weights":
		if len(rest) >= 2 && rest[0] == "get" && len(rest) == 2 {
			return c.weightsGet(ctx, out, rest[1])
		}
		if len(rest) >= 3 && rest[0] == "set" {
			return c.weightsSet(ctx, out, rest[1], rest[2:], *replace, *dryRun)
		}
		return usagef("weights: want get SERVICE, or set SERVICE REGION=WEIGHT...")
	case "drain", "undrain":
		if err := want(1, "a region name"); err != nil {
			return err
		}
		return c.drain(ctx, out, rest[0], cmd == "drain", *dryRun)
	case "explain":
		if err := want(1, "a service name"); err != nil {
			return err
		}
		return c.explain(ctx, out, rest[0], *client, *qtype)
	case "latency":
		if len(rest) != 2 || rest[0] != "import" {
			return usagef("latency: want import FILE")
		}
		return c.latencyImport(ctx, out, rest[1], *dryRun)
	case "audit":
		if err := want(0, "no arguments"); err != nil {
			return err
		}
		return c.audit(ctx, out, *limit, *after)
	case "state":
		if len(rest) != 1 || rest[0] != "accept-empty" {
			return usagef("state: want accept-empty")
		}
		return c.acceptEmpty(ctx, out)
	}
	return usagef("unknown command %q", cmd)
}

// show ends a command with -o json, printing the API's answer as it came,
// or with the call's error: done says the command is over. Otherwise the
// caller prints the answer as a table.
func (out *ctlOut) show(body []byte, _ http.Header, err error) (done bool, _ error) {
	if err != nil {
		return true, err
	}
	if out.json {
		out.raw(body)
		return true, nil
	}
	return false, nil
}

// ctlClient calls the API.
type ctlClient struct {
	base    *url.URL
	token   string
	timeout time.Duration
	http    *http.Client
}

func newCtlClient(g ctlFlags) (*ctlClient, error) {
	server := firstOf(g.server, os.Getenv("MERIDIAN_SERVER"), "http://127.0.0.1:8053")
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(strings.TrimSuffix(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: want a URL like http://127.0.0.1:8053", server)
	}
	token, err := ctlToken(g)
	if err != nil {
		return nil, err
	}
	return &ctlClient{base: u, token: token, timeout: g.timeout, http: &http.Client{}}, nil
}

// ctlToken finds the token: --token, --token-file, $MERIDIAN_TOKEN,
// $MERIDIAN_TOKEN_FILE, then data/admin.token when present (what `make
// run` writes); none is not an error (reads may be open).
func ctlToken(g ctlFlags) (string, error) {
	if g.token != "" {
		return g.token, nil
	}
	file := g.tokenFile
	if file == "" {
		if t := os.Getenv("MERIDIAN_TOKEN"); t != "" {
			return t, nil
		}
		file = os.Getenv("MERIDIAN_TOKEN_FILE")
	}
	if file == "" {
		if _, err := os.Stat("data/admin.token"); err != nil {
			return "", nil
		}
		file = "data/admin.token"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", file)
	}
	return t, nil
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// apiError is a problem document from the API, in one line.
type apiError struct {
	status  int
	problem struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%d %s", e.status, firstOf(e.problem.Title, http.StatusText(e.status)))
	var parts []string
	for _, fe := range e.problem.Errors {
		if fe.Field != "" {
			parts = append(parts, fe.Field+": "+fe.Message)
		} else {
			parts = append(parts, fe.Message)
		}
	}
	switch {
	case len(parts) > 0:
		msg += ": " + strings.Join(parts, "; ")
	case e.problem.Detail != "":
		msg += ": " + e.problem.Detail
	}
	return msg
}

// call makes one request; out (may be nil) receives the JSON answer. It
// returns the raw body and the response headers.
func (c *ctlClient) call(ctx context.Context, method, path string, query url.Values, hdr map[string]string, body io.Reader, out any) ([]byte, http.Header, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, nil, err
	}
	if f, ok := body.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			req.ContentLength = st.Size()
		}
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil, fmt.Errorf("the Meridian API at %s did not answer within %v", c.base, c.timeout)
		}
		return nil, nil, fmt.Errorf("cannot reach the Meridian API at %s (is the server running? --server or MERIDIAN_SERVER say where): %v", c.base, rootCause(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		e := &apiError{status: resp.StatusCode}
		if json.Unmarshal(b, &e.problem) != nil {
			e.problem.Detail = strings.TrimSpace(string(b))
		}
		return b, resp.Header, e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return b, resp.Header, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return b, resp.Header, nil
}

// rootCause is the innermost error: "connect: connection refused" rather
// than the whole chain of the URL and the operation.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status
	}
	return 0
}

// ctlOut prints tables, or the API's JSON with -o json.
type ctlOut struct {
	w    io.Writer
	json bool
}

func (o *ctlOut) raw(b []byte) {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		buf.Reset()
		buf.Write(b)
	}
	fmt.Fprintln(o.w, strings.TrimSpace(buf.String()))
}

func (o *ctlOut) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// change is the API's answer to a write.
type change struct {
	Kind          string                    `json:"kind"`
	Name          string                    `json:"name"`
	Action        string                    `json:"action"`
	Before        json.RawMessage           `json:"before"`
	After         json.RawMessage           `json:"after"`
	Changed       bool                      `json:"changed"`
	DryRun        bool                      `json:"dry_run"`
	Revision      int64                     `json:"revision"`
	ExpectedShare map[string]regions.Shares `json:"expected_share"`
	Entries       int                       `json:"entries"`
}

// printChange says what a write did, with the diff of the object.
func printChange(w io.Writer, ch *change) {
	verb := map[bool]string{true: "would be", false: ""}[ch.DryRun]
	what := ch.Kind + " " + ch.Name
	switch {
	case !ch.Changed:
		fmt.Fprintf(w, "%s unchanged\n", what)
		return
	case isNull(ch.Before):
		fmt.Fprintf(w, "+ %s %s\n", what, strings.TrimSpace(verb+" created"))
	case isNull(ch.After):
		fmt.Fprintf(w, "- %s %s\n", what, strings.TrimSpace(verb+" deleted"))
	default:
		fmt.Fprintf(w, "~ %s %s (%s)\n", what, strings.TrimSpace(verb+" changed"), ch.Action)
	}
	for _, l := range jsonDiff(ch.Before, ch.After) {
		fmt.Fprintln(w, "    "+l)
	}
	if !ch.DryRun && ch.Revision > 0 {
		fmt.Fprintf(w, "    revision %d\n", ch.Revision)
	}
}

func isNull(b json.RawMessage) bool { return len(b) == 0 || string(b) == "null" }

// jsonDiff is a line diff of two JSON values, indented: changed lines
// marked - and +, with a line of context around them.
func jsonDiff(a, b json.RawMessage) []string {
	lines := func(r json.RawMessage) []string {
		if isNull(r) {
			return nil
		}
		var buf bytes.Buffer
		if json.Indent(&buf, r, "", "  ") != nil {
			return []string{string(r)}
		}
		return strings.Split(buf.String(), "\n")
	}
	x, y := lines(a), lines(b)
	// Longest common subsequence; objects are small.
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		mark byte
		text string
	}
	var all []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			all = append(all, line{' ', x[i]})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, line{'-', x[i]})
			i++
		default:
			all = append(all, line{'+', y[j]})
			j++
		}
	}
	var out []string
	near := func(k int) bool {
		for d := -1; d <= 1; d++ {
			if k+d >= 0 && k+d < len(all) && all[k+d].mark != ' ' {
				return true
			}
		}
		return false
	}
	skipped := false
	for k, l := range all {
		if l.mark == ' ' && !near(k) {
			if !skipped {
				out = append(out, "  …")
			}
			skipped = true
			continue
		}
		skipped = false
		out = append(out, string(l.mark)+" "+l.text)
	}
	return out
}

// apply makes the regions and services of a state file exist as written:
// each region is read, compared, and created (If-None-Match: *) or
// replaced (If-Match: its revision) only when it differs; a region drained
// through the API stays drained unless the file says drained: true or the
// region is undrained. The services are read in one listing, and the ones
// that differ are written in batches (POST /v1/services, one or more etcd
// transactions each), with a progress line per batch. Objects the file
// does not name are left alone.
func (c *ctlClient) apply(ctx context.Context, out *ctlOut, file string, dryRun bool) error {
	d, err := regions.LoadDesired(file)
	if err != nil {
		return err
	}
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	var results []json.RawMessage
	created, changed, same := 0, 0, 0
	count := func(ch *change) {
		switch {
		case !ch.Changed:
			same++
		case isNull(ch.Before):
			created++
		default:
			changed++
		}
	}
	for _, r := range d.Regions {
		path := "/v1/regions/" + url.PathEscape(r.Name)
		raw, hdr, err := c.call(ctx, "GET", path, nil, nil, nil, nil)
		cond := map[string]string{}
		switch {
		case statusOf(err) == http.StatusNotFound:
			cond["If-None-Match"] = "*"
		case err != nil:
			return fmt.Errorf("region %s: %w", r.Name, err)
		default:
			cond["If-Match"] = hdr.Get("ETag")
			if !r.Drained {
				var cur regions.Region
				if json.Unmarshal(raw, &cur) == nil {
					r.Drained = cur.Drained
				}
			}
			if sameObject(raw, r) {
				same++
				if !out.json {
					fmt.Fprintf(out.w, "  region %s unchanged\n", r.Name)
				}
				continue
			}
		}
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		var ch change
		b, _, err := c.call(ctx, "PUT", path, q, cond, bytes.NewReader(body), &ch)
		if err != nil {
			return fmt.Errorf("region %s: %w", r.Name, err)
		}
		results = append(results, b)
		count(&ch)
		if !out.json {
			printChange(out.w, &ch)
		}
	}

	// The services as they are, in one listing.
	var listed struct {
		Services []json.RawMessage `json:"services"`
	}
	if len(d.Services) > 0 {
		if _, _, err := c.call(ctx, "GET", "/v1/services", nil, nil, nil, &listed); err != nil {
			return fmt.Errorf("services: %w", err)
		}
	}
	current := make(map[string]json.RawMessage, len(listed.Services))
	for _, raw := range listed.Services {
		var id struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &id) == nil {
			current[regions.CanonicalName(id.Name)] = raw
		}
	}
	var todo []*regions.Service
	for _, svc := range d.Services {
		svc.Name = regions.CanonicalName(svc.Name)
		if raw, ok := current[svc.Name]; ok && sameObject(raw, svc) {
			same++
			if !out.json {
				fmt.Fprintf(out.w, "  service %s unchanged\n", svc.Name)
			}
			continue
		}
		todo = append(todo, svc)
	}
	for done := 0; done < len(todo); {
		n, size := 0, 0
		for done+n < len(todo) && n < applyBatchServices {
			b, err := json.Marshal(todo[done+n])
			if err != nil {
				return err
			}
			if n > 0 && size+len(b) > applyBatchBytes {
				break
			}
			size += len(b) + 1
			n++
		}
		body, err := json.Marshal(map[string]any{"services": todo[done : done+n]})
		if err != nil {
			return err
		}
		var br struct {
			Changes []json.RawMessage `json:"changes"`
		}
		if _, _, err := c.call(ctx, "POST", "/v1/services", q, nil, bytes.NewReader(body), &br); err != nil {
			return fmt.Errorf("services %s to %s: %w", todo[done].Name, todo[done+n-1].Name, err)
		}
		for _, raw := range br.Changes {
			var ch change
			if err := json.Unmarshal(raw, &ch); err != nil {
				return fmt.Errorf("services: %w", err)
			}
			results = append(results, raw)
			count(&ch)
			if !out.json {
				printChange(out.w, &ch)
			}
		}
		done += n
		if !out.json && len(todo) > n {
			fmt.Fprintf(out.w, "services: %d of %d written\n", done, len(todo))
		}
	}
	if out.json {
		if results == nil {
			results = []json.RawMessage{}
		}
		b, _ := json.Marshal(map[string]any{"dry_run": dryRun, "changes": results, "unchanged": same})
		out.raw(b)
		return nil
	}
	switch {
	case created+changed == 0:
		fmt.Fprintf(out.w, "no changes (%d unchanged)\n", same)
	case dryRun:
		fmt.Fprintf(out.w, "dry run: %d would be created, %d changed, %d unchanged; nothing was written\n", created, changed, same)
	default:
		fmt.Fprintf(out.w, "%d created, %d changed, %d unchanged\n", created, changed, same)
	}
	return nil
}

// One POST /v1/services of ctl apply: at most this many services and
// about this many bytes, well below the API's body limit (1 MiB by
// default) and its 1,000 services.
const (
	applyBatchServices = 500
	applyBatchBytes    = 512 << 10
)

// sameObject says whether the API's JSON of an object equals want's.
func sameObject(raw []byte, want any) bool {
	var cur any
	switch want.(type) {
	case *regions.Region:
		cur = new(regions.Region)
	case *regions.Service:
		cur = new(regions.Service)
	}
	if json.Unmarshal(raw, cur) != nil {
		return false
	}
	a, err1 := json.Marshal(cur)
	b, err2 := json.Marshal(want)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// status is the part of GET /v1/status that the tables show.
type ctlStatus struct {
	Revision int64 `json:"revision"`
	Snapshot *struct {
		Source     string   `json:"source"`
		AgeSeconds float64  `json:"age_seconds"`
		Problems   []string `json:"problems"`
	} `json:"snapshot"`
	Regions []struct {
		Name    string `json:"name"`
		Status  string `json:"status"`
		Drained bool   `json:"drained"`
		Healthy int    `json:"healthy"`
		VIPs    []struct {
			Addr   string `json:"addr"`
			Status string `json:"status"`
			Up     int    `json:"up"`
			Down   int    `json:"down"`
		} `json:"vips"`
		Answers uint64 `json:"answers"`
	} `json:"regions"`
	Services []struct {
		Name    string `json:"name"`
		Policy  string `json:"policy"`
		Regions []struct {
			Region string `json:"region"`
			Weight uint32 `json:"weight"`
		} `json:"regions"`
		ExpectedShare map[string]regions.Shares `json:"expected_share"`
	} `json:"services"`
}

func (c *ctlClient) get(ctx context.Context, out *ctlOut, what string) error {
	switch what {
	case "regions", "region":
		var l struct {
			Regions []*regions.Region `json:"regions"`
		}
		if done, err := out.show(c.call(ctx, "GET", "/v1/regions", nil, nil, nil, &l)); done {
			return err
		}
		var rows [][]string
		for _, r := range l.Regions {
			var vips []string
			for _, a := range r.VIPs {
				vips = append(vips, a.String())
			}
			loc := fmt.Sprintf("%.2f,%.2f %s", r.Location.Lat, r.Location.Lon, r.Location.Country)
			rows = append(rows, []string{r.Name, strings.Join(vips, ","), strings.TrimSpace(loc), r.Check.Type + "/" + strconv.Itoa(r.Check.Port), yesNo(r.Drained)})
		}
		out.table("REGION\tVIPS\tLOCATION\tCHECK\tDRAINED", rows)
	case "services", "service":
		var l struct {
			Services []*regions.Service `json:"services"`
		}
		if done, err := out.show(c.call(ctx, "GET", "/v1/services", nil, nil, nil, &l)); done {
			return err
		}
		var rows [][]string
		for _, s := range l.Services {
			rows = append(rows, []string{s.Name, string(s.Policy), strconv.Itoa(int(s.TTL)), weightList(s)})
		}
		out.table("SERVICE\tPOLICY\tTTL\tWEIGHTS", rows)
	case "status":
		var st ctlStatus
		if done, err := out.show(c.call(ctx, "GET", "/v1/status", nil, nil, nil, &st)); done {
			return err
		}
		if st.Snapshot == nil {
			fmt.Fprintln(out.w, "no regions snapshot yet")
			return nil
		}
		fmt.Fprintf(out.w, "snapshot revision %d from %s, %.1fs old\n", st.Revision, st.Snapshot.Source, st.Snapshot.AgeSeconds)
		for _, p := range st.Snapshot.Problems {
			fmt.Fprintf(out.w, "problem: %s\n", p)
		}
		fmt.Fprintln(out.w)
		var rows [][]string
		for _, r := range st.Regions {
			var vips []string
			for _, v := range r.VIPs {
				vips = append(vips, fmt.Sprintf("%s %s (%d up/%d down)", v.Addr, v.Status, v.Up, v.Down))
			}
			rows = append(rows, []string{r.Name, r.Status, yesNo(r.Drained), fmt.Sprintf("%d/%d", r.Healthy, len(r.VIPs)), strconv.FormatUint(r.Answers, 10), strings.Join(vips, "; ")})
		}
		out.table("REGION\tSTATUS\tDRAINED\tHEALTHY\tANSWERS\tVIPS (VOTES)", rows)
		fmt.Fprintln(out.w)
		rows = nil
		for _, s := range st.Services {
			var ws []string
			for _, r := range s.Regions {
				ws = append(ws, fmt.Sprintf("%s=%d", r.Region, r.Weight))
			}
			share := shareList(s.ExpectedShare["ipv4"])
			if s.Policy != string(regions.PolicyWeighted) && s.Policy != string(regions.PolicyFailover) {
				share = "by the client's place"
			}
			rows = append(rows, []string{s.Name, s.Policy, strings.Join(ws, " "), share})
		}
		out.table("SERVICE\tPOLICY\tWEIGHTS\tEXPECTED SHARE (IPv4)", rows)
	default:
		return usagef("get %q: want regions, services or status", what)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func weightList(s *regions.Service) string {
	var ws []string
	for _, r := range s.Regions {
		ws = append(ws, fmt.Sprintf("%s=%d", r.Region, r.Weight))
	}
	return strings.Join(ws, " ")
}

func shareList(sh regions.Shares) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(sh.Regions)) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", r, 100*sh.Regions[r]))
	}
	return strings.Join(parts, ", ")
}

func servicePath(name string) string {
	return "/v1/services/" + url.PathEscape(regions.CanonicalName(name))
}

func (c *ctlClient) weightsGet(ctx context.Context, out *ctlOut, service string) error {
	var wr struct {
		Service       string                    `json:"service"`
		Revision      int64                     `json:"revision"`
		Weights       map[string]uint32         `json:"weights"`
		ExpectedShare map[string]regions.Shares `json:"expected_share"`
	}
	if done, err := out.show(c.call(ctx, "GET", servicePath(service)+"/weights", nil, nil, nil, &wr)); done {
		return err
	}
	var rows [][]string
	for _, r := range slices.Sorted(maps.Keys(wr.Weights)) {
		rows = append(rows, []string{r, strconv.Itoa(int(wr.Weights[r])), pct(wr.ExpectedShare["ipv4"], r), pct(wr.ExpectedShare["ipv6"], r)})
	}
	fmt.Fprintf(out.w, "%s (revision %d)\n", wr.Service, wr.Revision)
	out.table("REGION\tWEIGHT\tSHARE IPv4\tSHARE IPv6", rows)
	if sh, ok := wr.ExpectedShare["ipv4"]; ok {
		fmt.Fprintf(out.w, "shares: %s\n", sh.Basis)
	}
	return nil
}

func pct(sh regions.Shares, region string) string {
	v, ok := sh.Regions[region]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func (c *ctlClient) weightsSet(ctx context.Context, out *ctlOut, service string, pairs []string, replace, dryRun bool) error {
	ws := map[string]uint32{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || k == "" || err != nil {
			return usagef("weights set: %q: want REGION=WEIGHT with a whole number of 0 or more", p)
		}
		if _, dup := ws[k]; dup {
			return usagef("weights set: region %q given twice", k)
		}
		ws[k] = uint32(n)
	}
	body, _ := json.Marshal(map[string]any{"weights": ws})
	method := "PATCH"
	if replace {
		method = "PUT"
	}
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	var ch change
	if done, err := out.show(c.call(ctx, method, servicePath(service)+"/weights", q, nil, bytes.NewReader(body), &ch)); done {
		return err
	}
	printWeightsChange(out, &ch)
	return nil
}

// printWeightsChange shows each region's weight before and after, and the
// shares to expect.
func printWeightsChange(out *ctlOut, ch *change) {
	var before, after regions.Service
	_ = json.Unmarshal(ch.Before, &before)
	_ = json.Unmarshal(ch.After, &after)
	old := map[string]uint32{}
	for _, r := range before.Regions {
		old[r.Region] = r.Weight
	}
	switch {
	case !ch.Changed:
		fmt.Fprintf(out.w, "%s: weights unchanged\n", ch.Name)
	case ch.DryRun:
		fmt.Fprintf(out.w, "%s: dry run, nothing written\n", ch.Name)
	default:
		fmt.Fprintf(out.w, "%s: weights changed (revision %d)\n", ch.Name, ch.Revision)
	}
	var rows [][]string
	for _, r := range after.Regions {
		w := strconv.Itoa(int(r.Weight))
		if old[r.Region] != r.Weight {
			w = fmt.Sprintf("%d -> %d", old[r.Region], r.Weight)
		}
		rows = append(rows, []string{r.Region, w, pct(ch.ExpectedShare["ipv4"], r.Region), pct(ch.ExpectedShare["ipv6"], r.Region)})
	}
	out.table("REGION\tWEIGHT\tSHARE IPv4\tSHARE IPv6", rows)
}

func (c *ctlClient) drain(ctx context.Context, out *ctlOut, region string, drained, dryRun bool) error {
	verb := "undrain"
	if drained {
		verb = "drain"
	}
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	var ch change
	if done, err := out.show(c.call(ctx, "POST", "/v1/regions/"+url.PathEscape(region)+"/"+verb, q, nil, nil, &ch)); done {
		return err
	}
	switch {
	case !ch.Changed:
		fmt.Fprintf(out.w, "region %s was already %sed\n", region, verb)
	case ch.DryRun:
		fmt.Fprintf(out.w, "region %s would be %sed (dry run)\n", region, verb)
	default:
		fmt.Fprintf(out.w, "region %s %sed (revision %d)\n", region, verb, ch.Revision)
	}
	return nil
}

// acceptEmpty confirms, to the server it talks to, that etcd is meant to
// be empty.
func (c *ctlClient) acceptEmpty(ctx context.Context, out *ctlOut) error {
	if done, err := out.show(c.call(ctx, "POST", "/v1/state/accept-empty", nil, nil, nil, nil)); done {
		return err
	}
	fmt.Fprintf(out.w, "%s now serves the empty state from etcd\n", c.base.Host)
	return nil
}

func (c *ctlClient) explain(ctx context.Context, out *ctlOut, name, client, qtype string) error {
	q := url.Values{"name": {name}, "type": {strings.ToUpper(qtype)}}
	if client != "" {
		q.Set("client", client)
	}
	var ex struct {
		Name        string `json:"name"`
		Type        string `json:"type"`
		Client      string `json:"client"`
		Revision    int64  `json:"revision"`
		Explanation struct {
			Steps []struct {
				Step       string `json:"step"`
				Candidates []struct {
					Region string `json:"region"`
					Kept   bool   `json:"kept"`
					Note   string `json:"note"`
				} `json:"candidates"`
				Result []string `json:"result"`
				Reason string   `json:"reason"`
			} `json:"steps"`
			Answer []string `json:"answer"`
			Reason string   `json:"reason"`
		} `json:"explanation"`
	}
	if done, err := out.show(c.call(ctx, "GET", "/v1/explain", q, nil, nil, &ex)); done {
		return err
	}
	fmt.Fprintf(out.w, "%s %s for %s (revision %d)\n", ex.Name, ex.Type, ex.Client, ex.Revision)
	for _, s := range ex.Explanation.Steps {
		fmt.Fprintf(out.w, "  %-10s %s", s.Step, s.Reason)
		if len(s.Result) > 0 {
			fmt.Fprintf(out.w, " → %s", strings.Join(s.Result, ", "))
		}
		fmt.Fprintln(out.w)
		for _, c := range s.Candidates {
			if c.Note != "" {
				mark := "-"
				if c.Kept {
					mark = "+"
				}
				fmt.Fprintf(out.w, "             %s %s: %s\n", mark, c.Region, c.Note)
			}
		}
	}
	fmt.Fprintf(out.w, "answer: %s\n", firstOf(strings.Join(ex.Explanation.Answer, " "), "(none)"))
	fmt.Fprintf(out.w, "        %s\n", ex.Explanation.Reason)
	return nil
}

func (c *ctlClient) latencyImport(ctx context.Context, out *ctlOut, file string, dryRun bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	q := url.Values{}
	if dryRun {
		q.Set("dry_run", "true")
	}
	var ch change
	if done, err := out.show(c.call(ctx, "PUT", "/v1/latency", q, map[string]string{"Content-Type": "text/csv"}, f, &ch)); done {
		return err
	}
	switch {
	case !ch.Changed:
		fmt.Fprintf(out.w, "latency table unchanged (%d entries)\n", ch.Entries)
	case ch.DryRun:
		fmt.Fprintf(out.w, "latency table of %d entries is valid (dry run, nothing written)\n", ch.Entries)
	default:
		fmt.Fprintf(out.w, "latency table of %d entries imported (revision %d)\n", ch.Entries, ch.Revision)
	}
	return nil
}

func (c *ctlClient) audit(ctx context.Context, out *ctlOut, limit int, after string) error {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	var page struct {
		Records []struct {
			ID       string    `json:"id"`
			Time     time.Time `json:"time"`
			Actor    string    `json:"actor"`
			Kind     string    `json:"kind"`
			Name     string    `json:"name"`
			Action   string    `json:"action"`
			Revision int64     `json:"revision"`
		} `json:"records"`
		Next string `json:"next"`
	}
	if done, err := out.show(c.call(ctx, "GET", "/v1/audit", q, nil, nil, &page)); done {
		return err
	}
	var rows [][]string
	for _, r := range page.Records {
		rows = append(rows, []string{r.Time.Local().Format(time.RFC3339), firstOf(r.Actor, "-"), r.Action, r.Kind, r.Name, strconv.FormatInt(r.Revision, 10)})
	}
	out.table("TIME\tBY\tACTION\tKIND\tNAME\tREVISION", rows)
	if page.Next != "" {
		fmt.Fprintf(out.w, "more: meridian ctl audit --after %s\n", page.Next)
	}
	return nil
}
