package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/suggest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/latency"
)

// maxLatencyChunk bounds one chunk of a latency table, well below etcd's
// default request limit of 1.5 MiB.
const maxLatencyChunk = 1 << 20

// latencyManifest names the chunks of the current latency table. It is
// written after every chunk exists, so a watcher that sees it can read the
// whole table at the manifest's revision.
type latencyManifest struct {
	ID      string    `json:"id"`
	Entries int       `json:"entries"`
	Chunks  int       `json:"chunks"`
	Bytes   int       `json:"bytes"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// ImportLatency replaces the latency table with the CSV read from r
// ("cidr,region,rtt_ms" lines). The input is checked whole before anything
// is written, every region it names included (a name that is not a
// region is refused with its first line); the table is stored in chunks
// under a new id, then the manifest is switched to it and the old chunks
// deleted in one transaction, with the audit record, so watchers never
// see half a table. A table with the same content as the current one is
// not written again. An import that races another one fails with
// ErrConflict and leaves nothing behind.
func (s *Store) ImportLatency(ctx context.Context, r io.Reader, opts ...WriteOption) (int, error) {
	o := newWriteOpts(opts)
	// The regions are read once the upload is in, which may have taken
	// minutes: the caller's deadline for etcd starts then.
	var names []string
	var namesErr error
	entries, err := latency.ParseCSVFor(r, func(region string) (bool, string) {
		if names == nil && namesErr == nil {
			names, namesErr = s.regionNames(ctx)
		}
		if namesErr != nil || slices.Contains(names, region) {
			return false, ""
		}
		return true, suggest.Hint(region, names)
	})
	if namesErr != nil {
		return 0, fmt.Errorf("import latency: %w", namesErr)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", regions.ErrInvalid, err)
	}
	if len(entries) == 0 {
		return 0, fmt.Errorf("%w: latency table: no entries (ClearLatency removes a table)", regions.ErrInvalid)
	}
	csv := latency.FormatCSV(entries)
	chunkSize := maxLatencyChunk
	if s.latencyChunk > 0 {
		chunkSize = s.latencyChunk
	}
	chunks := splitLines(csv, chunkSize)

	mkey := s.keys.LatencyManifest()
	cur, err := s.read(ctx, mkey)
	if err != nil {
		return 0, fmt.Errorf("import latency: %w", err)
	}
	var old latencyManifest
	// An undecodable manifest is replaced; its chunks stay as garbage.
	_ = json.Unmarshal(cur.val, &old)

	id, err := newLatencyID()
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(csv)
	m := latencyManifest{ID: id, Entries: len(entries), Chunks: len(chunks), Bytes: len(csv), SHA256: hex.EncodeToString(sum[:]), Created: time.Now().UTC()}
	mval, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	ch := Change{Kind: "latency", Name: "table", Action: "import", Before: rawJSON(cur.val), After: mval,
		Changed: cur.val == nil || old.SHA256 != m.SHA256, DryRun: o.dryRun, Revision: cur.rev}
	if !ch.Changed {
		ch.After = ch.Before
	}
	if !ch.Changed || o.dryRun {
		o.done(&ch)
		return len(entries), nil
	}
	cleanup := func() {
		// Best effort with a fresh context: the caller's may be done.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.c.Delete(cctx, s.keys.LatencyChunks(id), clientv3.WithPrefix()); err != nil {
			s.log.Warn("could not remove the chunks of a failed latency import", "id", id, "err", err)
		}
	}
	for i, c := range chunks {
		if _, err := s.c.Put(ctx, s.keys.LatencyChunk(id, i), string(c)); err != nil {
			cleanup()
			return 0, fmt.Errorf("import latency: chunk %d: %w", i, err)
		}
	}
	then := []clientv3.Op{clientv3.OpPut(mkey, string(mval))}
	if old.ID != "" && old.ID != id {
		then = append(then, clientv3.OpDelete(s.keys.LatencyChunks(old.ID), clientv3.WithPrefix()))
	}
	s.hook("import-latency")
	rev, ok, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(mkey), "=", cur.rev)}, then, &ch, o)
	if err != nil {
		cleanup()
		return 0, fmt.Errorf("import latency: %w", err)
	}
	if !ok {
		cleanup()
		return 0, fmt.Errorf("import latency: another import replaced the table meanwhile: %w", ErrConflict)
	}
	ch.Revision = rev
	o.done(&ch)
	s.log.Info("latency table imported", "id", id, "entries", len(entries), "bytes", len(csv), "chunks", len(chunks))
	return len(entries), nil
}

// regionNames lists the names of the regions in etcd.
func (s *Store) regionNames(ctx context.Context) ([]string, error) {
	kvs, _, err := listRange(ctx, s.c, s.keys.Regions(), clientv3.GetPrefixRangeEnd(s.keys.Regions()), 0)
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	names := make([]string, 0, len(kvs)+1) // not nil, even with no region
	for _, kv := range kvs {
		names = append(names, s.keys.parse(string(kv.Key)).name)
	}
	return names, nil
}

// LatencyInfo is what the manifest of the stored latency table says of
// it, and the manifest's mod revision.
type LatencyInfo struct {
	ID       string
	Entries  int
	Chunks   int
	Bytes    int
	SHA256   string
	Created  time.Time
	Revision int64
}

// GetLatency returns the manifest of the stored latency table;
// ErrNotFound when there is none.
func (s *Store) GetLatency(ctx context.Context) (*LatencyInfo, error) {
	cur, err := s.read(ctx, s.keys.LatencyManifest())
	if err != nil {
		return nil, fmt.Errorf("latency table: %w", err)
	}
	if cur.val == nil {
		return nil, fmt.Errorf("latency table: %w", ErrNotFound)
	}
	var m latencyManifest
	if err := json.Unmarshal(cur.val, &m); err != nil {
		return nil, fmt.Errorf("latency table: undecodable manifest: %w", err)
	}
	return &LatencyInfo{ID: m.ID, Entries: m.Entries, Chunks: m.Chunks, Bytes: m.Bytes, SHA256: m.SHA256, Created: m.Created, Revision: cur.rev}, nil
}

// LoadLatency reads the table info describes, as of its manifest's
// revision.
func (s *Store) LoadLatency(ctx context.Context, info *LatencyInfo) (*regions.LatencyData, error) {
	m, err := json.Marshal(latencyManifest{ID: info.ID, Entries: info.Entries, Chunks: info.Chunks, Bytes: info.Bytes, SHA256: info.SHA256})
	if err != nil {
		return nil, err
	}
	return loadLatency(ctx, s.c, s.keys, m, info.Revision)
}

// ClearLatency removes the latency table.
func (s *Store) ClearLatency(ctx context.Context) error {
	_, err := s.c.Txn(ctx).Then(
		clientv3.OpDelete(s.keys.LatencyManifest()),
		clientv3.OpDelete(s.keys.LatencyChunksAll(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return fmt.Errorf("clear latency: %w", err)
	}
	return nil
}

// loadLatency reads the table a manifest names, at rev (the manifest's
// revision or later, before its chunks could have been deleted).
func loadLatency(ctx context.Context, c *clientv3.Client, k Keys, manifest []byte, rev int64) (*regions.LatencyData, error) {
	var m latencyManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, errBadEntry{err}
	}
	if m.ID == "" || m.Chunks < 0 || m.Bytes < 0 {
		return nil, errBadEntry{errors.New("manifest without id or with negative sizes")}
	}
	prefix := k.LatencyChunks(m.ID)
	kvs, _, err := listRange(ctx, c, prefix, clientv3.GetPrefixRangeEnd(prefix), rev)
	if err != nil {
		return nil, err
	}
	if len(kvs) != m.Chunks {
		return nil, errBadEntry{fmt.Errorf("table %s: %d chunks stored, manifest says %d", m.ID, len(kvs), m.Chunks)}
	}
	csv := make([]byte, 0, m.Bytes)
	for i, kv := range kvs {
		if string(kv.Key) != k.LatencyChunk(m.ID, i) {
			return nil, errBadEntry{fmt.Errorf("table %s: unexpected chunk %s", m.ID, kv.Key)}
		}
		csv = append(csv, kv.Value...)
	}
	if sum := sha256.Sum256(csv); hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, errBadEntry{fmt.Errorf("table %s: checksum mismatch", m.ID)}
	}
	return &regions.LatencyData{ID: m.ID, Entries: m.Entries, CSV: csv, Created: m.Created}, nil
}

// errBadEntry marks a stored entry that cannot be used (as opposed to a
// failure to read it).
type errBadEntry struct{ err error }

func (e errBadEntry) Error() string { return e.err.Error() }
func (e errBadEntry) Unwrap() error { return e.err }

// splitLines cuts b into pieces of at most limit bytes, at line ends.
func splitLines(b []byte, limit int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := len(b)
		if n > limit {
			n = bytes.LastIndexByte(b[:limit], '\n') + 1
			if n == 0 { // a single line longer than limit; cannot happen with valid CSV
				n = limit
			}
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// newLatencyID names a table: sortable by time, unique by chance.
func newLatencyID() (string, error) {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:]), nil
}
