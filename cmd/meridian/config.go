package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/api"
	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/dnsserver"
	"github.com/meridian-gslb/meridian/internal/tlsfiles"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
	"github.com/meridian-gslb/meridian/zones"
)

// Config is the server's configuration file (YAML). Relative paths in it
// are relative to the file's own directory, so a config works from any
// working directory.
type Config struct {
	Listen  ListenConfig `yaml:"listen"`
	DataDir string       `yaml:"data_dir"`
	Log     LogConfig    `yaml:"log"`
	DNS     DNSConfig    `yaml:"dns"`
	HTTP    HTTPConfig   `yaml:"http"`
	ZoneDir string       `yaml:"zone_dir"`
	Zones   []ZoneConfig `yaml:"zones"`

	GeoIP     GeoIPConfig    `yaml:"geoip"`
	ECS       ECSConfig      `yaml:"ecs"`
	Etcd      EtcdConfig     `yaml:"etcd"`
	Steering  SteeringConfig `yaml:"steering"`
	Bootstrap string         `yaml:"bootstrap"` // desired-state file: regions and services created in etcd when missing
	API       APIConfig      `yaml:"api"`

	path string    // the file it came from
	root yaml.Node // for line numbers in errors
}

// ListenConfig says where to listen.
type ListenConfig struct {
	DNS  []string `yaml:"dns"`  // UDP and TCP, "IP:port"
	HTTP string   `yaml:"http"` // metrics and health; "" disables
}

// LogConfig sets up log/slog.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// DNSConfig tunes the DNS listeners and the query handler.
type DNSConfig struct {
	UDPSockets        int              `yaml:"udp_sockets"`         // per address; 0: one per CPU
	UDPBatch          int              `yaml:"udp_batch"`           // messages per recvmmsg/sendmmsg; 0: 64
	MaxUDPSize        int              `yaml:"max_udp_size"`        // EDNS buffer size advertised and honoured; 0: 1232
	TCPIdleTimeout    regions.Duration `yaml:"tcp_idle_timeout"`    // 0: 10s
	TCPMaxConnections int              `yaml:"tcp_max_connections"` // 0: 1024
	TransferACL       []string         `yaml:"transfer_acl"`        // prefixes allowed AXFR/IXFR
	CookieSecrets     []string         `yaml:"cookie_secrets"`      // 32 hex digits each; first signs
	ShutdownTimeout   regions.Duration `yaml:"shutdown_timeout"`    // 0: 5s
	RRL               RRLConfig        `yaml:"rrl"`
}

// RRLConfig is response rate limiting of UDP answers (docs/rrl.md).
type RRLConfig struct {
	Enabled          *bool            `yaml:"enabled"`            // default true
	Rate             int              `yaml:"rate"`               // answers per second per account; 0: 50
	Window           regions.Duration `yaml:"window"`             // burst: rate × window answers after a pause; 0: 1s
	Slip             *int             `yaml:"slip"`               // every slip-th answer over the limit goes out truncated; default 2; 0: all dropped
	IPv4PrefixLength int              `yaml:"ipv4_prefix_length"` // a client's IPv4 network; 0: 24
	IPv6PrefixLength int              `yaml:"ipv6_prefix_length"` // 0: 56
	TableSize        int              `yaml:"table_size"`         // accounts held, 16 bytes each; 0: 262144
	Exempt           []string         `yaml:"exempt"`             // networks never limited
	LogOnly          bool             `yaml:"log_only"`           // count and log, but send every answer
}

