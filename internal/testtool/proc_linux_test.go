package testtool

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphanEnv makes TestStartDiesWithParent, in a child test binary, the
// middle process: it starts a sleep with Start, prints its pid and waits
// to be killed.
const orphanEnv = "TESTTOOL_ORPHAN_PARENT"

// TestStartDiesWithParent kills a test binary that started a sleep with
// Start, as go test's timeout does, and checks the sleep went with it.
func TestStartDiesWithParent(t *testing.T) {
	if os.Getenv(orphanEnv) != "" {
		cmd := exec.Command(need(t, "sleep"), "60")
		cmd.ExtraFiles = []*os.File{os.NewFile(3, "alive")}
		p := Start(t, cmd)
		cmd.ExtraFiles[0].Close()
		os.Stdout.WriteString(strconv.Itoa(p.Cmd.Process.Pid) + "\n")
		select {}
	}
	need(t, "sleep")
	alive, w := alivePipe(t)
	child := exec.Command(os.Args[0], "-test.run=^TestStartDiesWithParent$", "-test.count=1")
	child.Env = append(os.Environ(), orphanEnv+"=1")
	child.ExtraFiles = []*os.File{w}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = child.Process.Kill()
		t.Fatalf("the child printed no pid: %v (%v)", err, child.Wait())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if !alive.goneWithin(10 * time.Second) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep (pid %d) outlived the test binary that started it", pid)
	}
}

// TestStartKillsGroup checks that the end of a test kills what the
// program it started has started in turn, not the program alone.
func TestStartKillsGroup(t *testing.T) {
	sh := need(t, "sh")
	need(t, "sleep")
	alive, w := alivePipe(t)
	var pid int
	t.Run("shell", func(t *testing.T) {
		// The echo comes after the fork: the sleep is there to kill.
		cmd := exec.Command(sh, "-c", "sleep 60 & echo $!; wait")
		out, outw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd.Stdout = outw
		cmd.ExtraFiles = []*os.File{w}
		Start(t, cmd)
		outw.Close()
		w.Close()
		line, _ := bufio.NewReader(out).ReadString('\n')
		if pid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
			t.Fatalf("the shell said %q: %v", line, err)
		}
	})
	if !alive.goneWithin(10 * time.Second) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("the shell's sleep outlived the test that started the shell")
	}
}

// need finds a program from an essential Debian package (coreutils, dash).
func need(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %v", name, err)
	}
	return path
}

// alive reads EOF once every process holding a copy of the pipe's write
// end, handed down as fd 3, has exited.
type alive struct{ r *os.File }

func alivePipe(t *testing.T) (alive, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return alive{r}, w
}

// goneWithin reports whether the pipe read EOF within d.
func (a alive) goneWithin(d time.Duration) bool {
	eof := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, a.r)
		eof <- err
	}()
	select {
	case err := <-eof:
		return err == nil
	case <-time.After(d):
		return false
	}
}
