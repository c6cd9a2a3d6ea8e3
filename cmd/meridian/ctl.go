package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/suggest"
	"github.com/meridian-gslb/meridian/internal/tlsfiles"
)

// ctlCommand is one ctl command: the usage, the help, the completion and
// the dispatch are all made from the table of them (ctlCommands).
type ctlCommand struct {
	// words name it: "drain", or a group and its verb: "weights set".
	words []string
	// args is the usage of its arguments; help what it does.
	args, help string
	// flags are the flags it takes besides the global ones (names
	// without dashes; a flag with a short and a long name is listed by
	// both).
	flags []string
	// nargs checks the number of arguments (nil: any).
	nargs func(n int) bool
	run   func(x *ctl, ctx context.Context, args []string) error
	// complete lists the completions of argument i (0-based) given the
	// arguments before it; nil completes nothing.
	complete func(x *ctl, ctx context.Context, i int, before []string) []string
}

func exactly(n int) func(int) bool { return func(m int) bool { return m == n } }
func between(lo, hi int) func(int) bool {
	return func(m int) bool { return m >= lo && m <= hi }
}

// ctlCommands is every ctl command, in the order the usage lists them.
var ctlCommands = []ctlCommand{
	{words: []string{"apply"}, args: "-f FILE [--dry-run] [--exit-code] [--force]",
		help:  "create or update the regions and services of a state file; prints the diff\n(--exit-code: exit 2 when something differs, for drift checks)",
		flags: []string{"f", "file", "dry-run", "exit-code", "force"}, nargs: exactly(0), run: (*ctl).apply},
	{words: []string{"get"}, args: "regions|services [NAME] | status",
		help:  "list regions or services, or show one; status: health, reasons, weights and shares",
		nargs: between(1, 2), run: (*ctl).get, complete: completeGet},
	{words: []string{"delete"}, args: "region|service NAME [--dry-run]",
		help:  "delete a region (refused while a service uses it) or a service",
		flags: []string{"dry-run"}, nargs: exactly(2), run: (*ctl).delete, complete: completeDelete},
	{words: []string{"weights", "get"}, args: "SERVICE", help: "a service's weights and expected shares",
		nargs: exactly(1), run: (*ctl).weightsGet, complete: completeServiceArg},
	{words: []string{"weights", "set"}, args: "SERVICE REGION=N... [--replace] [--dry-run] [--force]",
		help:  "change the weights named (--replace: every other region gets 0)",
		flags: []string{"replace", "dry-run", "force"}, nargs: func(n int) bool { return n >= 2 }, run: (*ctl).weightsSet, complete: completeWeightsSet},
	{words: []string{"drain"}, args: "REGION [--dry-run] [--force]", help: "take a region out of every answer",
		flags: []string{"dry-run", "force"}, nargs: exactly(1), run: drainCmd(true), complete: completeRegionArg},
	{words: []string{"undrain"}, args: "REGION [--dry-run]", help: "answer a region again by its weights",
		flags: []string{"dry-run"}, nargs: exactly(1), run: drainCmd(false), complete: completeRegionArg},
	{words: []string{"explain"}, args: "NAME [--client IP[/LEN]] [--resolver IP] [--type A|AAAA]",
		help:  "the decision a DNS query would get now, step by step",
		flags: []string{"client", "resolver", "type"}, nargs: exactly(1), run: (*ctl).explain, complete: completeServiceArg},
	{words: []string{"latency", "get"}, help: "what the stored latency table holds", nargs: exactly(0), run: (*ctl).latencyGet},
	{words: []string{"latency", "import"}, args: "FILE [--dry-run]", help: "replace the latency table (CSV: cidr,region,rtt_ms)",
		flags: []string{"dry-run"}, nargs: exactly(1), run: (*ctl).latencyImport, complete: completeFiles},
	{words: []string{"shift", "create"}, args: "--drain REGION [--service NAME] | --service NAME --weights R=N,... --for DURATION [--reason TEXT] [--revert-if GUARD] [--dry-run] [--force]",
		help: "shift traffic for a while: drain a region from one service (from every service\nwithout --service), or set weights of one service; it ends by itself after --for\n" +
			"(at most 72h); --dry-run shows the shares; --revert-if unhealthy,high-watermark\nends it early when a region taking the traffic loses VIPs or gets too busy",
		flags: []string{"drain", "service", "weights", "for", "reason", "revert-if", "dry-run", "force"}, nargs: exactly(0), run: (*ctl).shiftCreate},
	{words: []string{"shift", "list"}, help: "the shifts in force, and those that ended within a day",
		nargs: exactly(0), run: (*ctl).shiftList},
	{words: []string{"shift", "extend"}, args: "ID --for DURATION [--reason TEXT] [--dry-run]", help: "give an active shift a new expiry, DURATION from now",
		flags: []string{"for", "reason", "dry-run"}, nargs: exactly(1), run: (*ctl).shiftExtend, complete: completeShiftID},
	{words: []string{"shift", "cancel"}, args: "ID [--dry-run] [--force]", help: "end a shift now: the weights it changed come back",
		flags: []string{"dry-run", "force"}, nargs: exactly(1), run: (*ctl).shiftCancel, complete: completeShiftID},
	{words: []string{"audit"}, args: "[--limit N] [--after ID]", help: "the audit log, newest first",
		flags: []string{"limit", "after"}, nargs: exactly(0), run: (*ctl).audit},
	{words: []string{"state", "accept-empty"}, help: "serve the empty state from etcd this server refuses\n(etcd is meant to hold no regions and no services)",
		nargs: exactly(0), run: (*ctl).acceptEmpty},
}

