package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A member can run in a child process, so that nothing it does can end
// the process that serves DNS: etcd ends its process on some failures (a
// WAL it cannot write or purge when the disk is full or the descriptors
// are used up), and a child's crash ends only the child. The parent
// starts the child (a program that calls RunChild) with StartProcess and
// talks to it through its standard streams:
//
//   - stdin: the parent writes the Config as one JSON line, then nothing;
//     closing stdin (also by the parent's death) stops the member and
//     the child;
//   - stdout: the child writes one JSON event per line, {"ready": [client
//     URLs]} once the member serves, {"error": "..."} when it fails;
//   - stderr: the child's log as slog JSON lines, which the parent passes
//     on to its own log; anything else there (a crash's trace) is passed
//     on as one error record.

// childEvent is a line of the child's stdout.
type childEvent struct {
	Ready []string `json:"ready,omitempty"`
	Error string   `json:"error,omitempty"`
}

// childConfig is Config as the parent sends it.
type childConfig struct {
	Dir             string        `json:"dir"`
	ClientURL       string        `json:"client_url"`
	PeerURL         string        `json:"peer_url"`
	Name            string        `json:"name,omitempty"`
	InitialCluster  string        `json:"initial_cluster,omitempty"`
	ElectionTimeout time.Duration `json:"election_timeout,omitempty"`
	TLS             *MemberTLS    `json:"tls,omitempty"`
}

// RunChild is the child's side: it reads the Config from stdin, runs the
// member, reports on stdout and logs to stderr, until stdin ends or the
// member fails. Signals that a terminal or a service manager sends to the
// whole process group (SIGINT, SIGTERM, SIGHUP) are ignored: the parent
// stops the member when it is done with it.
func RunChild(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration { // "1.5s" in the parent's log, not nanoseconds
				return slog.String(a.Key, a.Value.Duration().String())
			}
			return a
		}}))
	events := json.NewEncoder(stdout)
	fail := func(err error) error {
		_ = events.Encode(childEvent{Error: err.Error()})
		return err
	}
	in := bufio.NewReader(stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("embedded etcd: reading the configuration: %w", err))
	}
	var cc childConfig
	if err := json.Unmarshal(line, &cc); err != nil {
		return fail(fmt.Errorf("embedded etcd: configuration: %w", err))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, in) // until the parent closes stdin or dies
		cancel()
	}()
	e, err := Start(ctx, Config{Dir: cc.Dir, ClientURL: cc.ClientURL, PeerURL: cc.PeerURL, Name: cc.Name,
		InitialCluster: cc.InitialCluster, ElectionTimeout: cc.ElectionTimeout, TLS: cc.TLS, Logger: log})
	if err != nil {
		return fail(err)
	}
	defer e.Close()
	if err := events.Encode(childEvent{Ready: e.Endpoints()}); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		if err == nil {
			err = errors.New("embedded etcd stopped")
		}
		return fail(err)
	}
}

// Process is a member running in a child process.
type Process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *slog.Logger

	ready     chan struct{}
	endpoints []string
	done      chan struct{}
	stopping  chan struct{}
	stopOnce  sync.Once

	mu        sync.Mutex
	reported  string // the child's error event
	lastError string // the last error the child logged
	err       error  // why it ended, once done
}

