//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	apiclient "github.com/meridian-gslb/meridian/api/client"
)

// nameServer is one `meridian server` process: a host address of its own,
// the DNS port shared by all, its own data directory and config file.
type nameServer struct {
	name     string // ns1, ns2
	host     string
	dnsPort  int
	httpPort int
	dir      string
	config   string
	p        *proc
	// plainHTTP: the API has no api.tls, as make run's on loopback; the
	// guide's servers speak https.
	plainHTTP bool
}

func (s *nameServer) dnsAddr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.dnsPort)) }
func (s *nameServer) httpBase() string {
	scheme := "https://"
	if s.plainHTTP {
		scheme = "http://"
	}
	return scheme + net.JoinHostPort(s.host, strconv.Itoa(s.httpPort))
}
func (s *nameServer) dataDir() string { return filepath.Join(s.dir, "data") }

// serverConfig is deploy/meridian.yaml with this run's addresses, paths
// and certificates: the servers run the guide's configuration. They
// bootstrap the state file given (deploy/state.yaml with the suite's
// check addresses and timing).
func serverConfig(t testing.TB, s *nameServer, c *etcdCluster, geoip, cookieSecret, bootstrap string) []byte {
	t.Helper()
	cfg := serverConfigMap(t, s, c, geoip, cookieSecret)
	cfg["bootstrap"] = bootstrap
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readYAMLMap reads a file of the repository (a path relative to its
// root) as a YAML map.
func readYAMLMap(t testing.TB, rel string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return m
}

// setYAMLKey sets the key at path in cfg, read from file by readYAMLMap.
// Every section on the way and the key itself must be in the file (the
// suite runs the guide's files with only what differs here changed),
// unless the key is one of optional.
func setYAMLKey(t testing.TB, cfg map[string]any, file string, path []string, v any, optional ...string) {
	t.Helper()
	m := cfg
	for _, k := range path[:len(path)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("%s has no section %q", file, k)
		}
		m = sub
	}
	key := path[len(path)-1]
	if _, ok := m[key]; !ok && !slices.Contains(optional, key) {
		t.Fatalf("%s has no key %v", file, path)
	}
	m[key] = v
}

// serverConfigMap is serverConfig as a YAML map, for tests that change it.
func serverConfigMap(t testing.TB, s *nameServer, c *etcdCluster, geoip, cookieSecret string) map[string]any {
	t.Helper()
	const file = "deploy/meridian.yaml"
	cfg := readYAMLMap(t, file)
	set := func(path []string, v any) {
		// cookie_secrets is commented out in the guide's file: each
		// deployment makes its own.
		setYAMLKey(t, cfg, file, path, v, "cookie_secrets")
	}
	ec := c.clientConfig("meridian-server")
	set([]string{"listen", "dns"}, []string{s.dnsAddr()})
	set([]string{"listen", "http"}, net.JoinHostPort(s.host, strconv.Itoa(s.httpPort)))
	set([]string{"data_dir"}, s.dataDir())
	set([]string{"log", "format"}, "text")
	set([]string{"dns", "udp_sockets"}, 1) // two cores shared by everything here
	set([]string{"dns", "cookie_secrets"}, []string{cookieSecret})
	// The suite's own checks ask the servers straight from 127.0.0.1,
	// up to every millisecond: monitoring, which the guide exempts from
	// response rate limiting. The resolvers (127.0.0.3, 127.0.0.4) are
	// limited as any other client.
	set([]string{"dns", "rrl", "exempt"}, []string{"127.0.0.1"})
	set([]string{"geoip", "database"}, geoip)
	set([]string{"etcd", "endpoints"}, ec.Endpoints)
	set([]string{"etcd", "ca_file"}, ec.CAFile)
	set([]string{"etcd", "cert_file"}, ec.CertFile)
	set([]string{"etcd", "key_file"}, ec.KeyFile)
	_, tokens := apiTokens(t)
	set([]string{"api", "tokens_file"}, tokens)
	cert, key := apiCert(t, s)
	set([]string{"api", "tls", "cert_file"}, cert)
	set([]string{"api", "tls", "key_file"}, key)
	set([]string{"bootstrap"}, filepath.Join(repoRoot, "deploy", "state.yaml"))
	set([]string{"zone_dir"}, filepath.Join(repoRoot, "examples", "zones"))
	return cfg
}

// newNameServer writes the server's config file; start runs it.
func newNameServer(t testing.TB, name, host string, dnsPort, httpPort int, c *etcdCluster, geoip, cookieSecret, bootstrap string) *nameServer {
	t.Helper()
	s := &nameServer{name: name, host: host, dnsPort: dnsPort, httpPort: httpPort, dir: filepath.Join(runDir, name)}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.config = filepath.Join(s.dir, "meridian.yaml")
	if err := os.WriteFile(s.config, serverConfig(t, s, c, geoip, cookieSecret, bootstrap), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *nameServer) start(t testing.TB) {
	t.Helper()
	if s.p != nil && !s.p.exited() {
		t.Fatalf("%s is already running", s.name)
	}
	s.p = startProc(t, s.name, binary, "server", "--config", s.config)
}

// apiPaths are the paths of the server's HTTP listener the suite reads
// (its writes go through meridian ctl): docs/deploy.md calls no others.
var apiPaths = []string{"/health/ready", "/v1/status", "/v1/explain", "/metrics"}

// get fetches path (one of apiPaths, with a query) from the server's
// HTTP listener.
func (s *nameServer) get(path string) (int, []byte, error) {
	if p, _, _ := strings.Cut(path, "?"); !slices.Contains(apiPaths, p) {
		return 0, nil, fmt.Errorf("GET %s: not among apiPaths, which the guide is checked against", path)
	}
	resp, err := httpClient.Get(s.httpBase() + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// waitReady waits until /health/ready says the server serves (zones,
// GeoIP and a regions snapshot loaded, listeners up).
func (s *nameServer) waitReady(t testing.TB) time.Duration {
	t.Helper()
	return waitFor(t, s.name+" ready", waitLimit, func() error {
		if s.p.exited() {
			return exitedErr(s.p)
		}
		code, body, err := s.get("/health/ready")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/health/ready: %d %s", code, body)
		}
		return nil
	})
}

// api is a client of the server's API, as a Go program scripting
// Meridian would use it; it reads only the paths the guide shows
// (apiPaths), and refuses any field its types lack.
func (s *nameServer) api() *apiclient.Client {
	c, err := apiclient.New(s.httpBase(), apiclient.WithHTTPClient(httpClient), apiclient.WithStrictDecoding())
	if err != nil {
		panic(err) // httpBase is always a URL
	}
	return c
}

// status reads /v1/status; a server serves a snapshot and follows etcd
// once ready, so a status without them is an error.
func (s *nameServer) status() (*apitypes.Status, error) {
	st, err := s.api().Status(context.Background())
	switch {
	case err != nil:
		return nil, fmt.Errorf("/v1/status: %w", err)
	case st.Snapshot == nil || st.Etcd == nil:
		return nil, fmt.Errorf("/v1/status without a snapshot or etcd: %+v", st)
	}
	return st, nil
}

func (s *nameServer) mustStatus(t testing.TB) *apitypes.Status {
	t.Helper()
	st, err := s.status()
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	return st
}

// explain asks the server which region it picks for name and client.
func (s *nameServer) explain(t testing.TB, name, client string) string {
	t.Helper()
	ex, err := s.api().Explain(context.Background(), apiclient.ExplainRequest{Name: name, Client: client})
	if err != nil {
		t.Fatalf("%s explain %s for %s: %v", s.name, name, client, err)
	}
	return ex.Decision.Region
}

// checkStatusWire reads /v1/status as JSON without the API's types: the
// names and kinds of the fields the guide and the dashboards rely on,
// checked apart from the client that shares the server's types.
func checkStatusWire(t testing.TB, s *nameServer) {
	t.Helper()
	code, body, err := s.get("/v1/status")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /v1/status: %d %v", s.name, code, err)
	}
	var st struct {
		Revision *int64 `json:"revision"`
		Snapshot *struct {
			Source     *string   `json:"source"`
			AgeSeconds *float64  `json:"age_seconds"`
			Regions    *int      `json:"regions"`
			Services   *int      `json:"services"`
			Problems   *[]string `json:"problems"`
		} `json:"snapshot"`
		Regions []struct {
			Name    *string `json:"name"`
			Status  *string `json:"status"`
			Drained *bool   `json:"drained"`
			Healthy *int    `json:"healthy"`
			VIPs    []struct {
				Addr  *string `json:"addr"`
				Votes []struct {
					Prober  *string `json:"prober"`
					Up      *bool   `json:"up"`
					Counted *bool   `json:"counted"`
				} `json:"votes"`
			} `json:"vips"`
		} `json:"regions"`
		Services []struct {
			Name          *string `json:"name"`
			Policy        *string `json:"policy"`
			ExpectedShare map[string]struct {
				Regions map[string]float64 `json:"regions"`
			} `json:"expected_share"`
		} `json:"services"`
		Etcd *struct {
			Watch *struct {
				Connected *bool `json:"connected"`
			} `json:"watch"`
		} `json:"etcd"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%s /v1/status: %v", s.name, err)
	}
	var missing []string
	need := func(ok bool, what string) {
		if !ok {
			missing = append(missing, what)
		}
	}
	need(st.Revision != nil && *st.Revision > 0, "revision")
	need(st.Snapshot != nil && st.Snapshot.Source != nil && st.Snapshot.AgeSeconds != nil && st.Snapshot.Regions != nil &&
		st.Snapshot.Services != nil && st.Snapshot.Problems != nil, "snapshot.{source,age_seconds,regions,services,problems}")
	need(len(st.Regions) == 3, "3 regions")
	for _, r := range st.Regions {
		need(r.Name != nil && r.Status != nil && slices.Contains([]string{"up", "down", "unknown"}, *r.Status) && r.Drained != nil && r.Healthy != nil,
			"regions[].{name,status,drained,healthy}")
		for _, v := range r.VIPs {
			_, err := netip.ParseAddr(*cmpOr(v.Addr, new(string)))
			need(err == nil, "regions[].vips[].addr")
			for _, vote := range v.Votes {
				need(vote.Prober != nil && vote.Up != nil && vote.Counted != nil, "regions[].vips[].votes[].{prober,up,counted}")
			}
		}
	}
	need(len(st.Services) == 3, "3 services")
	for _, sv := range st.Services {
		need(sv.Name != nil && sv.Policy != nil && sv.ExpectedShare["ipv4"].Regions != nil, "services[].{name,policy,expected_share.ipv4.regions}")
	}
	need(st.Etcd != nil && st.Etcd.Watch != nil && st.Etcd.Watch.Connected != nil, "etcd.watch.connected")
	if len(missing) > 0 {
		t.Fatalf("%s /v1/status lacks %s:\n%s", s.name, strings.Join(slices.Compact(missing), ", "), body)
	}
}

// cmpOr is p, or alt when p is nil.
func cmpOr[T any](p, alt *T) *T {
	if p == nil {
		return alt
	}
	return p
}

var responsesMetric = regexp.MustCompile(`(?m)^meridian_dns_responses_total\{[^}]*\} ([0-9.e+]+)$`)

// responses is how many DNS responses the server has sent.
func (s *nameServer) responses(t testing.TB) float64 {
	t.Helper()
	code, body, err := s.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", s.name, code, err)
	}
	var n float64
	for _, m := range responsesMetric.FindAllSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		n += v
	}
	return n
}

// stop ends the server gracefully (SIGTERM).
func (s *nameServer) stop(t testing.TB) {
	t.Helper()
	if s.p == nil {
		return
	}
	if err := s.p.stop(15 * time.Second); err != nil {
		t.Error(err)
	}
}
