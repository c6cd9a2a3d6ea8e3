package api

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/meridian-gslb/meridian/regions"
)

// explainResponse is what GET /v1/explain returns.
type explainResponse struct {
	Name        string               `json:"name"`
	QType       string               `json:"type"`
	Client      string               `json:"client"`
	Revision    int64                `json:"revision"`
	Decision    regions.Decision     `json:"decision"`
	Explanation *regions.Explanation `json:"explanation"`
}

// explain answers GET /v1/explain?name=NAME&client=ADDR[/BITS]&type=A|AAAA[&seed=N]:
// the decision a DNS query would get, with every step's candidates and
// reasons. Without client, the caller's address is used; seed fixes the
// random draw so a weighted choice can be reproduced.
func (a *apiServer) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bad := func(field, format string, args ...any) {
		writeProblem(w, Problem{Status: http.StatusBadRequest, Title: "invalid query parameter",
			Errors: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}})
	}
	name := regions.CanonicalName(q.Get("name"))
	if q.Get("name") == "" {
		bad("name", "required: the service name to explain")
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
	client, err := parseClient(q.Get("client"), r.RemoteAddr)
	if err != nil {
		bad("client", "%v", err)
		return
	}
	rnd := rand.Uint64()
	if s := q.Get("seed"); s != "" {
		if rnd, err = strconv.ParseUint(s, 10, 64); err != nil {
			bad("seed", "%q is not an unsigned integer", s)
			return
		}
	}
	snap := a.opts.Snapshot()
	if snap == nil {
		writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Detail: "no regions snapshot loaded yet"})
		return
	}
	v := snap.ServiceByName(name)
	if v == nil {
		writeProblem(w, Problem{Status: http.StatusNotFound, Title: "no such service", Detail: fmt.Sprintf("%s is not a service", name)})
		return
	}
	c := regions.Client{Addr: client.Addr(), Bits: client.Bits()}
	if a.opts.Locator != nil {
		c.Locator = a.opts.Locator
	}
	d, ex := snap.Explain(v, &c, qtype, rnd)
	writeJSON(w, http.StatusOK, explainResponse{
		Name: name, QType: map[uint16]string{regions.QTypeA: "A", regions.QTypeAAAA: "AAAA"}[qtype],
		Client: client.String(), Revision: snap.Revision(), Decision: d, Explanation: ex,
	})
}

// parseClient reads "192.0.2.1", "2001:db8::/48" or, when empty, the
// caller's own address.
func parseClient(s, remote string) (netip.Prefix, error) {
	if s == "" {
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("no client given and the caller's address %q is unusable", remote)
		}
		s = host
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
		}
		return netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked(), nil
	}
	ad, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	ad = ad.Unmap().WithZone("")
	return netip.PrefixFrom(ad, ad.BitLen()), nil
}
