package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
)

// embeddedEtcd runs the embedded etcd member of a server configured
// without etcd endpoints, in a child process (`meridian etcd-member`, this
// binary): etcd ends its process on some failures (a WAL it cannot write
// or purge, with the disk full or the descriptors used up), and that must
// not end the process that answers DNS. DNS does not wait for the
// member: it is started in the background and started again, after a
// jittered backoff, while it fails to start (its port taken, its
// directory unusable) and after it fails or its process ends while
// running. Meanwhile the server answers from its last snapshot, and the
// etcd client, built on the member's fixed address, connects once the
// member runs again.
type embeddedEtcd struct {
	cfg embedded.Config
	log *slog.Logger
	// Waits between attempts: from minBackoff, doubling up to maxBackoff,
	// each jittered to [d/2, d].
	minBackoff, maxBackoff time.Duration

	mu     sync.Mutex
	member *embedded.Process
	status apitypes.EtcdMember
}

// etcdMemberCommand is the hidden subcommand that runs the member.
const etcdMemberCommand = "etcd-member"

// memberStopGrace bounds a member's clean stop before it is killed.
const memberStopGrace = 10 * time.Second

func newEmbeddedEtcd(cfg embedded.Config, log *slog.Logger) *embeddedEtcd {
	return &embeddedEtcd{cfg: cfg, log: log, minBackoff: 250 * time.Millisecond, maxBackoff: 10 * time.Second}
}

// startChild starts this binary as the member's process.
func startChild(cfg embedded.Config) (*embedded.Process, error) {
	exe, err := embedded.Executable()
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	return embedded.StartProcess(cfg, exe, etcdMemberCommand)
}

// runEtcdMember is `meridian etcd-member`: the child process of a server
// that runs its embedded etcd (embedded.RunChild).
func runEtcdMember(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "meridian %s: takes no arguments; a server starts it\n", etcdMemberCommand)
		return 2
	}
	if err := embedded.RunChild(ctx, os.Stdin, stdout, stderr); err != nil {
		return 1
	}
	return 0
}

// run starts the member and keeps it running until ctx ends; the member
// is left running for close, so that the client can be closed first.
func (e *embeddedEtcd) run(ctx context.Context) error {
	backoff := e.minBackoff
	for {
		p, err := startChild(e.cfg)
		if err == nil {
			e.mu.Lock()
			e.member = p
			e.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil
			case <-p.Done():
			case <-p.Ready():
				started := time.Now()
				e.started(p)
				select {
				case <-ctx.Done():
					return nil
				case <-p.Done():
				}
				if time.Since(started) > e.maxBackoff {
					backoff = e.minBackoff // it ran for a while: not a crash loop
				}
			}
			e.mu.Lock()
			e.member = nil
			e.mu.Unlock()
			if err = p.Err(); err == nil {
				err = errors.New("embedded etcd stopped")
			}
		}
		wait := jitter(backoff)
		e.failed(err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, e.maxBackoff)
	}
}

func (e *embeddedEtcd) started(p *embedded.Process) {
	e.mu.Lock()
	failures := e.status.Failures
	e.status.Running, e.status.PID, e.status.Since, e.status.NextAttempt = true, p.Pid(), time.Now(), time.Time{}
	e.mu.Unlock()
	if failures > 0 {
		e.log.Info("embedded etcd started", "endpoints", p.Endpoints(), "pid", p.Pid(), "failures_before", failures)
	} else {
		e.log.Debug("embedded etcd started", "endpoints", p.Endpoints(), "pid", p.Pid())
	}
}

// failed records a failed start, or a failure of the running member;
// a failure of the running member is logged as an error, the first
// failed start as a warning, the next ones at debug level.
func (e *embeddedEtcd) failed(err error, retryIn time.Duration) {
	now := time.Now()
	e.mu.Lock()
	wasRunning := e.status.Running
	first := e.status.Failures == 0
	e.status.Running, e.status.PID = false, 0
	e.status.Failures++
	e.status.LastError, e.status.LastErrorTime = err.Error(), now
	e.status.NextAttempt = now.Add(retryIn)
	if wasRunning || e.status.Since.IsZero() {
		e.status.Since = now
	}
	e.mu.Unlock()
	switch {
	case wasRunning:
		e.log.Error("embedded etcd failed; DNS answers from the last state; restarting it", "err", err, "retry_in", retryIn.Round(time.Millisecond))
	case first:
		e.log.Warn("embedded etcd did not start; serving the persisted state and retrying", "err", err, "retry_in", retryIn.Round(time.Millisecond))
	default:
		e.log.Debug("embedded etcd still does not start", "err", err, "retry_in", retryIn.Round(time.Millisecond))
	}
}

// memberStatus returns the member's status.
func (e *embeddedEtcd) memberStatus() apitypes.EtcdMember {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// close stops the member, if it runs, and waits until its process ended.
func (e *embeddedEtcd) close() {
	e.mu.Lock()
	p := e.member
	e.member = nil
	e.mu.Unlock()
	if p != nil {
		p.Stop(memberStopGrace)
	}
}

// etcdStatus is etcd's part of /v1/status and /health/details, and
// ReasonCode the meridian_etcd_down label of its Reason.
type etcdStatus struct {
	apitypes.EtcdStatus
	ReasonCode string
}

// The reasons for etcd being down, as meridian_etcd_down labels them.
const (
	etcdDownEmbedded    = "embedded_not_running"
	etcdDownUnreachable = "unreachable"
)

func (s *server) etcdStatus() etcdStatus {
	var ws store.WatchStatus
	if s.watcher != nil { // nil only before run
		ws = s.watcher.Status()
	}
	st := etcdStatus{EtcdStatus: apitypes.EtcdStatus{Embedded: s.embedded != nil, Up: ws.Connected, Watch: ws}}
	if s.embedded != nil {
		m := s.embedded.memberStatus()
		st.Member = &m
	}
	switch {
	case st.Up:
	case st.Member != nil && !st.Member.Running:
		st.ReasonCode, st.Reason = etcdDownEmbedded, "the embedded etcd is not running"
		if st.Member.LastError != "" {
			st.Reason += ": " + st.Member.LastError
		}
	default:
		st.ReasonCode, st.Reason = etcdDownUnreachable, "not in sync with etcd"
		if ws.LastError != "" {
			st.Reason += ": " + ws.LastError
		}
	}
	return st
}

// jitter spreads retries: a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
