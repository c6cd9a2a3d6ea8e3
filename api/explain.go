package api

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// explain answers
// GET /v1/explain?name=NAME[&client=SUBNET][&resolver=ADDR][&type=A|AAAA][&seed=N]:
// the decision a DNS query for NAME would get, with every step's
// candidates and reasons. It is the query a resolver at ADDR (default: the
// caller) sends with the ECS option SUBNET (an address or a prefix;
// default: none), and the client is derived from them exactly as DNS does
// it. NAME may be a service or a name whose CNAME chain leads to one. seed
// fixes the random draw so a weighted choice can be reproduced.
func (a *apiServer) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bad := func(field, format string, args ...any) {
		writeProblem(w, Problem{Status: http.StatusBadRequest, Title: "invalid query parameter",
			Errors: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}})
	}
	name := regions.CanonicalName(q.Get("name"))
	if q.Get("name") == "" {
		bad("name", "required: the name to explain")
		return
	}
	qtype := uint16(regions.QTypeA)
	switch strings.ToUpper(q.Get("type")) {
	case "", "A":
	case "AAAA":
		qtype = regions.QTypeAAAA
	default:
		bad("type", "%q: want A or AAAA", q.Get("type"))
		return
	}
	var ecs netip.Prefix
	if s := q.Get("client"); s != "" {
		var err error
		if ecs, err = parseSubnet(s); err != nil {
			bad("client", "%v", err)
			return
		}
	}
	resolver, err := parseResolver(q.Get("resolver"), r.RemoteAddr)
	if err != nil {
		bad("resolver", "%v", err)
		return
	}
	rnd := rand.Uint64()
	if s := q.Get("seed"); s != "" {
		if rnd, err = strconv.ParseUint(s, 10, 64); err != nil {
			bad("seed", "%q is not an unsigned integer", s)
			return
		}
	}

	var snap *regions.Snapshot
	var v *regions.ServiceView
	var cnames []string
	if a.opts.Follow != nil {
		snap, v, cnames, err = a.opts.Follow(name)
		if err != nil {
			bad("name", "%v", err)
			return
		}
	} else if snap = a.opts.Snapshot(); snap != nil {
		v = snap.ServiceByName(name)
	}
	if snap == nil {
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Detail: "no regions snapshot loaded yet"})
		return
	}
	if v == nil {
		detail := fmt.Sprintf("%s is not a service", name)
		if len(cnames) > 0 {
			detail = fmt.Sprintf("%s is not a service, nor does its CNAME chain (%s) lead to one", name, strings.Join(cnames, "; "))
		}
		writeProblem(w, Problem{Status: http.StatusNotFound, Title: "no such service", Detail: detail})
		return
	}

	var loc regions.Locator
	if a.opts.Locator != nil {
		loc = a.opts.Locator
	}
	c, use := a.opts.ECS.Client(resolver, ecs, loc)
	d, ex := snap.Explain(v, &c, qtype, rnd)
	resp := apitypes.Explain{
		Name: name, Service: v.Name(), CNAMEs: cnames, QType: map[uint16]string{regions.QTypeA: "A", regions.QTypeAAAA: "AAAA"}[qtype],
		Client: netip.PrefixFrom(c.Addr, c.Bits).String(), Resolver: resolver.String(),
		Revision: snap.Revision(), Decision: d, Explanation: ex,
	}
	if use != regions.ECSAbsent {
		scope := 0
		if d.Kind == regions.KindAnswer {
			scope = use.ReplyScope(ecs, d.Scope)
		}
		resp.ECS = &apitypes.ExplainECS{Subnet: ecs.String(), Use: use, Scope: scope}
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseSubnet reads an ECS subnet: "192.0.2.1" (the whole address),
// "2001:db8::/48" or "::ffff:192.0.2.0/120", kept in the family written,
// as an ECS option carries it. Bits beyond the prefix are cleared.
func parseSubnet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
		}
		return p.Masked(), nil
	}
	ad, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	ad = ad.WithZone("")
	return netip.PrefixFrom(ad, ad.BitLen()), nil
}

// parseResolver reads the resolver's address or, when empty, the caller's.
func parseResolver(s, remote string) (netip.Addr, error) {
	if s == "" {
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("no resolver given and the caller's address %q is unusable", remote)
		}
		s = host
	}
	ad, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an address", s)
	}
	return ad.Unmap().WithZone(""), nil
}