// HTTPConfig bounds the HTTP server on listen.http: how long a client
// may take and how many connections it may hold, so that slow or idle
// clients cannot use up the descriptors DNS and etcd need
// (docs/architecture.md, HTTP API). Zero values take the defaults.
type HTTPConfig struct {
	ReadHeaderTimeout regions.Duration `yaml:"read_header_timeout"` // a request's header; 0: 5s
	ReadTimeout       regions.Duration `yaml:"read_timeout"`        // a whole request, body included (latency uploads: api.upload_timeout); 0: 30s
	RequestTimeout    regions.Duration `yaml:"request_timeout"`     // a handler; then 504; 0: 30s
	WriteTimeout      regions.Duration `yaml:"write_timeout"`       // from the end of the header to the end of the answer; longer than request_timeout; 0: 45s
	IdleTimeout       regions.Duration `yaml:"idle_timeout"`        // a keep-alive connection between requests; 0: 30s
	MaxConnections    int              `yaml:"max_connections"`     // open connections at most (lowered to fit the descriptor limit); 0: 1024
}

// The defaults of HTTPConfig.
const (
	defaultHTTPReadHeaderTimeout = 5 * time.Second
	defaultHTTPReadTimeout       = 30 * time.Second
	defaultHTTPWriteTimeout      = 45 * time.Second
	defaultHTTPIdleTimeout       = 30 * time.Second
	defaultHTTPMaxConnections    = 1024
)

// GeoIPConfig names the database that locates clients.
type GeoIPConfig struct {
	// Database is a GeoLite2/GeoIP2/DB-IP country or city database, or one
	// from `meridian geoip build`. Empty: no GeoIP (geo steering uses each
	// service's default list; nearest treats every region alike).
	Database string `yaml:"database"`
	// ReloadInterval is how often the file is checked for a new version;
	// 0: 1m. SIGHUP reloads at once.
	ReloadInterval regions.Duration `yaml:"reload_interval"`
	// MergeBudgetBytes bounds the memory of the geo partitions' merges,
	// a cache that makes lookups faster (docs/architecture.md, Merges);
	// 0: regions.DefaultMergeBudget (32 MiB).
	MergeBudgetBytes int64 `yaml:"merge_budget_bytes"`
}

// ECSConfig tunes EDNS Client Subnet (RFC 7871).
type ECSConfig struct {
	MaxPrefixV4  int  `yaml:"max_prefix_v4"` // 0: 24
	MaxPrefixV6  int  `yaml:"max_prefix_v6"` // 0: 56
	TrustPrivate bool `yaml:"trust_private"` // locate clients by private/loopback ECS subnets (labs)
}

// EtcdConfig says where the shared state lives: the store's client
// settings and, when Endpoints is empty, where the embedded single-member
// etcd (in data_dir/etcd, loopback only) listens.
type EtcdConfig struct {
	store.EtcdConfig `yaml:",inline"`
	// Embedded etcd's loopback addresses; defaults 127.0.0.1:2479, :2480.
	EmbeddedClient string `yaml:"embedded_client"`
	EmbeddedPeer   string `yaml:"embedded_peer"`
}

// APIConfig secures and bounds the HTTP API (docs/architecture.md, HTTP
// API).
type APIConfig struct {
	// TokensFile lists the API tokens, each with a name and a role (admin
	// or read). Empty: reads are open and writes refused.
	TokensFile string `yaml:"tokens_file"`
	// AdminTokenFile: when TokensFile does not exist yet, an admin token
	// is created, its secret written here and its hash to TokensFile
	// (both mode 0600): a fresh install gets a working token.
	AdminTokenFile string `yaml:"admin_token_file"`
	// OpenReads lets requests that only read go without a token.
	OpenReads bool `yaml:"open_reads"`
	// WriteTimeout bounds a request's wait for etcd; then 503 with
	// Retry-After. 0: 5s.
	WriteTimeout regions.Duration `yaml:"write_timeout"`
	// MaxBodyBytes bounds JSON request bodies; 0: 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxLatencyBytes bounds the latency table upload; 0: 64 MiB.
	MaxLatencyBytes int64 `yaml:"max_latency_bytes"`
	// UploadTimeout bounds the arrival of a latency table upload, in
	// place of http.read_timeout and http.request_timeout; 0: 10m.
	UploadTimeout regions.Duration `yaml:"upload_timeout"`
	// AuditHistory is how many audit records etcd keeps; 0: 1000.
	AuditHistory int `yaml:"audit_history"`
	// TLS serves listen.http over HTTPS. Empty: plain HTTP.
	TLS APITLSConfig `yaml:"tls"`
	// ClientCA, with TLS: every client must show a certificate that a CA
	// in this file signed (tokens are still required). Empty: none asked.
	ClientCA string `yaml:"client_ca"`
}

