package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// Dialer opens the connections of checks; net.Dialer's DialContext is the
// default.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Result is the outcome of one check.
type Result struct {
	OK bool
	// Reason says why a failed check failed.
	Reason string
	// RTT is the time to the answer: the response headers (http, https)
	// or the established connection (tcp).
	RTT time.Duration
	// Load and Capacity are what the endpoint reported in a JSON answer
	// (docs/health.md); nil when it did not.
	Load, Capacity *float64
}

// spec is one VIP's check, compiled: what a target runs. Two specs with
// the same key run the same check.
type spec struct {
	kind       string // http, https, tcp
	addr       string // host:port the check connects to
	url        string // http(s): the request URL
	host       string // http(s): Host header and TLS server name ("" : addr's host)
	expect     regions.StatusRanges
	body       string
	skipVerify bool
	interval   time.Duration
	timeout    time.Duration
	rise, fall int
	// stats and passive: the region's stats source for this VIP and its
	// passive check (nil: none).
	stats   *statsSpec
	passive *passiveSpec
}

// newSpec compiles region r's check for vip.
func newSpec(c regions.HealthCheck, vip netip.Addr) spec {
	c = c.WithDefaults()
	s := spec{
		kind: c.Type, addr: c.Target(vip), host: c.Host, expect: c.Expect, body: c.Body, skipVerify: c.TLSSkipVerify,
		interval: time.Duration(c.Interval), timeout: time.Duration(c.Timeout), rise: c.Rise, fall: c.Fall,
	}
	if s.kind != "tcp" {
		s.url = s.kind + "://" + s.addr + c.Path
	}
	s.stats, s.passive = newStatsSpec(c, vip), newPassiveSpec(c)
	return s
}

func (s spec) key() string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%q|%t|%s|%s|%d|%d|%s|%s", s.kind, s.addr, s.url, s.host, s.expect, s.body, s.skipVerify, s.interval, s.timeout, s.rise, s.fall,
		s.stats.key(), s.passive.key())
}

// checker runs one spec; safe for one goroutine at a time.
type checker struct {
	spec   spec
	dial   Dialer
	client *http.Client // http(s)
	agent  string
}

func newChecker(s spec, dial Dialer, agent string) *checker {
	c := &checker{spec: s, dial: dial, agent: agent}
	if s.kind == "tcp" {
		return c
	}
	c.client = newHTTPClient(dial, s.host, s.skipVerify)
	return c
}

// newHTTPClient is the client of http(s) checks and stats pages: direct,
// a new connection each time, redirects not followed. serverName ""
// verifies the URL's host.
func newHTTPClient(dial Dialer, serverName string, skipVerify bool) *http.Client {
	tr := &http.Transport{
		Proxy:       nil, // a check goes to the endpoint, never through a proxy
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			ServerName:         serverName, // "" : the transport uses the URL's host
			InsecureSkipVerify: skipVerify,
			MinVersion:         tls.VersionTLS12,
		},
		// A new connection per check: a check sees what a new client
		// sees (accept, handshake), and nothing lingers between checks.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		// A redirect is an answer: its status is judged, never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// run checks once; it never takes longer than the spec's timeout.
func (c *checker) run(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.spec.timeout)
	defer cancel()
	start := time.Now()
	if c.spec.kind == "tcp" {
		conn, err := c.dial(ctx, "tcp", c.spec.addr)
		if err != nil {
			return c.fail(ctx, "connecting", err)
		}
		rtt := time.Since(start)
		conn.Close()
		return Result{OK: true, RTT: rtt}
	}
	// stage says how far the request got, for the reason of a timeout.
	var stage atomic.Value
	stage.Store("connecting")
	trace := &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err == nil && c.spec.kind == "https" {
				stage.Store("in the TLS handshake")
			}
		},
		GotConn:              func(httptrace.GotConnInfo) { stage.Store("sending the request") },
		WroteRequest:         func(httptrace.WroteRequestInfo) { stage.Store("waiting for the answer") },
		GotFirstResponseByte: func() { stage.Store("reading the answer") },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, c.spec.url, nil)
	if err != nil {
		return Result{Reason: "bad check URL: " + err.Error()}
	}
	if c.spec.host != "" {
		req.Host = c.spec.host
	}
	req.Header.Set("User-Agent", c.agent)
	req.Header.Set("Accept", "application/json, */*")
	resp, err := c.client.Do(req)
	if err != nil {
		return c.fail(ctx, stage.Load().(string), err)
	}
	defer resp.Body.Close()
	rtt := time.Since(start)
	if !c.spec.expect.Contains(resp.StatusCode) {
		return Result{RTT: rtt, Reason: fmt.Sprintf("status %d, want %s", resp.StatusCode, c.spec.expect)}
	}
	res := Result{OK: true, RTT: rtt}
	isJSON := jsonContent(resp.Header.Get("Content-Type"))
	if c.spec.body == "" && !isJSON {
		return res
	}
	stage.Store("reading the body")
	data, err := io.ReadAll(io.LimitReader(resp.Body, regions.MaxCheckBody))
	if c.spec.body != "" {
		switch {
		case err != nil:
			return c.fail(ctx, stage.Load().(string), err)
		case !bytes.Contains(data, []byte(c.spec.body)):
			return Result{RTT: rtt, Reason: fmt.Sprintf("body: no %q in the first %d bytes", truncate(c.spec.body, 64), len(data))}
		}
	}
	if err == nil && isJSON {
		res.Load, res.Capacity = parseLoad(data)
	}
	return res
}

// fail turns an error into a failed result with a short reason.
func (c *checker) fail(ctx context.Context, stage string, err error) Result {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Result{Reason: fmt.Sprintf("timeout after %s %s", c.spec.timeout, stage)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return Result{Reason: truncate(err.Error(), 200)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func jsonContent(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// parseLoad reads {"load": L, "capacity": C} (other fields are ignored);
// a value that is missing, not a number, negative or not finite is nil.
func parseLoad(data []byte) (load, capacity *float64) {
	var v struct {
		Load     json.RawMessage `json:"load"`
		Capacity json.RawMessage `json:"capacity"`
	}
	if json.Unmarshal(data, &v) != nil {
		return nil, nil
	}
	num := func(raw json.RawMessage) *float64 {
		if len(raw) == 0 {
			return nil
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil
		}
		return &f
	}
	return num(v.Load), num(v.Capacity)
}

// canarySpec compiles a canary: a URL (http or https GET, answered with a
// status of 200-399) or a host:port (a TCP connection).
func canarySpec(c Canary) (spec, error) {
	s := spec{interval: c.Interval, timeout: c.Timeout, expect: regions.DefaultExpect, rise: 2, fall: 1}
	switch {
	case c.URL != "" && c.Address != "":
		return spec{}, errors.New("a canary is a url or an address, not both")
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return spec{}, fmt.Errorf("%q: want an http:// or https:// URL", c.URL)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		s.kind, s.url, s.addr = u.Scheme, u.String(), net.JoinHostPort(u.Hostname(), port)
	case c.Address != "":
		host, port, err := net.SplitHostPort(c.Address)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return spec{}, fmt.Errorf("%q: want host:port", c.Address)
		}
		s.kind, s.addr = "tcp", c.Address
	default:
		return spec{}, errors.New("no canary")
	}
	return s, nil
}
