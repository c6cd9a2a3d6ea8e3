//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

var (
	repoRoot string // the repository (the parent of e2e/)
	runDir   string // this run's certificates, configs, data and logs
	binary   string // the meridian binary under test
)

// waitLimit bounds every wait for something to happen: a liveness limit
// for a stuck run on a loaded machine, never a speed check.
const waitLimit = 30 * time.Second

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if runDir, err = os.MkdirTemp("", "meridian-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// A stop by signal (make interrupted) still ends every process we
	// started; the processes also die with us (Pdeathsig) if we are killed.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		stopAll()
		fmt.Fprintf(os.Stderr, "e2e: stopped by %v; run directory kept: %s\n", s, runDir)
		os.Exit(1)
	}()

	code := 1
	if err := buildBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	} else if err := makeAPICA(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	} else {
		code = m.Run()
	}
	stopAll()
	// Every process of this run names the run directory on its command
	// line: none may be left.
	if left := leftovers(runDir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: processes left running:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	} else {
		fmt.Println("e2e: no process of this run left running")
	}
	printFigures()
	if code != 0 || os.Getenv("MERIDIAN_E2E_KEEP") != "" {
		fmt.Printf("e2e: run directory (certificates, configs, data, logs) kept: %s\n", runDir)
	} else {
		os.RemoveAll(runDir)
	}
	return code
}

// buildBinary takes MERIDIAN_BIN, or builds cmd/meridian into the run
// directory so a standalone `go test` never tests a stale binary.
func buildBinary() error {
	if b := os.Getenv("MERIDIAN_BIN"); b != "" {
		abs := b
		if !filepath.IsAbs(b) { // relative to the repository, as make passes it
			abs = filepath.Join(repoRoot, b)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("MERIDIAN_BIN: %w", err)
		}
		binary = abs
		return nil
	}
	binary = filepath.Join(runDir, "meridian")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, "./cmd/meridian")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/meridian: %v\n%s", err, out)
	}
	return nil
}

// figure is one measured number of a scenario, printed in the summary.
type figure struct {
	scenario, what, value string
}

var figures struct {
	sync.Mutex
	list []figure
}

// report logs a scenario's measured figure and keeps it for the summary
// printed at the end of the run.
func report(t testing.TB, scenario, what, format string, args ...any) {
	t.Helper()
	v := fmt.Sprintf(format, args...)
	t.Logf("%s: %s: %s", scenario, what, v)
	figures.Lock()
	figures.list = append(figures.list, figure{scenario, what, v})
	figures.Unlock()
}

// slack is how far past its documented goal or bound a timing may go
// before the suite fails: a loaded machine stretches timings a little, a
// regression usually more.
const slack = 2

// bounded checks timings against a documented goal or bound: one over
// slack times the bound fails the test. The verdict goes into the report.
func bounded(t testing.TB, what string, bound time.Duration, took ...time.Duration) string {
	t.Helper()
	verdict := "within"
	for _, d := range took {
		if d > slack*bound {
			t.Errorf("%s: %v, over %d × its bound %v", what, d.Round(time.Millisecond), slack, bound)
			return fmt.Sprintf("OVER %d × the bound: failed", slack)
		}
		if d > bound {
			verdict = fmt.Sprintf("over the bound, within %d × it", slack)
		}
	}
	return verdict
}

func printFigures() {
	figures.Lock()
	defer figures.Unlock()
	if len(figures.list) == 0 {
		return
	}
	sort.SliceStable(figures.list, func(i, j int) bool { return figures.list[i].scenario < figures.list[j].scenario })
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tmeasured\tvalue")
	for _, f := range figures.list {
		fmt.Fprintf(w, "%s\t%s\t%s\n", f.scenario, f.what, f.value)
	}
	w.Flush()
	fmt.Printf("\ne2e figures:\n%s\n", b.String())
}

// leftovers lists the running processes whose command line mentions dir
// (pid and command line), from /proc.
func leftovers(dir string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []string{"cannot read /proc: " + err.Error()}
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
	}
	return out
}

// errorRecorder is a testing.TB whose Errorf is recorded, not reported.
type errorRecorder struct {
	testing.TB
	errors []string
}

func (r *errorRecorder) Helper() {}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestBounded: a timing over twice its bound fails the run; one over the
// bound but within twice it is reported as such.
func TestBounded(t *testing.T) {
	const bound = time.Second
	for _, tc := range []struct {
		name    string
		took    []time.Duration
		fails   bool
		verdict string
	}{
		{"within", []time.Duration{900 * time.Millisecond, bound}, false, "within"},
		{"over the bound", []time.Duration{500 * time.Millisecond, 1900 * time.Millisecond}, false, "over the bound, within 2 × it"},
		{"over twice the bound", []time.Duration{500 * time.Millisecond, 2100 * time.Millisecond}, true, "OVER 2 × the bound: failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &errorRecorder{TB: t}
			if got := bounded(r, "x", bound, tc.took...); got != tc.verdict || (len(r.errors) > 0) != tc.fails {
				t.Errorf("verdict %q, errors %q; want %q, failing %v", got, r.errors, tc.verdict, tc.fails)
			}
		})
	}
}