// APITLSConfig is the API's certificate: both files or neither. They are
// read again on SIGHUP and when their content changes.
type APITLSConfig struct {
	CertFile string `yaml:"cert_file"` // the certificate, then any intermediates
	KeyFile  string `yaml:"key_file"`
	// ReloadInterval is how often the files are read for a change; 0: 1m.
	ReloadInterval regions.Duration `yaml:"reload_interval"`
}

// apiTLS says whether the API serves TLS.
func (c *Config) apiTLS() bool { return c.API.TLS.CertFile != "" || c.API.TLS.KeyFile != "" }

// tlsFiles are the API's TLS files, as api.NewTLS takes them.
func (c *Config) tlsFiles() api.TLSFiles {
	return api.TLSFiles{CertFile: c.API.TLS.CertFile, KeyFile: c.API.TLS.KeyFile, ClientCAFile: c.API.ClientCA}
}

// SteeringConfig tunes how snapshots are built.
type SteeringConfig struct {
	Quorum       float64 `yaml:"quorum"`         // a VIP is down when more than this fraction of counted votes say down; 0: 0.5
	StickyBitsV4 int     `yaml:"sticky_bits_v4"` // 0: 24
	StickyBitsV6 int     `yaml:"sticky_bits_v6"` // 0: 56
}

// ZoneConfig is one zone file to serve.
type ZoneConfig struct {
	Origin string        `yaml:"origin"`
	File   string        `yaml:"file"`
	DNSSEC *DNSSECConfig `yaml:"dnssec"` // nil: not signed
}

// LoadConfig reads and validates a config file. Nothing is opened or
// bound: the caller decides when.
func LoadConfig(path string) (*Config, error) {
	c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// readConfig parses a config file and fills in defaults, without the
// checks of validate (flags may still change it).
func readConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &regions.FileError{File: path, Msg: err.Error()}
	}
	c := &Config{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(path, err)
	}
	_ = yaml.Unmarshal(data, &c.root) // already parsed once; only for line numbers
	c.applyDefaults()
	return c, nil
}

var (
	yamlLineMsg  = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknown  = regexp.MustCompile(`^field (\S+) not found in type (?:main|store)\.(\w+)$`)
	typeSections = map[string]string{"Config": "", "ListenConfig": "listen", "LogConfig": "log", "DNSConfig": "dns", "HTTPConfig": "http", "ZoneConfig": "zones[]",
		"RRLConfig": "dns.rrl", "GeoIPConfig": "geoip", "ECSConfig": "ecs", "DNSSECConfig": "zones[].dnssec", "RolloverConfig": "zones[].dnssec.rollover", "EtcdConfig": "etcd", "SteeringConfig": "steering", "APIConfig": "api", "APITLSConfig": "api.tls",
		"ProberConfig": "", "CanaryConfig": "canary"}
)

// yamlError turns the YAML decoder's errors into one regions.FileError per
// problem, with the line and, for unknown keys, the section they are in.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &regions.FileError{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var errs []error
	for _, e := range te.Errors {
		ce := &regions.FileError{File: path, Msg: e}
		if m := yamlLineMsg.FindStringSubmatch(e); m != nil {
			ce.Line, _ = strconv.Atoi(m[1])
			ce.Msg = m[2]
			if u := yamlUnknown.FindStringSubmatch(m[2]); u != nil {
				ce.Field = u[1]
				if sec := typeSections[u[2]]; sec != "" {
					ce.Field = sec + "." + u[1]
				}
				ce.Msg = "unknown key"
			}
		}
		errs = append(errs, ce)
	}
	return errors.Join(errs...)
}

