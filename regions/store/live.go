package store

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// Live holds the snapshot a server answers from. It starts from the state
// persisted in the data directory (so a server restarted while etcd is
// away still serves what it last knew), then takes every State the
// watcher delivers: it builds the snapshot off the query path, swaps it in
// and writes the state back to disk, at most once a second.
type Live struct {
	path   string
	opts   regions.SnapshotOptions
	log    *slog.Logger
	onSwap func(*regions.Snapshot)

	cur     atomic.Pointer[regions.Snapshot]
	builtAt atomic.Int64 // unix nanoseconds of the current snapshot's build
	source  atomic.Value // "file" or "etcd"
	builds  atomic.Uint64

	mu      sync.Mutex
	pending *regions.State // newest state not yet written
	wake    chan struct{}
}

// NewLive returns a Live that persists to path ("" disables persistence)
// and calls onSwap (may be nil) with every new snapshot.
func NewLive(path string, opts regions.SnapshotOptions, logger *slog.Logger, onSwap func(*regions.Snapshot)) *Live {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Live{path: path, opts: opts, log: logger, onSwap: onSwap, wake: make(chan struct{}, 1)}
	l.source.Store("")
	return l
}

// LoadPersisted serves the state saved by an earlier run, if there is
// one. A missing file is not an error; an unreadable one is, and leaves
// nothing loaded.
func (l *Live) LoadPersisted() error {
	if l.path == "" {
		return nil
	}
	st, err := LoadState(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	l.swap(st, "file")
	l.log.Info("serving the persisted state until etcd answers", "revision", st.Revision, "regions", len(st.Regions), "services", len(st.Services))
	return nil
}

// Apply builds a snapshot from st and serves it; the watcher's onState.
func (l *Live) Apply(st *regions.State) {
	l.swap(st, "etcd")
	if l.path == "" {
		return
	}
	l.mu.Lock()
	l.pending = st
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Live) swap(st *regions.State, source string) {
	start := time.Now()
	s := regions.BuildSnapshot(st, l.cur.Load(), l.opts)
	l.cur.Store(s)
	l.builtAt.Store(time.Now().UnixNano())
	l.source.Store(source)
	l.builds.Add(1)
	if l.onSwap != nil {
		l.onSwap(s)
	}
	if p := s.Problems(); len(p) > 0 {
		l.log.Warn("snapshot built with problems", "revision", st.Revision, "problems", p)
	}
	l.log.Debug("snapshot built", "revision", st.Revision, "took", time.Since(start))
}

// Current is the snapshot being served, nil before the first one.
func (l *Live) Current() *regions.Snapshot { return l.cur.Load() }

// Info says where the current snapshot came from and when it was built.
func (l *Live) Info() (source string, built time.Time, builds uint64) {
	ns := l.builtAt.Load()
	if ns != 0 {
		built = time.Unix(0, ns)
	}
	return l.source.Load().(string), built, l.builds.Load()
}

// Run writes delivered states to disk until ctx ends, at most once per
// second (the newest wins), and once more on the way out.
func (l *Live) Run(ctx context.Context) error {
	if l.path == "" {
		<-ctx.Done()
		return nil
	}
	limit := time.NewTicker(time.Second)
	defer limit.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return nil
		case <-l.wake:
		}
		l.flush()
		select {
		case <-ctx.Done():
			l.flush()
			return nil
		case <-limit.C:
		}
	}
}

func (l *Live) flush() {
	l.mu.Lock()
	st := l.pending
	l.pending = nil
	l.mu.Unlock()
	if st == nil {
		return
	}
	if err := SaveState(l.path, st); err != nil {
		// Serving goes on; only a restart without etcd would miss it.
		l.log.Error("cannot persist the state", "path", l.path, "err", err)
	}
}