// ctlGlobalFlags are the flags every command takes.
var ctlGlobalFlags = []string{"server", "token", "token-file", "cacert", "cert", "key", "o", "output", "timeout"}

// ctlFormats are the values of -o.
var ctlFormats = []string{"table", "wide", "json", "yaml"}

// ctlUsage is the help of meridian ctl, made from the command table.
func ctlUsage() string {
	var b strings.Builder
	b.WriteString("meridian ctl — the command-line client of Meridian's HTTP API\n\nUsage:\n  meridian ctl [FLAGS] COMMAND ...\n\nCommands:\n")
	for _, c := range ctlCommands {
		synopsis := strings.TrimSpace(strings.Join(c.words, " ") + " " + c.args)
		lines := strings.Split(c.help, "\n")
		if len(synopsis) <= 38 {
			fmt.Fprintf(&b, "  %-39s %s\n", synopsis, lines[0])
		} else {
			fmt.Fprintf(&b, "  %s\n  %-39s %s\n", synopsis, "", lines[0])
		}
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "  %-39s %s\n", "", l)
		}
	}
	b.WriteString(`
Flags (anywhere on the line):
  --server URL        the API, http:// or https:// (default $MERIDIAN_SERVER or http://127.0.0.1:8053)
  --token-file FILE   file holding the bearer token (default $MERIDIAN_TOKEN_FILE; for the default
                      server only, data/admin.token when present)
  --token TOKEN       the token itself (default $MERIDIAN_TOKEN): avoid it, every user of the
                      machine sees a command line (ps); use --token-file or $MERIDIAN_TOKEN_FILE
  --cacert FILE       CA certificates that verify an https server (default $MERIDIAN_CACERT;
                      without it, the system's)
  --cert FILE         client certificate, for a server that asks for one (default $MERIDIAN_CERT)
  --key FILE          its key (default $MERIDIAN_KEY)
  -o FORMAT           output: table (default), wide (more columns), json or yaml (the API's answer)
  --timeout DURATION  bound on each request (default 30s)
  --dry-run           validate and say what would change; change nothing
  --force             make a write that leaves services answering NODATA (refused otherwise)

Exit status: 0 done, 1 failed (one line on stderr), 2 a bad command line;
apply --exit-code: 0 nothing differs, 2 something differs, 1 anything else.

Shell completion: meridian completion bash|zsh|fish.
`)
	return b.String()
}

// ctlFlags are the values of every flag of ctl.
type ctlFlags struct {
	server, token, tokenFile, output string
	cacert, cert, key                string
	timeout                          time.Duration

	file                                    string
	dryRun, force, replace, exitCode        bool
	clientAddr, resolver, qtype, auditAfter string
	limit                                   int

	// shift create and extend
	drain, service, weights, shiftFor, reason, revertIf string
}

