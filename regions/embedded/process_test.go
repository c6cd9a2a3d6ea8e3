package embedded_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/regions/embedded"
)

// TestMain lets this test binary be the child of StartProcess: "member"
// runs one (embedded.RunChild), "crash" logs a warning and panics.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "member":
			if embedded.RunChild(context.Background(), os.Stdin, os.Stdout, os.Stderr) != nil {
				os.Exit(1)
			}
			os.Exit(0)
		case "crash":
			slog.New(slog.NewJSONHandler(os.Stderr, nil)).Warn("about to fail", "took", "1.5s", "attempt", 3)
			panic("boom")
		}
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, cfg embedded.Config, mode string) (*embedded.Process, *testlog.Buffer) {
	t.Helper()
	log := &testlog.Buffer{}
	cfg.Logger = log.Logger()
	p, err := embedded.StartProcess(cfg, os.Args[0], mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(etcdtest.WaitLimit) })
	return p, log
}

func waitReady(t *testing.T, p *embedded.Process, log *testlog.Buffer) {
	t.Helper()
	select {
	case <-p.Ready():
	case <-p.Done():
		t.Fatalf("the child ended: %v\n%s", p.Err(), log)
	case <-time.After(etcdtest.WaitLimit):
		t.Fatalf("the member did not start\n%s", log)
	}
}

func waitDone(t *testing.T, p *embedded.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(etcdtest.WaitLimit):
		t.Fatal("the child did not end")
	}
}

// TestProcess: a member in a child process serves; when the child is
// killed, Err says so; a new child reopens the data; Stop ends it
// cleanly.
func TestProcess(t *testing.T) {
	m := etcdtest.NewMember(t, "child")
	ctx := etcdtest.Ctx(t)
	p, log := startChild(t, m.Config(), "member")
	waitReady(t, p, log)
	if eps := p.Endpoints(); len(eps) != 1 || eps[0] != m.ClientURL() {
		t.Fatalf("endpoints %v, want %s", eps, m.ClientURL())
	}
	if p.Pid() == os.Getpid() {
		t.Fatal("the member runs in this process")
	}
	c := etcdtest.Connect(t, m.ClientURL())
	if _, err := c.Put(ctx, "/meridian/regions/eu-west", "{}"); err != nil {
		t.Fatal(err)
	}

	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "signal: killed") {
		t.Fatalf("Err() = %v, want the kill", err)
	}

	p, log = startChild(t, m.Config(), "member")
	waitReady(t, p, log)
	if resp, err := c.Get(ctx, "/meridian/regions/eu-west"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("after a restart: %v %v", resp, err)
	}
	p.Stop(etcdtest.WaitLimit)
	if err := p.Err(); err != nil {
		t.Fatalf("Err() after Stop = %v", err)
	}
}

// TestProcessFailures: why a child ended is what it reported (a failed
// start), or the last thing it said (a crash, whose trace is logged as
// one record); its log lines come out in the parent's log as records.
func TestProcessFailures(t *testing.T) {
	t.Run("start fails", func(t *testing.T) {
		m := etcdtest.NewMember(t, "taken")
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", m.ClientPort))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		p, _ := startChild(t, m.Config(), "member")
		waitDone(t, p)
		if err := p.Err(); err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "exit status 1") {
			t.Fatalf("Err() = %v", err)
		}
	})
	t.Run("crash", func(t *testing.T) {
		p, log := startChild(t, etcdtest.NewMember(t, "crash").Config(), "crash")
		waitDone(t, p)
		if err := p.Err(); err == nil || !strings.HasPrefix(err.Error(), "panic: boom") || !strings.Contains(err.Error(), "exit status 2") {
			t.Fatalf("Err() = %v", err)
		}
		out := log.String()
		for _, want := range []string{`level=WARN msg="about to fail" took=1.5s attempt=3`, `level=ERROR msg="embedded etcd wrote"`, "goroutine 1"} {
			if !strings.Contains(out, want) {
				t.Errorf("the log lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("bad configuration", func(t *testing.T) {
		if _, err := embedded.StartProcess(embedded.Config{Dir: t.TempDir(), ClientURL: "192.0.2.1:2379"}, os.Args[0], "member"); err == nil {
			t.Fatal("started a member on a non-loopback address")
		}
	})
}
