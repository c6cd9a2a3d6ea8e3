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
// to be killed. The sleep gets fd 3, the write end of the outer test's
// pipe, so that the pipe reads EOF only once the sleep is gone.
const orphanEnv = "TESTTOOL_ORPHAN_PARENT"

func orphanParent(t *testing.T) {
	alive := os.NewFile(3, "alive")
	cmd := exec.Command(sleepPath(t), "60")
	cmd.ExtraFiles = []*os.File{alive}
	p := Start(t, cmd)
	alive.Close()
	os.Stdout.WriteString(strconv.Itoa(p.Cmd.Process.Pid) + "\n")
	select {}
}

// sleepPath finds sleep, from coreutils (essential on Debian).
func sleepPath(t *testing.T) string {
	path, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal("sleep not found (Debian package coreutils)")
	}
	return path
}

// TestStartDiesWithParent kills a test binary that started a sleep with
// Start, as go test's timeout does, and checks the sleep went with it.
func TestStartDiesWithParent(t *testing.T) {
	if os.Getenv(orphanEnv) != "" {
		orphanParent(t)
	}
	sleepPath(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
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
		t.Fatalf("child printed no pid: %v (%v)", err, child.Wait())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()

	// EOF on the pipe is the sleep's exit (the child's copy closed with it).
	gone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		gone <- err
	}()
	select {
	case err := <-gone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("sleep (pid %d) outlived the test binary that started it", pid)
	}
}