func (g *ctlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "", "API base URL")
	fs.StringVar(&g.token, "token", "", "bearer token")
	fs.StringVar(&g.tokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&g.cacert, "cacert", "", "CA certificates that verify an https server")
	fs.StringVar(&g.cert, "cert", "", "client certificate")
	fs.StringVar(&g.key, "key", "", "the client certificate's key")
	fs.StringVar(&g.output, "o", "table", "output: table, wide, json or yaml")
	fs.StringVar(&g.output, "output", "table", "output: table, wide, json or yaml")
	fs.DurationVar(&g.timeout, "timeout", 30*time.Second, "bound on each request")
	fs.StringVar(&g.file, "f", "", "state file (apply)")
	fs.StringVar(&g.file, "file", "", "state file (apply)")
	fs.BoolVar(&g.dryRun, "dry-run", false, "say what would change, change nothing")
	fs.BoolVar(&g.force, "force", false, "make a write that leaves services answering NODATA")
	fs.BoolVar(&g.replace, "replace", false, "weights set: every region not named gets 0")
	fs.BoolVar(&g.exitCode, "exit-code", false, "apply: exit 2 when something differs")
	fs.StringVar(&g.clientAddr, "client", "", "explain: the ECS subnet, an address or prefix")
	fs.StringVar(&g.resolver, "resolver", "", "explain: the resolver's address")
	fs.StringVar(&g.qtype, "type", "A", "explain: A or AAAA")
	fs.IntVar(&g.limit, "limit", 50, "audit: records per page")
	fs.StringVar(&g.auditAfter, "after", "", "audit: the cursor of the next page")
	fs.StringVar(&g.drain, "drain", "", "shift create: the region to drain")
	fs.StringVar(&g.service, "service", "", "shift create: the service shifted (default: every service, for --drain)")
	fs.StringVar(&g.weights, "weights", "", "shift create: REGION=WEIGHT,... of the service")
	fs.StringVar(&g.shiftFor, "for", "", "shift create and extend: how long the shift lasts, like 30m")
	fs.StringVar(&g.reason, "reason", "", "shift create and extend: why")
	fs.StringVar(&g.revertIf, "revert-if", "", "shift create: unhealthy, high-watermark or both")
}

// newCtlFlagSet is the flag set of ctl, quiet: errors are reported once,
// by the caller.
func newCtlFlagSet(g *ctlFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("meridian ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	g.register(fs)
	return fs
}

// errUsage marks a command line that cannot be run; the message says why.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usagef(format string, args ...any) error { return errUsage{fmt.Sprintf(format, args...)} }

// errDiffers ends apply --exit-code when something differs: exit 2.
var errDiffers = errors.New("something differs")

func runCtl(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, ctlUsage())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	err := ctlCommandLine(ctx, args, stdout, stderr)
	var ue errUsage
	// With --exit-code, 2 means "differs" only: every failure is 1.
	exitCode := slices.ContainsFunc(args, func(a string) bool {
		return a == "--exit-code" || a == "-exit-code" || strings.HasPrefix(a, "--exit-code=")
	})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errDiffers):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "meridian ctl: %s (see meridian ctl --help)\n", oneLine(ue.msg))
		if exitCode {
			return 1
		}
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
			msg := err.Error()
			if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
				var all []string
				fs.VisitAll(func(f *flag.Flag) { all = append(all, f.Name) })
				msg = "unknown flag --" + name
				if near := suggest.Closest(name, all); len(near) > 0 {
					msg += "; did you mean --" + strings.Join(near, " or --") + "?"
				}
			}
			return nil, usagef("%s", msg)
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

