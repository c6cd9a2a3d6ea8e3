package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// stateFileFormat is the version of the state file SaveState writes.
// Format 1 held the latency table inside the JSON (base64) and no
// confirmation time; LoadState still reads it, and the next save replaces
// it. A reader refuses versions it does not know rather than guessing.
const stateFileFormat = 2

type stateFile struct {
	Format int       `json:"format"`
	Saved  time.Time `json:"saved"`
	// Confirmed is when etcd last confirmed State current (format 2).
	Confirmed time.Time `json:"confirmed,omitzero"`
	// State holds everything but the latency table from format 2 on.
	State *regions.State `json:"state"`
	// Latency names the file beside this one that holds the table.
	Latency *latencyRef `json:"latency,omitempty"`
}

// stateFileOut is stateFile as SaveState writes it: the state as
// stateOut, whose services are encoded beforehand (serviceJSON).
type stateFileOut struct {
	Format    int         `json:"format"`
	Saved     time.Time   `json:"saved"`
	Confirmed time.Time   `json:"confirmed,omitzero"`
	State     *stateOut   `json:"state"`
	Latency   *latencyRef `json:"latency,omitempty"`
}

// stateOut encodes as regions.State does, without the latency table
// (TestStateOutFields keeps the two in step).
type stateOut struct {
	Revision int64                                       `json:"revision"`
	Regions  map[string]*regions.Region                  `json:"regions"`
	Services json.RawMessage                             `json:"services"`
	Health   map[string]map[string]*regions.HealthReport `json:"health"`
	Probers  map[string]*regions.ProberInfo              `json:"probers"`
	Shifts   map[string]*regions.Shift                   `json:"shifts,omitempty"`
	Problems []string                                    `json:"problems,omitempty"`
}

// serviceJSON keeps the JSON of the services last written. Services
// are never changed in place, so the same object encodes the same: a
// write after one service changed encodes that one only, where encoding
// thousands took a good part of a core. Used by one goroutine at a time.
type serviceJSON struct{ m map[*regions.Service][]byte }

// writeTo writes the JSON of services to w, as encoding/json writes the
// map (keys sorted, the same escaping), from the cache where it can (a
// nil cache encodes every service), a service at a time: the state file
// is written from it without the whole JSON in memory.
func (c *serviceJSON) writeTo(w io.Writer, services map[string]*regions.Service) error {
	if services == nil {
		_, err := io.WriteString(w, "null")
		return err
	}
	next := make(map[*regions.Service][]byte, len(services))
	var sep []byte // the separator and key, reused
	if _, err := io.WriteString(w, "{"); err != nil {
		return err
	}
	for i, k := range slices.Sorted(maps.Keys(services)) {
		svc := services[k]
		b, ok := next[svc]
		if !ok && c != nil {
			b, ok = c.m[svc]
		}
		if !ok {
			var err error
			if b, err = json.Marshal(svc); err != nil {
				return err
			}
		}
		next[svc] = b
		key, err := json.Marshal(k)
		if err != nil {
			return err
		}
		sep = sep[:0]
		if i > 0 {
			sep = append(sep, ',')
		}
		sep = append(append(sep, key...), ':')
		if _, err := w.Write(sep); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w, "}"); err != nil {
		return err
	}
	if c != nil {
		c.m = next
	}
	return nil
}

// latencyRef points from the state file to the latency table's own file:
// the raw CSV, named after the table's id, so a file once written is
// never rewritten and the state file always names a complete one.
type latencyRef struct {
	ID      string    `json:"id"`
	Entries int       `json:"entries"`
	File    string    `json:"file"` // base name, in the state file's directory
	Bytes   int       `json:"bytes"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created,omitzero"`
}

// Saved is a state as the state file holds it.
type Saved struct {
	State *regions.State
	// Confirmed is when etcd last confirmed State current: the age of the
	// data is now minus Confirmed. A format 1 file has only its save time,
	// which is used instead.
	Confirmed time.Time
	// Saved is when the file was written; Format its version.
	Saved  time.Time
	Format int

	latency *latencyRef // the latency file, verified
}

// latencyFileName is the file that holds the table with id: named by a
// hash, as an id is not necessarily a safe file name.
func latencyFileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "latency-" + hex.EncodeToString(sum[:12]) + ".csv"
}

