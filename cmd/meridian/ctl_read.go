package main

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/suggest"
	"github.com/meridian-gslb/meridian/regions"
)

// canonical is a service name as the API keeps it.
func canonical(name string) string { return regions.CanonicalName(name) }

// kinds are what get lists, by the words it takes for them.
var getKinds = map[string]string{"regions": "region", "region": "region", "services": "service", "service": "service", "status": "status"}

func (x *ctl) get(ctx context.Context, args []string) error {
	kind, ok := getKinds[args[0]]
	if !ok {
		msg := fmt.Sprintf("get %q: want regions, services or status", args[0])
		if h := suggest.Hint(args[0], []string{"regions", "services", "status"}); h != "" {
			msg += "; " + h
		}
		return usagef("%s", msg)
	}
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	switch kind {
	case "region":
		return x.getRegions(ctx, name)
	case "service":
		return x.getServices(ctx, name)
	}
	if name != "" {
		return usagef("get status takes no name")
	}
	return x.status(ctx)
}

// oneOrAll reads the object of kind named name with one, or every one
// with all when name is "". With -o json or yaml it prints the API's
// answer and returns done; otherwise the objects, for a table.
func oneOrAll[T, L any](ctx context.Context, x *ctl, kind, name string, one func(context.Context, string) (*T, string, error),
	all func(context.Context) (*L, error), items func(*L) []*T) (list []*T, done bool, err error) {
	if name != "" {
		obj, _, err := one(ctx, name)
		if err != nil {
			return nil, true, x.notFound(ctx, err, kind, name)
		}
		if x.out.structured() {
			return nil, true, x.out.value(obj)
		}
		return []*T{obj}, false, nil
	}
	l, err := all(ctx)
	if err != nil {
		return nil, true, err
	}
	if x.out.structured() {
		return nil, true, x.out.value(l)
	}
	return items(l), false, nil
}

func (x *ctl) getRegions(ctx context.Context, name string) error {
	list, done, err := oneOrAll(ctx, x, "region", name, x.c.Region, x.c.Regions, func(l *apitypes.RegionList) []*regions.Region { return l.Regions })
	if done {
		return err
	}
	var rows [][]string
	for _, r := range list {
		var vips []string
		for _, a := range r.VIPs {
			vips = append(vips, a.String())
		}
		loc := strings.TrimSpace(fmt.Sprintf("%.2f,%.2f %s", r.Location.Lat, r.Location.Lon, r.Location.Country))
		row := []string{r.Name, strings.Join(vips, ","), loc, r.Check.Type + "/" + strconv.Itoa(r.Check.Port), yesNo(r.Drained)}
		if x.out.wide() {
			row = append(row, orDash(r.Location.Continent), capacity(r.Capacity), checkDetail(r.Check), checkAddresses(r.Check))
		}
		rows = append(rows, row)
	}
	x.out.tableWide("REGION\tVIPS\tLOCATION\tCHECK\tDRAINED", "CONTINENT\tCAPACITY\tCHECK DETAIL\tCHECKED AT", rows)
	return nil
}

func capacity(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n) + "/s"
}

// checkDetail sums up a health check beyond its type and port: the HTTP
// request, and the timing where it is not the default.
func checkDetail(c regions.HealthCheck) string {
	var parts []string
	if c.Type == "http" || c.Type == "https" {
		p := firstOf(c.Path, "/")
		if c.Host != "" {
			p = c.Host + p
		}
		parts = append(parts, p)
		if len(c.Expect) > 0 {
			parts = append(parts, "expect "+c.Expect.String())
		}
	}
	if c.Interval > 0 {
		parts = append(parts, "every "+time.Duration(c.Interval).String())
	}
	if c.Timeout > 0 {
		parts = append(parts, "timeout "+time.Duration(c.Timeout).String())
	}
	if c.Rise > 0 || c.Fall > 0 {
		parts = append(parts, fmt.Sprintf("rise %d fall %d", c.Rise, c.Fall))
	}
	return orDash(strings.Join(parts, ", "))
}

// checkAddresses lists where the check connects instead of a VIP.
func checkAddresses(c regions.HealthCheck) string {
	var parts []string
	for _, a := range slices.SortedFunc(maps.Keys(c.Address), netip.Addr.Compare) {
		parts = append(parts, a.String()+"→"+c.Address[a])
	}
	return orDash(strings.Join(parts, ","))
}