// findCommand finds the command pos starts with, and its arguments.
func findCommand(pos []string) (*ctlCommand, []string, error) {
	if len(pos) == 0 {
		return nil, nil, usagef("no command")
	}
	var firsts, groupVerbs []string
	for i := range ctlCommands {
		c := &ctlCommands[i]
		if !slices.Contains(firsts, c.words[0]) {
			firsts = append(firsts, c.words[0])
		}
		if c.words[0] != pos[0] {
			continue
		}
		if len(c.words) == 1 {
			return c, pos[1:], nil
		}
		groupVerbs = append(groupVerbs, c.words[1])
		if len(pos) > 1 && pos[1] == c.words[1] {
			return c, pos[2:], nil
		}
	}
	if len(groupVerbs) > 0 {
		msg := fmt.Sprintf("%s: want %s", pos[0], strings.Join(groupVerbs, " or "))
		if len(pos) > 1 {
			msg = fmt.Sprintf("%s: unknown command %q; want %s", pos[0], pos[1], strings.Join(groupVerbs, " or "))
			if h := suggest.Hint(pos[1], groupVerbs); h != "" {
				msg += "; " + h
			}
		}
		return nil, nil, usagef("%s", msg)
	}
	msg := fmt.Sprintf("unknown command %q", pos[0])
	if h := suggest.Hint(pos[0], firsts); h != "" {
		msg += "; " + h
	}
	return nil, nil, usagef("%s", msg)
}

func ctlCommandLine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var g ctlFlags
	fs := newCtlFlagSet(&g)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if !slices.Contains(ctlFormats, g.output) {
		return usagef("-o %q: want %s", g.output, strings.Join(ctlFormats, ", "))
	}
	cmd, rest, err := findCommand(pos)
	if err != nil {
		return err
	}
	name := strings.Join(cmd.words, " ")
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(ctlGlobalFlags, f.Name) && !slices.Contains(cmd.flags, f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return usagef("%s does not take %s", name, strings.Join(bad, ", "))
	}
	if cmd.nargs != nil && !cmd.nargs(len(rest)) {
		return usagef("%s: want %s", name, strings.TrimSpace(cmd.args))
	}
	x, err := newCtl(g, stdout, stderr)
	if err != nil {
		return err
	}
	return x.explainErr(cmd.run(x, ctx, rest))
}

// ctl runs ctl commands against one server.
type ctl struct {
	g   ctlFlags
	c   *client.Client
	out *ctlOut
}

// defaultServer is the API ctl talks to unless told otherwise: the one
// of `make run`, on this machine.
const defaultServer = "http://127.0.0.1:8053"

// newCtl makes the client of the command line's server; warnings (a
// token about to cross the network in clear) go to stderr.
func newCtl(g ctlFlags, stdout, stderr io.Writer) (*ctl, error) {
	u, token, err := ctlServer(g)
	if err != nil {
		return nil, err
	}
	if token != "" && u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		fmt.Fprintf(stderr, "meridian ctl: warning: the API token goes to %s over plain HTTP, readable on the way: use https:// (the server's api.tls)\n", u.Host)
	}
	tc, err := ctlTLS(g)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: g.timeout}
	if tc != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		hc.Transport = tr
	}
	c, err := client.New(u.String(), client.WithToken(token), client.WithHTTPClient(hc), client.WithUserAgent("meridian-ctl"))
	if err != nil {
		return nil, usagef("--server %q: want a URL like https://ns1.example.net:8053 or http://127.0.0.1:8053", u)
	}
	return &ctl{g: g, c: c, out: &ctlOut{w: stdout, format: g.output}}, nil
}

// ctlServer is the server the flags and environment name, and the token
// to send it (see ctlToken).
func ctlServer(g ctlFlags) (*url.URL, string, error) {
	server := firstOf(g.server, os.Getenv("MERIDIAN_SERVER"), defaultServer)
	u, err := parseServer(server)
	if err != nil {
		return nil, "", usagef("--server %q: want a URL like https://ns1.example.net:8053 or http://127.0.0.1:8053", server)
	}
	token, err := ctlToken(g, u.String() == defaultServer)
	return u, token, err
}

// parseServer reads --server as the client does: a URL, or host:port
// for http.
func parseServer(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("not an http or https URL")
	}
	return u, nil
}

// loopbackHost says whether host is this machine: a loopback address or
// localhost.
func loopbackHost(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback()
	}
	return strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")
}

