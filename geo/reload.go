package geo

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often Run checks the file when given a
// non-positive interval.
const DefaultPollInterval = 30 * time.Second

// Reloader serves lookups from the current DB and swaps in a new one
// atomically when the file changes (Run) or when asked (Reload, e.g. on
// SIGHUP). A lookup loads the current *DB once and uses it to the end, so it
// never sees half of an old and half of a new database; the old DB is freed
// by the garbage collector after the last such lookup returns (see DB).
type Reloader struct {
	path   string
	logger *slog.Logger
	cur    atomic.Pointer[DB]

	mu       sync.Mutex // serialises Reload; guards seen and onReload
	seen     fileStamp  // the file version last read, loaded or not
	onReload []func(*DB)

	statFailing bool // the file could not be stat'ed at the last poll
}

// fileStamp identifies a version of a file cheaply: replacing the file by
// rename changes the inode, rewriting it in place changes mtime or size.
type fileStamp struct {
	modTime int64 // ns since the epoch
	size    int64
	dev     uint64
	ino     uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	dev, ino := fileID(fi)
	return fileStamp{modTime: fi.ModTime().UnixNano(), size: fi.Size(), dev: dev, ino: ino}
}

// NewReloader opens the database at path. It fails if the file is missing
// or is not a supported database, so a server never starts without one.
// A nil logger discards log output.
func NewReloader(path string, logger *slog.Logger) (*Reloader, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, st, err := openFile(path)
	if err != nil {
		return nil, err
	}
	r := &Reloader{path: path, logger: logger, seen: st}
	r.cur.Store(db)
	info := db.Info()
	logger.Info("geoip database loaded", "path", path, "type", info.DatabaseType,
		"build_time", info.BuildTime, "records", info.Records)
	return r, nil
}

// openFile reads the file through one descriptor, so the stamp describes
// exactly the bytes read even if the file is replaced meanwhile.
func openFile(path string) (*DB, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("geoip database: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("geoip database: %w", err)
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fileStamp{}, fmt.Errorf("geoip database %s: %w", path, err)
	}
	st := stampOf(fi)
	db, err := openBytes(buf.Bytes(), path)
	if err != nil {
		return nil, st, fmt.Errorf("geoip database %s: %w", path, err)
	}
	return db, st, nil
}

// Current returns the database serving lookups now.
func (r *Reloader) Current() *DB {
	return r.cur.Load()
}

// Locate looks addr up in the current database (see DB.Locate).
func (r *Reloader) Locate(addr netip.Addr) Location {
	return r.cur.Load().Locate(addr)
}

// Reload reads the file again and swaps it in. If the new file cannot be
// read or is not a supported database, the old one keeps serving, the
// reason is logged and returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	db, st, err := openFile(r.path)
	if st != (fileStamp{}) {
		r.seen = st
	}
	if err != nil {
		r.logger.Error("geoip reload failed, keeping the previous database", "path", r.path, "err", err)
		return err
	}
	old := r.cur.Swap(db)
	info, prev := db.Info(), old.Info()
	r.logger.Info("geoip database reloaded", "path", r.path, "type", info.DatabaseType,
		"build_time", info.BuildTime, "records", info.Records, "previous_build_time", prev.BuildTime)
	for _, f := range r.onReload {
		f(db)
	}
	return nil
}

// OnReload registers f to be called with every database swapped in from
// then on, after the swap, in the goroutine that reloaded (Run's, or
// Reload's caller), one call at a time: what is compiled from the
// database (a snapshot's geo tables) is rebuilt there. A slow f delays
// the next reload, never a lookup.
func (r *Reloader) OnReload(f func(*DB)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onReload = append(r.onReload, f)
}

// Run polls the file every interval (DefaultPollInterval if interval <= 0)
// and reloads it when its mtime, size or inode changed. A version that
// failed to load is not retried until the file changes again, so a broken
// file is logged once, not at every poll. Run returns nil when ctx ends.
func (r *Reloader) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.poll()
		}
	}
}

// poll checks the file once and reloads it if it changed. Only one
// goroutine at a time may call it (Run's).
func (r *Reloader) poll() {
	fi, err := os.Stat(r.path)
	if err != nil {
		if !r.statFailing {
			r.logger.Warn("geoip database file unavailable, keeping the loaded one", "path", r.path, "err", err)
			r.statFailing = true
		}
		return
	}
	if r.statFailing {
		r.logger.Info("geoip database file available again", "path", r.path)
		r.statFailing = false
	}
	r.mu.Lock()
	changed := stampOf(fi) != r.seen
	r.mu.Unlock()
	if changed {
		_ = r.Reload() // logged by Reload; the old database keeps serving
	}
}