func (x *ctl) getServices(ctx context.Context, name string) error {
	list, done, err := oneOrAll(ctx, x, "service", name, x.c.Service, x.c.Services, func(l *apitypes.ServiceList) []*regions.Service { return l.Services })
	if done {
		return err
	}
	var rows [][]string
	for _, s := range list {
		row := []string{s.Name, string(s.Policy), strconv.Itoa(int(s.TTL)), weightList(s)}
		if x.out.wide() {
			degraded := s.DegradedTTL
			if degraded == 0 {
				degraded = max(s.TTL/2, 1)
			}
			maxAnswers := "all"
			if s.MaxAnswers > 0 {
				maxAnswers = strconv.Itoa(s.MaxAnswers)
			}
			row = append(row, strconv.Itoa(int(degraded)), yesNo(s.Sticky), allDown(s.AllDown), maxAnswers, geoSummary(s.Geo))
		}
		rows = append(rows, row)
	}
	x.out.tableWide("SERVICE\tPOLICY\tTTL\tWEIGHTS", "DEGRADED TTL\tSTICKY\tALL DOWN\tMAX ANSWERS\tGEO", rows)
	return nil
}

func allDown(a regions.AllDown) string {
	mode := firstOf(string(a.Mode), string(regions.AllDownFailOpen))
	if len(a.Addresses) > 0 {
		var as []string
		for _, ad := range a.Addresses {
			as = append(as, ad.String())
		}
		mode += " " + strings.Join(as, ",")
	}
	return mode
}

// geoSummary sums up a geo map: how many countries and continents it
// names, and its default list.
func geoSummary(g *regions.GeoMap) string {
	if g == nil {
		return "-"
	}
	s := fmt.Sprintf("%d countries, %d continents", len(g.Countries), len(g.Continents))
	if len(g.Default) > 0 {
		s += ", default " + strings.Join(g.Default, ">")
	}
	return s
}

func (x *ctl) status(ctx context.Context) error {
	st, err := x.c.Status(ctx)
	if err != nil {
		return err
	}
	if x.out.structured() {
		return x.out.value(st)
	}
	if st.Snapshot == nil {
		x.out.printf("no regions snapshot yet\n")
		return nil
	}
	x.out.printf("snapshot revision %d from %s, %.1fs old\n", st.Revision, st.Snapshot.Source, st.Snapshot.AgeSeconds)
	for _, p := range st.Snapshot.Problems {
		x.out.printf("problem: %s\n", p)
	}
	x.out.printf("\n")
	var rows [][]string
	for _, r := range st.Regions {
		row := []string{r.Name, string(r.Status), yesNo(r.Drained), fmt.Sprintf("%d/%d", r.Healthy, len(r.VIPs)), strconv.FormatUint(r.Answers, 10), orDash(r.Reason)}
		if x.out.wide() {
			var vips []string
			for _, v := range r.VIPs {
				vips = append(vips, fmt.Sprintf("%s %s (%d up/%d down)", v.Addr, v.Status, v.Up, v.Down))
			}
			row = append(row, loadCell(r.Load), strings.Join(vips, "; "))
		}
		rows = append(rows, row)
	}
	x.out.tableWide("REGION\tSTATUS\tDRAINED\tHEALTHY\tANSWERS\tREASON", "LOAD\tVIPS (VOTES)", rows)
	x.out.printf("\n")
	rows = nil
	for _, s := range st.Services {
		var ws []string
		for _, r := range s.Regions {
			w := fmt.Sprintf("%s=%d", r.Region, r.Weight)
			if sh := r.Shift; sh != nil {
				w = fmt.Sprintf("%s=%d→%d (shift %s)", r.Region, r.Weight, sh.Weight, sh.ID)
			}
			if f := r.Factors; f != nil && f.Kept < 1 {
				// What the factors below 1 leave of it.
				w += fmt.Sprintf("×%.2f", f.Kept)
			}
			ws = append(ws, w)
		}
		share := shareList(s.ExpectedShare["ipv4"])
		if s.Policy != regions.PolicyWeighted && s.Policy != regions.PolicyFailover {
			share = "by the client's place"
		}
		row := []string{s.Name, string(s.Policy), strings.Join(ws, " "), share}
		if x.out.wide() {
			row = append(row, strconv.Itoa(int(s.TTL)), shareList(s.ExpectedShare["ipv6"]))
		}
		rows = append(rows, row)
	}
	x.out.tableWide("SERVICE\tPOLICY\tWEIGHTS\tEXPECTED SHARE (IPv4)", "TTL\tEXPECTED SHARE (IPv6)", rows)
	rows = nil
	for _, sh := range st.Shifts {
		if sh.State == regions.ShiftActive || sh.State == regions.ShiftReverted && sh.Ended == nil {
			rows = append(rows, []string{sh.ID, string(sh.State), sh.Does, sh.Expires.Local().Format(time.RFC3339), shiftLeft(&sh), orDash(firstOf(sh.Why, sh.Reason))})
		}
	}
	if len(rows) > 0 {
		x.out.printf("\n")
		x.out.table("SHIFT\tSTATE\tDOES\tEXPIRES\tLEFT\tREASON", rows)
	}
	return nil
}