// StartProcess starts name with args as the child running the member of
// cfg and returns at once; Ready says when the member serves, Done when
// the child has ended. The child's log goes to cfg.Logger.
func StartProcess(cfg Config, name string, args ...string) (*Process, error) {
	if _, err := embedConfig(cfg); err != nil {
		return nil, err
	}
	conf, err := json.Marshal(childConfig{Dir: cfg.Dir, ClientURL: cfg.ClientURL, PeerURL: cfg.PeerURL, Name: cfg.Name,
		InitialCluster: cfg.InitialCluster, ElectionTimeout: cfg.ElectionTimeout, TLS: cfg.TLS})
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Process{cmd: exec.Command(name, args...), log: log,
		ready: make(chan struct{}), done: make(chan struct{}), stopping: make(chan struct{})}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	// The pipe holds far more than one line: this does not block.
	if _, err := p.stdin.Write(append(conf, '\n')); err != nil {
		p.stdin.Close()
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	var streams sync.WaitGroup
	streams.Go(func() { p.readEvents(stdout) })
	streams.Go(func() { p.relayLog(stderr) })
	go func() {
		streams.Wait() // Wait closes the pipes: read them to their end first
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = p.failure(err)
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Ready is closed once the member serves.
func (p *Process) Ready() <-chan struct{} { return p.ready }

// Endpoints are the member's client URLs, once Ready.
func (p *Process) Endpoints() []string { return append([]string(nil), p.endpoints...) }

// Done is closed once the child has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err says why the child ended, once Done: nil after Stop.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop ends the child: it closes the member and exits once its stdin is
// closed; after grace it is killed. Stop waits until it has ended.
func (p *Process) Stop(grace time.Duration) {
	p.stopOnce.Do(func() { close(p.stopping) })
	p.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.log.Warn("embedded etcd did not stop in time; killing it", "pid", p.Pid(), "grace", grace)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// failure says why the child ended: what it reported, else the last
// error it logged, with its exit status.
func (p *Process) failure(waitErr error) error {
	select {
	case <-p.stopping:
		return nil
	default:
	}
	why := p.reported
	if why == "" {
		why = p.lastError
	}
	switch {
	case why != "" && waitErr != nil:
		return fmt.Errorf("%s (%w)", why, waitErr)
	case why != "":
		return errors.New(why)
	case waitErr != nil:
		return fmt.Errorf("embedded etcd exited: %w", waitErr)
	}
	return errors.New("embedded etcd exited")
}

func (p *Process) readEvents(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var ev childEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch {
		case ev.Ready != nil && p.endpoints == nil:
			p.endpoints = ev.Ready
			close(p.ready)
		case ev.Error != "":
			p.mu.Lock()
			p.reported = ev.Error
			p.mu.Unlock()
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// maxRawOutput bounds what is kept of output that is not a log line (a
// crash's trace) before it is logged.
const maxRawOutput = 64 << 10

// relayLog passes the child's log lines on to p.log, as records of the
// child's time, level, message and attributes in their order.
func (p *Process) relayLog(r io.Reader) {
	var raw bytes.Buffer
	flush := func() {
		if raw.Len() == 0 {
			return
		}
		out := raw.String()
		first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		p.mu.Lock()
		p.lastError = first
		p.mu.Unlock()
		p.log.Error("embedded etcd wrote", "pid", p.Pid(), "output", out)
		raw.Reset()
	}
	rd := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 {
			if rec, ok := parseLogLine(line); ok {
				flush()
				if rec.Level >= slog.LevelError {
					msg := rec.Message
					rec.Attrs(func(a slog.Attr) bool {
						if a.Key == "error" {
							msg += ": " + a.Value.String()
						}
						return true
					})
					p.mu.Lock()
					p.lastError = msg
					p.mu.Unlock()
				}
				if p.log.Enabled(context.Background(), rec.Level) {
					_ = p.log.Handler().Handle(context.Background(), rec)
				}
			} else if raw.Len() < maxRawOutput {
				raw.Write(line[:min(len(line), maxRawOutput-raw.Len())])
			}
		}
		if err != nil {
			flush()
			return
		}
	}
}

// parseLogLine reads a line of slog's JSON handler back into a record.
func parseLogLine(line []byte) (slog.Record, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return slog.Record{}, false
	}
	var (
		when  time.Time
		level slog.Level
		msg   string
		attrs []slog.Attr
		found int
	)
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return slog.Record{}, false
		}
		key, _ := kt.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return slog.Record{}, false
		}
		s, _ := v.(string)
		switch key {
		case slog.TimeKey:
			when, err = time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return slog.Record{}, false
			}
			found++
		case slog.LevelKey:
			if level.UnmarshalText([]byte(s)) != nil {
				return slog.Record{}, false
			}
			found++
		case slog.MessageKey:
			msg = s
			found++
		default:
			attrs = append(attrs, slog.Any(key, v))
		}
	}
	if found != 3 {
		return slog.Record{}, false
	}
	rec := slog.NewRecord(when, level, msg, 0)
	rec.AddAttrs(attrs...)
	return rec, true
}

// Executable is the program to start as the child: this very binary,
// also when its file was replaced since it started (an upgrade).
func Executable() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}
