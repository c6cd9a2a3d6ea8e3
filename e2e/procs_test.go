//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/childproc"
)

// proc is a process the suite started: in a process group of its own,
// logging to runDir/logs/NAME.log (appended across restarts), killed with
// the test binary (Pdeathsig) and tracked until it has exited.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

// live holds every process started and not yet reaped, so that stopAll
// can end them whatever happened to the test that started them.
var live struct {
	sync.Mutex
	procs map[*proc]struct{}
}

// startProc starts name (the log's name) as args. It fails t when the
// program cannot be started.
func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(runDir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	fmt.Fprintf(f, "=== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	live.Lock()
	if live.procs == nil {
		live.procs = map[*proc]struct{}{}
	}
	live.procs[p] = struct{}{}
	live.Unlock()
	go func() {
		p.err = cmd.Wait()
		live.Lock()
		delete(live.procs, p)
		live.Unlock()
		close(p.done)
	}()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited says whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process's group.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), sig)
	}
}

// kill ends the process group at once (SIGKILL), as a crash would, and
// waits until it has exited.
func (p *proc) kill() error {
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(waitLimit):
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.name, p.pid())
	}
}

// stop asks the process to end (SIGTERM), and kills its group when it has
// not ended within grace.
func (p *proc) stop(grace time.Duration) error {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return p.kill()
	}
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// stopAll ends every process still running: the last line of defence
// after the tests' own cleanups.
func stopAll() {
	live.Lock()
	ps := make([]*proc, 0, len(live.procs))
	for p := range live.procs {
		ps = append(ps, p)
	}
	live.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(5 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
			}
		}()
	}
	wg.Wait()
}

// waitFor polls check until it returns nil, failing t with the last error
// after limit. The limit is a liveness bound, not a speed check.
func waitFor(t testing.TB, what string, limit time.Duration, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if errors.Is(err, errStop) || time.Since(start) > limit {
			t.Fatalf("%s: not after %v: %v", what, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errStop, wrapped by a check of waitFor, ends the wait at once.
var errStop = errors.New("giving up")

// exitedErr is the errStop a check returns when a process it waits on
// has died, with the end of its log.
func exitedErr(p *proc) error {
	return fmt.Errorf("%w: %s exited (%v); end of %s:\n%s", errStop, p.name, p.err, p.log, p.tail(30))
}