func (x *ctl) weightsGet(ctx context.Context, args []string) error {
	wr, _, err := x.c.Weights(ctx, args[0])
	if err != nil {
		return x.notFound(ctx, err, "service", args[0])
	}
	if x.out.structured() {
		return x.out.value(wr)
	}
	var rows [][]string
	for _, r := range slices.Sorted(maps.Keys(wr.Weights)) {
		rows = append(rows, []string{r, strconv.Itoa(int(wr.Weights[r])), pct(wr.ExpectedShare["ipv4"], r), pct(wr.ExpectedShare["ipv6"], r)})
	}
	x.out.printf("%s (revision %d)\n", wr.Service, wr.Revision)
	x.out.table("REGION\tWEIGHT\tSHARE IPv4\tSHARE IPv6", rows)
	if sh, ok := wr.ExpectedShare["ipv4"]; ok {
		x.out.printf("shares: %s\n", sh.Basis)
	}
	return nil
}

func (x *ctl) explain(ctx context.Context, args []string) error {
	ex, err := x.c.Explain(ctx, client.ExplainRequest{Name: args[0], Client: x.g.clientAddr, Resolver: x.g.resolver, Type: strings.ToUpper(x.g.qtype)})
	if err != nil {
		return x.notFound(ctx, err, "service", args[0])
	}
	if x.out.structured() {
		return x.out.value(ex)
	}
	x.out.printf("%s %s for %s (revision %d)\n", ex.Name, ex.QType, ex.Client, ex.Revision)
	if len(ex.CNAMEs) > 0 {
		x.out.printf("  %-10s %s → %s\n", "cname", strings.Join(ex.CNAMEs, "; "), ex.Service)
	}
	x.out.printf("  %-10s %s\n", "client", clientLine(ex))
	if ex.Explanation == nil {
		return nil
	}
	for _, s := range ex.Explanation.Steps {
		x.out.printf("  %-10s %s", s.Step, s.Reason)
		if len(s.Result) > 0 {
			x.out.printf(" → %s", strings.Join(s.Result, ", "))
		}
		x.out.printf("\n")
		for _, c := range s.Candidates {
			mark := "-"
			if c.Kept {
				mark = "+"
			}
			if c.Note != "" {
				x.out.printf("             %s %s: %s\n", mark, c.Region, c.Note)
			}
			if f := c.Factors; f != nil && (f.Kept < 1 || f.LoadNote != "" || f.RampNote != "" || f.VIPRampNote != "" || f.ShiftNote != "no shift") {
				x.out.printf("             %s %s: %s\n", mark, c.Region, factorsLine(f))
				for _, n := range []string{f.ShiftNote, f.LoadNote, f.RampNote, f.VIPRampNote} {
					if n != "" && n != "no shift" {
						x.out.printf("                 %s\n", n)
					}
				}
			}
		}
	}
	var answer []string
	for _, a := range ex.Explanation.Answer {
		answer = append(answer, a.String())
	}
	x.out.printf("answer: %s\n", firstOf(strings.Join(answer, " "), "(none)"))
	x.out.printf("        %s\n", ex.Explanation.Reason)
	return nil
}

// loadCell is a region's load signal in a table: its utilisation, age
// and source, "stale" when every reading is too old, "-" without any.
func loadCell(l *regions.RegionLoad) string {
	switch {
	case l == nil:
		return "-"
	case l.Probers == 0 && l.Stale > 0:
		return "stale"
	case l.Probers == 0:
		return "unknown"
	}
	return fmt.Sprintf("%.0f%% (%.0fs, %s)", 100*l.Utilisation, l.AgeSeconds, l.Source)
}

