package regions

import (
	"maps"
	"time"
	"weak"
)

// State is everything Meridian keeps in etcd, decoded: the input from
// which snapshots are built. The store's watcher maintains one; the server
// persists it to its data directory so a restart without etcd still
// serves. A State handed to BuildSnapshot must not change afterwards.
type State struct {
	// Revision is the etcd revision this state reflects.
	Revision int64 `json:"revision"`
	// Regions by name.
	Regions map[string]*Region `json:"regions"`
	// Services by canonical name (lower case, fully qualified).
	Services map[string]*Service `json:"services"`
	// Health holds the reports of live probers: region -> prober id.
	Health map[string]map[string]*HealthReport `json:"health"`
	// Probers holds the registrations of live probers, by id.
	Probers map[string]*ProberInfo `json:"probers"`
	// Shifts holds the shifts by id, in force or ended (docs/shifts.md).
	Shifts map[string]*Shift `json:"shifts,omitempty"`
	// Latency is the latency table as stored (nil: none).
	Latency *LatencyData `json:"latency,omitempty"`
	// Problems lists entries that were in etcd but could not be used
	// (undecodable or invalid JSON), each with its key. They are skipped.
	Problems []string `json:"problems,omitempty"`

	// A state made by Derive has base, the state it copied (weak: a
	// chain of states does not keep the ones before alive), and changed,
	// the keys of the services PutService and DeleteService changed
	// since: a snapshot of it built from one of the base looks at those
	// services only (see BuildSnapshot).
	base    weak.Pointer[State]
	changed map[string]struct{}
}

// LatencyData is a latency table as stored in etcd: CSV text, one
// "cidr,region,rtt_ms" entry per line, identified by ID (which changes
// whenever the table does, so a snapshot can reuse a compiled table).
type LatencyData struct {
	ID      string `json:"id"`
	Entries int    `json:"entries"`
	CSV     []byte `json:"csv"`
	// Created is when the table was imported (zero when unknown: a state
	// file written before it was kept).
	Created time.Time `json:"created,omitzero"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Regions:  map[string]*Region{},
		Services: map[string]*Service{},
		Health:   map[string]map[string]*HealthReport{},
		Probers:  map[string]*ProberInfo{},
		Shifts:   map[string]*Shift{},
	}
}

// Clone copies the maps (not the objects, which are never modified in
// place), so a watcher can apply events to a copy while snapshots built
// from the original stay valid.
func (s *State) Clone() *State {
	c := &State{
		Revision: s.Revision,
		Regions:  maps.Clone(s.Regions),
		Services: maps.Clone(s.Services),
		Health:   make(map[string]map[string]*HealthReport, len(s.Health)),
		Probers:  maps.Clone(s.Probers),
		Shifts:   maps.Clone(s.Shifts),
		Latency:  s.Latency,
		Problems: append([]string(nil), s.Problems...),
	}
	// maps.Clone keeps nil maps nil; a State's maps are never nil.
	if c.Regions == nil {
		c.Regions = map[string]*Region{}
	}
	if c.Services == nil {
		c.Services = map[string]*Service{}
	}
	if c.Probers == nil {
		c.Probers = map[string]*ProberInfo{}
	}
	if c.Shifts == nil {
		c.Shifts = map[string]*Shift{}
	}
	for k, v := range s.Health {
		c.Health[k] = maps.Clone(v)
	}
	return c
}

// Derive is Clone for a state whose services change only through
// PutService and DeleteService: it remembers them, so that a snapshot
// of the copy built from a snapshot of s compiles those services only,
// without comparing every other (docs/architecture.md, The incremental
// snapshot). Its regions, health, probers and latency table may change
// directly. A service changed in Services directly is not seen that way:
// use Clone then.
func (s *State) Derive() *State {
	c := s.Clone()
	c.base = weak.Make(s)
	c.changed = map[string]struct{}{}
	return c
}

// PutService sets the service of key, noting the change in a derived
// state.
func (s *State) PutService(key string, svc *Service) {
	s.Services[key] = svc
	if s.changed != nil {
		s.changed[key] = struct{}{}
	}
}

// DeleteService removes the service of key, noting the change in a
// derived state.
func (s *State) DeleteService(key string) {
	if _, ok := s.Services[key]; !ok {
		return
	}
	delete(s.Services, key)
	if s.changed != nil {
		s.changed[key] = struct{}{}
	}
}

// servicesChangedSince returns the keys of the services that differ
// between prev and s, and true, when s was derived from prev (Derive);
// otherwise false, and every service must be compared.
func (s *State) servicesChangedSince(prev *State) ([]string, bool) {
	if prev == nil || s.changed == nil || s.base.Value() != prev {
		return nil, false
	}
	// A service added or removed in Services directly shows as a count
	// that the changes noted do not explain.
	n := len(prev.Services)
	keys := make([]string, 0, len(s.changed))
	for k := range s.changed {
		_, was := prev.Services[k]
		_, is := s.Services[k]
		switch {
		case is && !was:
			n++
		case was && !is:
			n--
		}
		keys = append(keys, k)
	}
	if n != len(s.Services) {
		return nil, false
	}
	return keys, true
}