// applyDefaults fills what the file left out and anchors relative paths.
func (c *Config) applyDefaults() {
	if len(c.Listen.DNS) == 0 {
		c.Listen.DNS = []string{"127.0.0.1:5353", "[::1]:5353"}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	base := filepath.Dir(c.path)
	c.DataDir = c.rel(base, c.DataDir)
	if c.ZoneDir != "" {
		c.ZoneDir = c.rel(base, c.ZoneDir)
	} else {
		c.ZoneDir = base
	}
	c.GeoIP.Database = c.rel(base, c.GeoIP.Database)
	c.Bootstrap = c.rel(base, c.Bootstrap)
	c.API.TokensFile = c.rel(base, c.API.TokensFile)
	c.API.AdminTokenFile = c.rel(base, c.API.AdminTokenFile)
	c.API.TLS.CertFile = c.rel(base, c.API.TLS.CertFile)
	c.API.TLS.KeyFile = c.rel(base, c.API.TLS.KeyFile)
	c.API.ClientCA = c.rel(base, c.API.ClientCA)
	c.Etcd.CAFile = c.rel(base, c.Etcd.CAFile)
	c.Etcd.CertFile = c.rel(base, c.Etcd.CertFile)
	c.Etcd.KeyFile = c.rel(base, c.Etcd.KeyFile)
	for _, z := range c.Zones {
		if d := z.DNSSEC; d != nil {
			if d.KeyDir == "" {
				d.KeyDir = filepath.Join(c.DataDir, "keys")
			} else {
				d.KeyDir = c.rel(base, d.KeyDir)
			}
			for i, k := range d.Keys {
				d.Keys[i] = c.rel(base, k)
			}
		}
	}
	if c.GeoIP.ReloadInterval == 0 {
		c.GeoIP.ReloadInterval = regions.Duration(time.Minute)
	}
	if c.Etcd.Prefix == "" {
		c.Etcd.Prefix = store.DefaultPrefix
	}
	for _, d := range []struct {
		v   *regions.Duration
		def time.Duration
	}{
		{&c.HTTP.ReadHeaderTimeout, defaultHTTPReadHeaderTimeout},
		{&c.HTTP.ReadTimeout, defaultHTTPReadTimeout},
		{&c.HTTP.RequestTimeout, api.DefaultRequestTimeout},
		{&c.HTTP.WriteTimeout, defaultHTTPWriteTimeout},
		{&c.HTTP.IdleTimeout, defaultHTTPIdleTimeout},
		{&c.API.UploadTimeout, api.DefaultUploadTimeout},
		{&c.API.TLS.ReloadInterval, api.DefaultTLSPoll},
	} {
		if *d.v == 0 {
			*d.v = regions.Duration(d.def)
		}
	}
	if c.HTTP.MaxConnections == 0 {
		c.HTTP.MaxConnections = defaultHTTPMaxConnections
	}
	if c.DNS.RRL.Enabled == nil {
		on := true
		c.DNS.RRL.Enabled = &on
	}
	if c.DNS.RRL.Slip == nil {
		slip := dnsserver.DefaultRRLSlip
		c.DNS.RRL.Slip = &slip
	}
}

func (c *Config) rel(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// errf builds an error for a field given as a path ("listen.dns[1]").
func (c *Config) errf(field, format string, args ...any) error {
	return &regions.FileError{File: c.path, Field: field, Line: c.line(field), Msg: fmt.Sprintf(format, args...)}
}

// line finds a field's line in the YAML document, or 0.
func (c *Config) line(field string) int { return yamlLine(&c.root, field) }

// yamlLine finds a field given as a path ("listen.dns[1]") in a YAML
// document, or 0.
func yamlLine(root *yaml.Node, field string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			key = part[:i]
			idx, _ = strconv.Atoi(part[i+1 : len(part)-1])
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// validate checks everything that can be checked without binding: every
// error is reported before the server listens on anything.
func (c *Config) validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	for i, a := range c.Listen.DNS {
		if _, err := netip.ParseAddrPort(a); err != nil {
			add(c.errf(fmt.Sprintf("listen.dns[%d]", i), "%q is not an IP:port (like 127.0.0.1:53 or [::1]:53)", a))
		}
	}
	if c.Listen.HTTP != "" {
		if _, err := netip.ParseAddrPort(c.Listen.HTTP); err != nil {
			add(c.errf("listen.http", "%q is not an IP:port", c.Listen.HTTP))
		}
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		add(c.errf("log.level", "%v", err))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add(c.errf("log.format", "%q: want text or json", c.Log.Format))
	}
	if c.DNS.UDPSockets < 0 || c.DNS.UDPSockets > 1024 {
		add(c.errf("dns.udp_sockets", "%d: want 0 (one per CPU) to 1024", c.DNS.UDPSockets))
	}
	if c.DNS.UDPBatch < 0 || c.DNS.UDPBatch > 1024 {
		add(c.errf("dns.udp_batch", "%d: want 0 (default 64) to 1024", c.DNS.UDPBatch))
	}
	if c.DNS.MaxUDPSize != 0 && (c.DNS.MaxUDPSize < 512 || c.DNS.MaxUDPSize > 4096) {
		add(c.errf("dns.max_udp_size", "%d: want 512 to 4096 (1232 avoids fragmentation)", c.DNS.MaxUDPSize))
	}
	if c.DNS.TCPMaxConnections < 0 {
		add(c.errf("dns.tcp_max_connections", "must not be negative"))
	}
	for i, p := range c.DNS.TransferACL {
		if _, err := parsePrefix(p); err != nil {
			add(c.errf(fmt.Sprintf("dns.transfer_acl[%d]", i), "%v", err))
		}
	}
	for i, s := range c.DNS.CookieSecrets {
		if _, err := dnsserver.ParseCookieSecret(s); err != nil {
			add(c.errf(fmt.Sprintf("dns.cookie_secrets[%d]", i), "%v", err))
		}
	}
	// Checked also when disabled: enabling it later must not find errors.
	rrl, exemptErrs := c.rrlConfig()
	errs = append(errs, exemptErrs...)
	var fe *dnsserver.RRLFieldError
	for _, err := range unjoin(rrl.Validate()) {
		if errors.As(err, &fe) {
			add(c.errf("dns.rrl."+fe.Field, "%s", fe.Msg))
		}
	}
	if len(c.Zones) == 0 {
		add(c.errf("zones", "no zones configured: a server needs at least one zone to answer for"))
	}
	if st, err := os.Stat(c.ZoneDir); err != nil || !st.IsDir() {
		add(c.errf("zone_dir", "%s is not a directory", c.ZoneDir))
	}
	seen := map[string]int{}
	for i, z := range c.Zones {
		field := fmt.Sprintf("zones[%d]", i)
		if z.File == "" {
			add(c.errf(field+".file", "missing"))
			continue
		}
		if z.Origin != "" {
			w, err := zones.WireName(z.Origin)
			if err != nil {
				add(c.errf(field+".origin", "%v", err))
			} else if j, dup := seen[w]; dup {
				add(c.errf(field+".origin", "zone %s is already configured as zones[%d]", z.Origin, j))
			} else {
				seen[w] = i
			}
		}
		if _, err := os.Stat(c.zonePath(z)); err != nil {
			add(c.errf(field+".file", "%v", err))
		}
		if z.DNSSEC != nil {
			errs = append(errs, c.validateDNSSEC(field, z)...)
		}
	}
	if c.GeoIP.Database != "" {
		if st, err := os.Stat(c.GeoIP.Database); err != nil || st.IsDir() {
			add(c.errf("geoip.database", "%s: no such file; build one with `meridian geoip build --out %s` or use a GeoLite2/GeoIP2/DB-IP database", c.GeoIP.Database, c.GeoIP.Database))
		}
	}
	if c.GeoIP.MergeBudgetBytes < 0 {
		add(c.errf("geoip.merge_budget_bytes", "%d: must not be negative (0 for 32 MiB)", c.GeoIP.MergeBudgetBytes))
	}
	if c.ECS.MaxPrefixV4 < 0 || c.ECS.MaxPrefixV4 > 32 {
		add(c.errf("ecs.max_prefix_v4", "%d: want 1 to 32 (0 for 24)", c.ECS.MaxPrefixV4))
	}
	if c.ECS.MaxPrefixV6 < 0 || c.ECS.MaxPrefixV6 > 128 {
		add(c.errf("ecs.max_prefix_v6", "%d: want 1 to 128 (0 for 56)", c.ECS.MaxPrefixV6))
	}
	if q := c.Steering.Quorum; q < 0 || q >= 1 {
		add(c.errf("steering.quorum", "%v: want a fraction from 0 up to, not including, 1 (0 for 0.5)", q))
	}
	if b := c.Steering.StickyBitsV4; b < 0 || b > 32 {
		add(c.errf("steering.sticky_bits_v4", "%d: want 1 to 32", b))
	}
	if b := c.Steering.StickyBitsV6; b < 0 || b > 128 {
		add(c.errf("steering.sticky_bits_v6", "%d: want 1 to 128", b))
	}
	if !strings.HasPrefix(c.Etcd.Prefix, "/") || !strings.HasSuffix(c.Etcd.Prefix, "/") {
		add(c.errf("etcd.prefix", "%q: want a path that starts and ends with /", c.Etcd.Prefix))
	}
	if len(c.Etcd.Endpoints) > 0 {
		ec := c.etcdClientConfig()
		if err := ec.Validate(); err != nil {
			add(c.errf("etcd", "%v", err))
		}
	} else if _, err := c.embeddedConfig().ClientEndpoint(); err != nil {
		// Checked here: a server retries the embedded etcd until it
		// starts, which a bad address never would.
		add(c.errf("etcd", "%v", err))
	}
	if c.Bootstrap != "" {
		if _, err := os.Stat(c.Bootstrap); err != nil {
			add(c.errf("bootstrap", "%v", err))
		}
	}
	if c.API.AdminTokenFile != "" && c.API.TokensFile == "" {
		add(c.errf("api.admin_token_file", "needs api.tokens_file, where the token is registered"))
	}
	if c.API.TokensFile != "" {
		// A missing file is created at start when admin_token_file is set.
		if _, err := os.Stat(c.API.TokensFile); err == nil || c.API.AdminTokenFile == "" {
			if _, err := api.LoadTokens(c.API.TokensFile); err != nil {
				add(c.errf("api.tokens_file", "%v", err))
			}
		}
	}
	c.validateTLS(add)
	if c.HTTP.ReadHeaderTimeout > c.HTTP.ReadTimeout {
		add(c.errf("http.read_header_timeout", "%s is longer than http.read_timeout (%s), which includes the header", time.Duration(c.HTTP.ReadHeaderTimeout), time.Duration(c.HTTP.ReadTimeout)))
	}
	if c.HTTP.WriteTimeout <= c.HTTP.RequestTimeout {
		add(c.errf("http.write_timeout", "%s: want longer than http.request_timeout (%s), so that a request that timed out still gets its answer", time.Duration(c.HTTP.WriteTimeout), time.Duration(c.HTTP.RequestTimeout)))
	}
	if c.HTTP.MaxConnections < 0 {
		add(c.errf("http.max_connections", "must not be negative"))
	}
	if c.API.WriteTimeout < 0 {
		add(c.errf("api.write_timeout", "must not be negative"))
	}
	if c.API.MaxBodyBytes < 0 {
		add(c.errf("api.max_body_bytes", "must not be negative"))
	}
	if c.API.MaxLatencyBytes < 0 {
		add(c.errf("api.max_latency_bytes", "must not be negative"))
	}
	if c.API.AuditHistory < 0 {
		add(c.errf("api.audit_history", "must not be negative"))
	}
	return errors.Join(errs...)
}

// validateTLS checks api.tls and api.client_ca: both files or neither,
// a client CA only with them, and files that serve (read as the running
// user: present, readable, a certificate for servers, its key, CA
// certificates). What would not stop TLS (an end within 30 days) is left
// to checkHost.
func (c *Config) validateTLS(add func(error)) {
	t := c.API.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		add(c.errf("api.tls.key_file", "missing: api.tls needs cert_file and key_file together"))
	case t.CertFile == "" && t.KeyFile != "":
		add(c.errf("api.tls.cert_file", "missing: api.tls needs cert_file and key_file together"))
	case t.CertFile == "" && c.API.ClientCA != "":
		add(c.errf("api.client_ca", "needs api.tls: client certificates are asked for in the TLS handshake"))
	}
	if t.ReloadInterval < 0 {
		add(c.errf("api.tls.reload_interval", "must not be negative"))
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	for _, p := range tlsfiles.Errors(c.tlsFiles().Check(time.Now())) {
		add(c.errf(p.Field, "%s", p.Message))
	}
}

func (c *Config) etcdClientConfig() store.EtcdConfig { return c.Etcd.EtcdConfig }

// rrlConfig is dns.rrl for dnsserver.NewRRL, and the errors of the
// exempt networks that do not parse.
func (c *Config) rrlConfig() (dnsserver.RRLConfig, []error) {
	r := c.DNS.RRL
	out := dnsserver.RRLConfig{
		Rate:      r.Rate,
		Window:    time.Duration(r.Window),
		PrefixV4:  r.IPv4PrefixLength,
		PrefixV6:  r.IPv6PrefixLength,
		TableSize: r.TableSize,
		LogOnly:   r.LogOnly,
	}
	if r.Slip != nil {
		out.Slip = *r.Slip
	}
	var errs []error
	for i, s := range r.Exempt {
		p, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, c.errf(fmt.Sprintf("dns.rrl.exempt[%d]", i), "%v", err))
			continue
		}
		out.Exempt = append(out.Exempt, p)
	}
	return out, errs
}