// SaveState writes st, confirmed current by etcd at confirmed, to path
// atomically: a reader (or a crash) sees the old file or the new one,
// never a mix. The latency table goes to a file of its own beside path,
// named after its id and written before the state file that names it;
// latency files no longer named are removed afterwards. The data is on
// disk when SaveState returns.
func SaveState(path string, st *regions.State, confirmed time.Time) error {
	_, _, err := saveState(path, st, confirmed, nil, nil)
	return err
}

// saveState is SaveState that does not write the latency table again
// when its id is onDisk's (a file this process wrote or verified), and
// takes the JSON of the services from cache (may be nil). It returns the
// reference to the table's file and the bytes written.
func saveState(path string, st *regions.State, confirmed time.Time, onDisk *latencyRef, cache *serviceJSON) (ref *latencyRef, written int64, err error) {
	dir := filepath.Dir(path)
	sf := stateFileOut{Format: stateFileFormat, Saved: time.Now().UTC(), Confirmed: confirmed.UTC(), State: &stateOut{
		Revision: st.Revision, Regions: st.Regions, Services: servicesMark, Health: st.Health, Probers: st.Probers, Shifts: st.Shifts, Problems: st.Problems}}
	if ld := st.Latency; ld != nil {
		if onDisk != nil && onDisk.ID == ld.ID {
			ref = onDisk
		} else {
			sum := sha256.Sum256(ld.CSV)
			ref = &latencyRef{ID: ld.ID, Entries: ld.Entries, File: latencyFileName(ld.ID), Bytes: len(ld.CSV), SHA256: hex.EncodeToString(sum[:]), Created: ld.Created}
			if err := writeAtomic(filepath.Join(dir, ref.File), ld.CSV); err != nil {
				return nil, 0, fmt.Errorf("save state: latency table: %w", err)
			}
			written += int64(len(ld.CSV))
		}
		sf.Latency = ref
	}
	frame, err := json.Marshal(sf)
	if err != nil {
		return nil, written, fmt.Errorf("save state: %w", err)
	}
	head, tail, ok := bytes.Cut(frame, servicesField)
	if !ok {
		return nil, written, fmt.Errorf("save state: no services in %.100s", frame)
	}
	n, err := writeAtomicFunc(path, func(w io.Writer) error {
		if _, err := w.Write(head); err != nil {
			return err
		}
		if _, err := io.WriteString(w, `"services":`); err != nil {
			return err
		}
		if err := cache.writeTo(w, st.Services); err != nil {
			return err
		}
		_, err := w.Write(tail)
		return err
	})
	if err != nil {
		return nil, written, fmt.Errorf("save state: %w", err)
	}
	written += n
	if ref == nil || ref != onDisk {
		removeOldLatency(dir, ref)
	}
	return ref, written, nil
}

