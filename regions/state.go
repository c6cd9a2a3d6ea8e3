package regions

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
		Regions:  make(map[string]*Region, len(s.Regions)),
		Services: make(map[string]*Service, len(s.Services)),
		Health:   make(map[string]map[string]*HealthReport, len(s.Health)),
		Probers:  make(map[string]*ProberInfo, len(s.Probers)),
		Latency:  s.Latency,
		Problems: append([]string(nil), s.Problems...),
	}
	for k, v := range s.Regions {
		c.Regions[k] = v
	}
	for k, v := range s.Services {
		c.Services[k] = v
	}
	for k, v := range s.Health {
		m := make(map[string]*HealthReport, len(v))
		for p, r := range v {
			m[p] = r
		}
		c.Health[k] = m
	}
	for k, v := range s.Probers {
		c.Probers[k] = v
	}
	return c
}