// unjoin lists the errors errors.Join put together (err itself when it
// is not a join).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// embeddedConfig is the embedded etcd's configuration, without a logger.
func (c *Config) embeddedConfig() embedded.Config {
	return embedded.Config{Dir: filepath.Join(c.DataDir, "etcd"), ClientURL: c.Etcd.EmbeddedClient, PeerURL: c.Etcd.EmbeddedPeer}
}

// embeddedPKIDir is where the embedded etcd's CA and certificates live:
// data_dir/etcd-tls.
func (c *Config) embeddedPKIDir() string { return filepath.Join(c.DataDir, "etcd-tls") }

func (c *Config) zonePath(z ZoneConfig) string {
	if filepath.IsAbs(z.File) {
		return z.File
	}
	return filepath.Join(c.ZoneDir, z.File)
}

// zoneSpecs lists the zone files for zones.LoadSet.
// With signer, signed zones get their DNSSEC apex records.
func (c *Config) zoneSpecs(signer *dnssec.Signer) []zones.FileSpec {
	specs := make([]zones.FileSpec, len(c.Zones))
	for i, z := range c.Zones {
		specs[i] = zones.FileSpec{Origin: z.Origin, File: z.File}
		if signer != nil && z.DNSSEC != nil {
			// A keyless zone whose keys are not known yet is loaded as
			// a signed one all the same: its file must hold no DNSSEC
			// records either.
			specs[i].DNSSEC = signer.Apex(z.Origin)
			if specs[i].DNSSEC == nil {
				specs[i].DNSSEC = []dns.RR{}
			}
		}
	}
	return specs
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// parsePrefix accepts a prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// newLogger builds the process logger from the config.
func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// readableDuration writes durations as Go prints them (took=635ms,
// "retry_in":"1.5s") in both formats: the JSON handler would write
// nanoseconds. It applies to every attribute, those etcd logs through
// internal/zapslog included.
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