// removeOldLatency deletes the latency files (and leftovers of
// interrupted writes of them) other than keep's. Failing to is harmless:
// they are tried again at the next save.
func removeOldLatency(dir string, keep *latencyRef) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		ours := strings.HasPrefix(name, "latency-") && strings.HasSuffix(name, ".csv") ||
			strings.HasPrefix(name, ".latency-") && strings.Contains(name, ".csv.tmp-")
		if !ours || keep != nil && name == keep.File {
			continue
		}
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// servicesMark stands for the services in the state file's JSON
// (servicesField); they are written in its place from their cached
// encodings, a service at a time: at 10,000 services the file is
// megabytes, which json.Marshal held three times over (the services'
// JSON, its compacted copy, the result). encoding/json escapes the
// quotes inside strings, and no other object of the file has a
// services field, so the field's bytes occur nowhere else
// (TestSaveStateStreamed).
var (
	servicesMark  = json.RawMessage(`"\u0000"`)
	servicesField = []byte(`"services":"\u0000"`)
)

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte) error {
	_, err := writeAtomicFunc(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	return err
}

// writeAtomicFunc is writeAtomic of what write writes (buffered); it
// returns the bytes written.
func writeAtomicFunc(path string, write func(io.Writer) error) (n int64, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	cw := &countingWriter{w: f}
	bw := bufio.NewWriterSize(cw, 64<<10)
	if err = write(bw); err != nil {
		return 0, err
	}
	if err = bw.Flush(); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, err
	}
	if err = f.Close(); err != nil {
		return 0, err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return 0, err
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", dir, err)
	}
	return cw.n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// LoadState reads a state file SaveState wrote, in format 2 or in the
// earlier format 1. A missing file is an error matching fs.ErrNotExist.
// Objects that no longer validate are moved to Problems, as the watcher
// does with etcd entries; so is a latency file that is missing or does
// not match what the state file says of it (the rest is served).
func LoadState(path string) (*Saved, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return nil, fmt.Errorf("load state %s: %w", path, err)
	}
	switch sf.Format {
	case 1:
		// The latency table is inline; the save time is the best
		// confirmation time there is (the state was current shortly
		// before).
		sf.Confirmed, sf.Latency = sf.Saved, nil
	case stateFileFormat:
		if sf.State != nil {
			sf.State.Latency = nil
		}
	default:
		return nil, fmt.Errorf("load state %s: format %d, want %d (or 1)", path, sf.Format, stateFileFormat)
	}
	if sf.State == nil {
		return nil, fmt.Errorf("load state %s: %w", path, errors.New("no state in the file"))
	}
	st := regions.NewState()
	st.Revision = sf.State.Revision
	st.Latency = sf.State.Latency
	st.Problems = append(st.Problems, sf.State.Problems...)
	if sf.Latency != nil {
		ld, err := loadLatencyFile(filepath.Dir(path), sf.Latency)
		if err != nil {
			st.Problems = append(st.Problems, "latency "+sf.Latency.ID+": "+err.Error())
		} else {
			st.Latency = ld
		}
	}
	var verified *latencyRef
	if st.Latency != nil && sf.Latency != nil {
		verified = sf.Latency
	}
	for name, r := range sf.State.Regions {
		if err := checkLoaded(r, name, r != nil && r.Name == name, func() error { return r.Validate() }); err != nil {
			st.Problems = append(st.Problems, "regions/"+name+": "+err.Error())
			continue
		}
		st.Regions[name] = r
	}
	for name, svc := range sf.State.Services {
		if err := checkLoaded(svc, name, svc != nil && svc.Name == name, func() error { return svc.Validate(nil, nil) }); err != nil {
			st.Problems = append(st.Problems, "services/"+name+": "+err.Error())
			continue
		}
		st.Services[name] = svc
	}
	for region, reports := range sf.State.Health {
		for prober, h := range reports {
			if err := checkLoaded(h, prober, h != nil && h.Region == region && h.Prober == prober, func() error { return h.Validate() }); err != nil {
				st.Problems = append(st.Problems, "health/"+region+"/"+prober+": "+err.Error())
				continue
			}
			if st.Health[region] == nil {
				st.Health[region] = map[string]*regions.HealthReport{}
			}
			st.Health[region][prober] = h
		}
	}
	for id, sh := range sf.State.Shifts {
		if err := checkLoaded(sh, id, sh != nil && sh.ID == id, func() error { return sh.Validate() }); err != nil {
			st.Problems = append(st.Problems, "shifts/"+id+": "+err.Error())
			continue
		}
		st.Shifts[id] = sh
	}
	for id, p := range sf.State.Probers {
		if err := checkLoaded(p, id, p != nil && p.ID == id, func() error { return p.Validate() }); err != nil {
			st.Problems = append(st.Problems, "probers/"+id+": "+err.Error())
			continue
		}
		st.Probers[id] = p
	}
	slices.Sort(st.Problems)
	return &Saved{State: st, Confirmed: sf.Confirmed, Saved: sf.Saved, Format: sf.Format, latency: verified}, nil
}

// loadLatencyFile reads the table ref names and checks it is the one the
// state file was written with.
func loadLatencyFile(dir string, ref *latencyRef) (*regions.LatencyData, error) {
	if ref.File == "" || ref.File != filepath.Base(ref.File) || ref.File != latencyFileName(ref.ID) {
		return nil, fmt.Errorf("file %q is not the one for this id", ref.File)
	}
	csv, err := os.ReadFile(filepath.Join(dir, ref.File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing", ref.File)
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(csv)
	if len(csv) != ref.Bytes || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("%s does not hold the table the state file names (%d bytes, want %d)", ref.File, len(csv), ref.Bytes)
	}
	return &regions.LatencyData{ID: ref.ID, Entries: ref.Entries, CSV: csv, Created: ref.Created}, nil
}

func checkLoaded[T any](v *T, name string, matches bool, validate func() error) error {
	switch {
	case v == nil:
		return errors.New("empty entry")
	case !matches:
		return fmt.Errorf("entry does not match its name %q", name)
	}
	return validate()
}
