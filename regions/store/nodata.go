package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// ErrNoData matches a NoDataError.
var ErrNoData = errors.New("would answer NODATA")

// NoDataError refuses a write after which services would answer NODATA
// to query types they answer now, whatever the health of their regions
// (regions.NoAnswer): every weight set to 0, the last region they answer
// from drained, the last VIP of a family removed. Force makes the write
// anyway. It matches ErrNoData.
type NoDataError struct {
	Services []apitypes.NoData
}

func (e *NoDataError) Error() string {
	return "refused: " + DescribeNoData(e.Services) + " (force to write anyway)"
}

// Is lets errors.Is(err, ErrNoData) match.
func (e *NoDataError) Is(target error) bool { return target == ErrNoData }

// DescribeNoData says in one line which services answer NODATA to which
// types, and why.
func DescribeNoData(nd []apitypes.NoData) string {
	parts := make([]string, len(nd))
	for i, n := range nd {
		parts[i] = fmt.Sprintf("%s would answer NODATA to %s queries: %s", n.Service, strings.Join(n.Types, " and "), n.Reason)
	}
	return strings.Join(parts, "; ")
}

// LostAnswer says whether svc, as before with the regions regsBefore
// (nil: it did not exist), answers a query type with an address that it
// answers NODATA to as after with regsAfter: the rule of the NODATA
// guard, for clients that plan writes (meridian ctl apply --dry-run).
func LostAnswer(before, after *regions.Service, regsBefore, regsAfter map[string]*regions.Region) (apitypes.NoData, bool) {
	if before == nil {
		return apitypes.NoData{}, false
	}
	was := regions.NoAnswer(before, regsBefore)
	var nd apitypes.NoData
	for _, u := range regions.NoAnswer(after, regsAfter) {
		if slices.ContainsFunc(was, func(w regions.Unanswered) bool { return w.Type == u.Type }) {
			continue
		}
		nd.Types = append(nd.Types, u.Type)
		if !strings.Contains(nd.Reason, u.Reason) {
			nd.Reason = strings.TrimPrefix(nd.Reason+"; "+u.Reason, "; ")
		}
	}
	if len(nd.Types) == 0 {
		return apitypes.NoData{}, false
	}
	nd.Service = regions.CanonicalName(after.Name)
	return nd, true
}

// noData decides a write that leaves services answering NODATA: refused
// unless forced; forced, the change lists them.
func noData(ch *Change, o *writeOpts, lost []apitypes.NoData) error {
	ch.NoData = nil
	if len(lost) == 0 {
		return nil
	}
	slices.SortFunc(lost, func(a, b apitypes.NoData) int { return strings.Compare(a.Service, b.Service) })
	if !o.force {
		return &NoDataError{Services: lost}
	}
	ch.NoData = lost
	return nil
}

// mayTakeAnswers says whether replacing the region old (stored JSON; nil
// when absent) with r can leave a service without an answer: r drains
// it, or drops the last VIP of a family. Only such writes read the
// services.
func mayTakeAnswers(old []byte, r *regions.Region) bool {
	if old == nil {
		return false // a new region: no service uses it yet
	}
	var prev regions.Region
	if json.Unmarshal(old, &prev) != nil {
		return false // unusable as stored: no service answers from it
	}
	if r.Drained && !prev.Drained {
		return true
	}
	had, has := regions.VIPFamilies(prev.VIPs), regions.VIPFamilies(r.VIPs)
	return had[0] && !has[0] || had[1] && !has[1]
}
