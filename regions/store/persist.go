package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// stateFileFormat is the version of the state file; a reader refuses
// versions it does not know rather than guessing.
const stateFileFormat = 1

type stateFile struct {
	Format int            `json:"format"`
	Saved  time.Time      `json:"saved"`
	State  *regions.State `json:"state"`
}

// SaveState writes st to path atomically: a reader (or a crash) sees the
// old file or the new one, never a mix. The data is on disk when it
// returns.
func SaveState(path string, st *regions.State) (err error) {
	data, err := json.Marshal(stateFile{Format: stateFileFormat, Saved: time.Now().UTC(), State: st})
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("save state: sync %s: %w", dir, err)
	}
	return nil
}

// LoadState reads a state SaveState wrote. A missing file is an error
// matching fs.ErrNotExist. Objects that no longer validate are moved to
// Problems, as the watcher does with etcd entries.
func LoadState(path string) (*regions.State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return nil, fmt.Errorf("load state %s: %w", path, err)
	}
	if sf.Format != stateFileFormat {
		return nil, fmt.Errorf("load state %s: format %d, want %d", path, sf.Format, stateFileFormat)
	}
	if sf.State == nil {
		return nil, fmt.Errorf("load state %s: %w", path, errors.New("no state in the file"))
	}
	st := regions.NewState()
	st.Revision = sf.State.Revision
	st.Latency = sf.State.Latency
	st.Problems = append(st.Problems, sf.State.Problems...)
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
	for id, p := range sf.State.Probers {
		if err := checkLoaded(p, id, p != nil && p.ID == id, func() error { return p.Validate() }); err != nil {
			st.Problems = append(st.Problems, "probers/"+id+": "+err.Error())
			continue
		}
		st.Probers[id] = p
	}
	slices.Sort(st.Problems)
	return st, nil
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
