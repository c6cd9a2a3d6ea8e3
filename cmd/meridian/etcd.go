package main

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
)

// embeddedEtcd runs the embedded etcd member of a server configured
// without etcd endpoints. DNS does not wait for it: it is started in the
// background and started again, after a jittered backoff, while it fails
// to start (its port taken, its directory unusable) and after it fails
// while running. Meanwhile the server answers from its persisted state,
// and the etcd client, built on the member's fixed address, connects once
// the member runs.
type embeddedEtcd struct {
	cfg embedded.Config
	log *slog.Logger
	// Waits between attempts: from minBackoff, doubling up to maxBackoff,
	// each jittered to [d/2, d].
	minBackoff, maxBackoff time.Duration

	mu     sync.Mutex
	member *embedded.Etcd
	status apitypes.EtcdMember
}

func newEmbeddedEtcd(cfg embedded.Config, log *slog.Logger) *embeddedEtcd {
	return &embeddedEtcd{cfg: cfg, log: log, minBackoff: 250 * time.Millisecond, maxBackoff: 10 * time.Second}
}

// run starts the member and keeps it running until ctx ends; the member
// is left running for close, so that the client can be closed first.
func (e *embeddedEtcd) run(ctx context.Context) error {
	backoff := e.minBackoff
	for {
		m, err := embedded.Start(ctx, e.cfg)
		if ctx.Err() != nil {
			if m != nil {
				m.Close()
			}
			return nil
		}
		if err == nil {
			started := time.Now()
			e.started(m)
			select {
			case <-ctx.Done():
				return nil
			case err = <-m.Err():
			}
			if err == nil {
				err = errors.New("stopped")
			}
			e.mu.Lock()
			e.member = nil
			e.mu.Unlock()
			m.Close()
			if time.Since(started) > e.maxBackoff {
				backoff = e.minBackoff // it ran for a while: not a crash loop
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

func (e *embeddedEtcd) started(m *embedded.Etcd) {
	e.mu.Lock()
	failures := e.status.Failures
	e.member = m
	e.status.Running, e.status.Since, e.status.NextAttempt = true, time.Now(), time.Time{}
	e.mu.Unlock()
	if failures > 0 {
		e.log.Info("embedded etcd started", "endpoints", m.Endpoints(), "failures_before", failures)
	} else {
		e.log.Debug("embedded etcd started", "endpoints", m.Endpoints())
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
	e.status.Running = false
	e.status.Failures++
	e.status.LastError, e.status.LastErrorTime = err.Error(), now
	e.status.NextAttempt = now.Add(retryIn)
	if wasRunning || e.status.Since.IsZero() {
		e.status.Since = now
	}
	e.mu.Unlock()
	switch {
	case wasRunning:
		e.log.Error("embedded etcd failed; serving the last state and restarting it", "err", err, "retry_in", retryIn.Round(time.Millisecond))
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

// close stops the member, if it runs.
func (e *embeddedEtcd) close() {
	e.mu.Lock()
	m := e.member
	e.member = nil
	e.mu.Unlock()
	if m != nil {
		m.Close()
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