// factorsLine is a region's effective weight, factor by factor, for ctl
// explain.
func factorsLine(f *regions.ExplainFactors) string {
	load := fmt.Sprintf("%.2f", f.Load)
	if f.Utilisation != nil && f.LoadAgeSeconds != nil {
		load += fmt.Sprintf(" (utilisation %.0f%%, %.0fs old, %s)", 100**f.Utilisation, *f.LoadAgeSeconds, f.LoadSource)
	}
	line := fmt.Sprintf("weight %d × shift %.2f × health %.0f × load %s × ramp %.2f = kept %.2f, effective weight %.4g",
		f.ConfiguredWeight, f.Shift, f.Health, load, f.Ramp, f.Kept, f.EffectiveWeight)
	if f.Share != nil {
		line += fmt.Sprintf(", share %.1f%%", 100**f.Share)
	}
	return line + ": " + f.Why
}

// clientLine says who the decision is for and why: the ECS subnet, or
// the resolver when there is none or it cannot be used, and the scope
// of the reply.
func clientLine(ex *apitypes.Explain) string {
	if ex.ECS == nil {
		return fmt.Sprintf("%s: the resolver %s (no ECS option)", ex.Client, ex.Resolver)
	}
	switch ex.ECS.Use {
	case regions.ECSUsed:
		return fmt.Sprintf("%s: the ECS subnet %s; reply scope /%d", ex.Client, ex.ECS.Subnet, ex.ECS.Scope)
	case regions.ECSNotTailored:
		return fmt.Sprintf("%s: the resolver %s instead of the ECS subnet %s, whose source prefix 0 asks for an answer not tailored to the client; reply scope /%d",
			ex.Client, ex.Resolver, ex.ECS.Subnet, ex.ECS.Scope)
	case regions.ECSUnusable:
		return fmt.Sprintf("%s: the resolver %s instead: the ECS subnet %s is unusable (not a global address, so it says nothing of where the client is); reply scope /%d",
			ex.Client, ex.Resolver, ex.ECS.Subnet, ex.ECS.Scope)
	}
	return ex.Client
}

func (x *ctl) latencyGet(ctx context.Context, _ []string) error {
	l, err := x.c.Latency(ctx)
	if err != nil {
		return err
	}
	if x.out.structured() {
		return x.out.value(l)
	}
	age := time.Duration(l.AgeSeconds * float64(time.Second)).Round(time.Second)
	x.out.printf("latency table %s (revision %d), imported %s, %s ago\n", l.ID, l.Revision, l.Created.Local().Format(time.RFC3339), age)
	x.out.printf("%d entries on %d networks, %d bytes, sha256 %s\n", l.Entries, l.Prefixes, l.Bytes, l.SHA256)
	switch {
	case l.Served:
		x.out.printf("served by this server\n")
	case l.ServedID != "":
		x.out.printf("NOT served by this server yet: it serves %s\n", l.ServedID)
	default:
		x.out.printf("NOT served by this server yet: it serves no table\n")
	}
	var rows [][]string
	for _, r := range l.Regions {
		known := "yes"
		if !r.Known {
			known = "NO: its entries are not used"
		}
		rows = append(rows, []string{r.Name, strconv.Itoa(r.Entries), known})
	}
	x.out.table("REGION\tENTRIES\tREGION EXISTS", rows)
	return nil
}

func (x *ctl) audit(ctx context.Context, _ []string) error {
	page, err := x.c.Audit(ctx, x.g.limit, x.g.auditAfter)
	if err != nil {
		return err
	}
	if x.out.structured() {
		return x.out.value(page)
	}
	var rows [][]string
	for _, r := range page.Records {
		row := []string{r.Time.Local().Format(time.RFC3339), firstOf(r.Actor, "-"), r.Action, r.Kind, r.Name, strconv.FormatInt(r.Revision, 10)}
		if x.out.wide() {
			nodata := "-"
			if len(r.NoData) > 0 {
				nodata = describeNoData(r.NoData)
			}
			row = append(row, r.ID, nodata)
		}
		rows = append(rows, row)
	}
	x.out.tableWide("TIME\tBY\tACTION\tKIND\tNAME\tREVISION", "ID\tFORCED NODATA", rows)
	if page.Next != "" {
		x.out.printf("more: meridian ctl audit --after %s\n", page.Next)
	}
	return nil
}
