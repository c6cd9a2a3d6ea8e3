package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/suggest"
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
	{words: []string{"audit"}, args: "[--limit N] [--after ID]", help: "the audit log, newest first",
		flags: []string{"limit", "after"}, nargs: exactly(0), run: (*ctl).audit},
	{words: []string{"state", "accept-empty"}, help: "serve the empty state from etcd this server refuses\n(etcd is meant to hold no regions and no services)",
		nargs: exactly(0), run: (*ctl).acceptEmpty},
}

// ctlGlobalFlags are the flags every command takes.
var ctlGlobalFlags = []string{"server", "token", "token-file", "o", "output", "timeout"}

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
  --server URL        the API (default $MERIDIAN_SERVER or http://127.0.0.1:8053)
  --token TOKEN       bearer token (default $MERIDIAN_TOKEN)
  --token-file FILE   file holding the token (default $MERIDIAN_TOKEN_FILE, or data/admin.token when present)
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
	timeout                          time.Duration

	file                                    string
	dryRun, force, replace, exitCode        bool
	clientAddr, resolver, qtype, auditAfter string
	limit                                   int
}

func (g *ctlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", "", "API base URL")
	fs.StringVar(&g.token, "token", "", "bearer token")
	fs.StringVar(&g.tokenFile, "token-file", "", "file holding the bearer token")
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
	err := ctlCommandLine(ctx, args, stdout)
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

func ctlCommandLine(ctx context.Context, args []string, stdout io.Writer) error {
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
	x, err := newCtl(g, stdout)
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

func newCtl(g ctlFlags, stdout io.Writer) (*ctl, error) {
	server := firstOf(g.server, os.Getenv("MERIDIAN_SERVER"), "http://127.0.0.1:8053")
	token, err := ctlToken(g)
	if err != nil {
		return nil, err
	}
	c, err := client.New(server, client.WithToken(token), client.WithHTTPClient(&http.Client{Timeout: g.timeout}),
		client.WithUserAgent("meridian-ctl"))
	if err != nil {
		return nil, usagef("--server %q: want a URL like http://127.0.0.1:8053", server)
	}
	return &ctl{g: g, c: c, out: &ctlOut{w: stdout, format: g.output}}, nil
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
	var oe *net.OpError
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
