package regions

import "maps"

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
	// Latency is the latency table as stored (nil: none).
	Latency *LatencyData `json:"latency,omitempty"`
	// Problems lists entries that were in etcd but could not be used
	// (undecodable or invalid JSON), each with its key. They are skipped.
	Problems []string `json:"problems,omitempty"`
}

// LatencyData is a latency table as stored in etcd: CSV text, one
// "cidr,region,rtt_ms" entry per line, identified by ID (which changes
// whenever the table does, so a snapshot can reuse a compiled table).
type LatencyData struct {
	ID      string `json:"id"`
	Entries int    `json:"entries"`
	CSV     []byte `json:"csv"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		Regions:  map[string]*Region{},
		Services: map[string]*Service{},
		Health:   map[string]map[string]*HealthReport{},
		Probers:  map[string]*ProberInfo{},
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
	for k, v := range s.Health {
		c.Health[k] = maps.Clone(v)
	}
	return c
}
