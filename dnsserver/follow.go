package dnsserver

import (
	"errors"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// maxFollow bounds the CNAME records FollowService passes, across zones.
const maxFollow = 16

// FollowService follows name (presentation form) the way a resolver
// asking this server for its A records does, to the service that answers:
// through the CNAME chains the server answers, from one of its zones into
// another too. It returns the snapshot it used (nil before the first), the
// service (nil when none answers: the name is data, denied, delegated or
// not ours) and the CNAME records passed on the way, in order. It
// allocates: it is for /v1/explain, not the query path.
func (h *Handler) FollowService(name string) (*regions.Snapshot, *regions.ServiceView, []dns.RR, error) {
	st := h.steer.Load()
	if st == nil {
		return nil, nil, nil, nil
	}
	set := h.zones.Load()
	var cnames []dns.RR
	for range maxFollow {
		w, err := zones.WireName(name)
		if err != nil {
			return st.snap, nil, cnames, err
		}
		if v := st.service([]byte(w)); v != nil {
			return st.snap, v, cnames, nil
		}
		z := set.Find([]byte(w))
		if z == nil {
			return st.snap, nil, cnames, nil
		}
		a := z.Lookup([]byte(w), dns.TypeA)
		if b := st.overWildcard(z, []byte(w), a); b != nil {
			a = b
		}
		next := ""
		als := a.Aliases()
		for i := range als {
			k, si := st.takeover(set, z, &als[i])
			if k == takeNone {
				continue
			}
			an, _, _ := als[i].CNAMEs.Records(name)
			cnames = append(cnames, an...)
			switch k {
			case takeService:
				return st.snap, st.snap.ServiceAt(int(si)), cnames, nil
			case takeNoData:
				return st.snap, nil, cnames, nil
			}
			next = an[len(an)-1].(*dns.CNAME).Target
			break
		}
		if next == "" {
			an, _, _ := a.Records(name)
			if len(an) == 0 {
				return st.snap, nil, cnames, nil
			}
			last, ok := an[len(an)-1].(*dns.CNAME)
			if !ok { // data at the end of the chain: not a service
				return st.snap, nil, append(cnames, cnamesOf(an)...), nil
			}
			cnames = append(cnames, an...)
			next = last.Target
		}
		name = next
	}
	return st.snap, nil, cnames, errors.New("the CNAME chain does not end within 16 steps")
}

func cnamesOf(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeCNAME {
			out = append(out, rr)
		}
	}
	return out
}