// ctlTLS is the TLS configuration the flags and environment ask for:
// the CAs of --cacert instead of the system's, a client certificate; nil
// when they ask for nothing.
func ctlTLS(g ctlFlags) (*tls.Config, error) {
	cacert := firstOf(g.cacert, os.Getenv("MERIDIAN_CACERT"))
	cert := firstOf(g.cert, os.Getenv("MERIDIAN_CERT"))
	key := firstOf(g.key, os.Getenv("MERIDIAN_KEY"))
	if cacert == "" && cert == "" && key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		b, err := tlsfiles.Read(cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool, _, err := tlsfiles.ParseCABundle(b)
		if err != nil {
			return nil, fmt.Errorf("--cacert %s: %w", cacert, err)
		}
		c.RootCAs = pool
	}
	switch {
	case cert != "" && key == "":
		return nil, usagef("--cert needs --key (or $MERIDIAN_KEY)")
	case cert == "" && key != "":
		return nil, usagef("--key needs --cert (or $MERIDIAN_CERT)")
	case cert != "":
		probs, _, _ := tlsfiles.CheckPair(tlsfiles.Pair{CertField: "--cert", CertFile: cert, KeyField: "--key", KeyFile: key,
			Usage: x509.ExtKeyUsageClientAuth, UsageHint: "the server refuses it: it needs clientAuth (deploy/certs.sh client)"}, time.Now())
		if errs := tlsfiles.Errors(probs); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %s", errs[0].Field, errs[0].Message)
		}
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c, nil
}

// writeOpts are the client's options for a write, from the flags.
func (x *ctl) writeOpts(extra ...client.WriteOption) []client.WriteOption {
	opts := slices.Clone(extra)
	if x.g.dryRun {
		opts = append(opts, client.DryRun())
	}
	if x.g.force {
		opts = append(opts, client.Force())
	}
	return opts
}

// explainErr turns what the client returns into what an operator reads:
// an unreachable server says where ctl looked, a write refused for
// leaving services answering NODATA says which and how to force it.
func (x *ctl) explainErr(err error) error {
	if err == nil || errors.Is(err, errDiffers) {
		return err
	}
	var ue errUsage
	if errors.As(err, &ue) {
		return err
	}
	if p := client.ProblemOf(err); p != nil {
		if len(p.NoData) > 0 {
			return fmt.Errorf("%d refused: %s; --force makes the write anyway", p.Status, describeNoData(p.NoData))
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("the Meridian API at %s did not answer within %v", x.c.Server(), x.g.timeout)
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return fmt.Errorf("the Meridian API at %s shows a certificate ctl does not trust (%v): --cacert or MERIDIAN_CACERT name the CA that signed it", x.c.Server(), cve.Err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		// The server ended the handshake with an alert: a client
		// certificate missing or not signed by its api.client_ca.
		return fmt.Errorf("the Meridian API at %s refused the TLS connection (%v): it asks for a client certificate its CA signed; --cert and --key (or MERIDIAN_CERT and MERIDIAN_KEY) give one", x.c.Server(), oe.Err)
	}
	if errors.As(err, &oe) {
		return fmt.Errorf("cannot reach the Meridian API at %s (is the server running? --server or MERIDIAN_SERVER say where): %v", x.c.Server(), rootCause(err))
	}
	return err
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

// ctlToken finds the token: --token, --token-file, $MERIDIAN_TOKEN,
// $MERIDIAN_TOKEN_FILE, then, for the default server only (local),
// data/admin.token when present (what `make run` writes): a token for
// this machine's server is never sent to another. None is not an error
// (reads may be open).
func ctlToken(g ctlFlags, defaultServer bool) (string, error) {
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
		if !defaultServer {
			return "", nil
		}
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

// notFound adds "did you mean" to a 404 for the region or service name:
// the names of that kind that exist and are close to it.
func (x *ctl) notFound(ctx context.Context, err error, kind, name string) error {
	if client.StatusCode(err) != http.StatusNotFound {
		return err
	}
	names := x.names(ctx, kind)
	if kind == "service" {
		name = canonical(name)
	}
	if h := suggest.Hint(name, names); h != "" {
		return fmt.Errorf("%w; %s", err, h)
	}
	return err
}

// names lists the regions or services of the server; none when it cannot.
func (x *ctl) names(ctx context.Context, kind string) []string {
	var names []string
	switch kind {
	case "region":
		if l, err := x.c.Regions(ctx); err == nil {
			for _, r := range l.Regions {
				names = append(names, r.Name)
			}
		}
	case "service":
		if l, err := x.c.Services(ctx); err == nil {
			for _, s := range l.Services {
				names = append(names, s.Name)
			}
		}
	}
	return names
}
