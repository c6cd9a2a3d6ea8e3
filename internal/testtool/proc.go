package testtool

import (
	"os/exec"
	"testing"

	"github.com/meridian-gslb/meridian/internal/childproc"
)

// Proc is a long-running program a test started with Start: it dies with
// the test binary, however that ends, and with the test that started it.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped
	err  error         // its exit status, once done is closed
}

// Start starts cmd in a process group of its own that gets SIGKILL when
// the test binary dies (Linux), so a test killed by its timeout or a
// signal leaves no server behind holding ports and inherited descriptors.
// When the test ends, whatever is left of the group is killed and the
// process reaped. Start owns cmd.Wait: use Done or Wait instead.
func Start(tb testing.TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", cmd.Path, err)
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		// The group too: a server's own children (workers, a shell's
		// pipeline) would outlive a kill of the leader alone.
		childproc.KillGroup(cmd)
		<-p.done
	})
	return p
}

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its status as
// exec.Cmd.Wait does.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}
