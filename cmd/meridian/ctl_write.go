package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/suggest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/latency"
	"github.com/meridian-gslb/meridian/regions/store"
)

// applyResult is what apply prints with -o json or yaml.
type applyResult struct {
	DryRun    bool                      `json:"dry_run"`
	Changes   []apitypes.ChangeResponse `json:"changes"`
	Unchanged int                       `json:"unchanged"`
}

// apply makes the regions and services of a state file exist as written.
// Each region is read, compared, and created (If-None-Match: *) or
// replaced (If-Match: its ETag) only when it differs; a region drained
// through the API stays drained unless the file says drained: true or the
// region is undrained. The services are read in one listing, and the
// ones that differ are written in batches (POST /v1/services, one or more
// etcd transactions each), with a progress line per batch. Objects the
// file does not name are left alone.
//
// A dry run asks the server about each write (dry_run=true), except for
// services that name a region the same plan creates: the server cannot
// know that region yet, so they are checked here against the regions as
// the plan leaves them, as the file already was.
func (x *ctl) apply(ctx context.Context, _ []string) error {
	if x.g.file == "" {
		return usagef("apply: want -f FILE")
	}
	d, err := regions.LoadDesired(x.g.file)
	if err != nil {
		return err
	}
	res := applyResult{DryRun: x.g.dryRun, Changes: []apitypes.ChangeResponse{}}
	created, changed := 0, 0
	record := func(ch *apitypes.ChangeResponse) {
		if !ch.Changed {
			res.Unchanged++
			return
		}
		res.Changes = append(res.Changes, *ch)
		if apitypes.Absent(ch.Before) {
			created++
		} else {
			changed++
		}
		if !x.out.structured() {
			printChange(x.out, ch)
		}
	}
	unchanged := func(kind, name string) {
		res.Unchanged++
		if !x.out.structured() {
			x.out.printf("  %s %s unchanged\n", kind, name)
		}
	}
	// The regions as the plan leaves them, for the services' dry run.
	planned := map[string]*regions.Region{}
	existing := map[string]bool{}
	for _, r := range d.Regions {
		cur, etag, err := x.c.Region(ctx, r.Name)
		cond := client.IfMatch(etag)
		switch {
		case client.StatusCode(err) == http.StatusNotFound:
			cond = client.CreateOnly()
		case err != nil:
			return fmt.Errorf("region %s: %w", r.Name, err)
		default:
			existing[r.Name] = true
			if !r.Drained {
				r.Drained = cur.Drained
			}
		}
		planned[r.Name] = r
		if err == nil && sameJSON(cur, r) {
			unchanged("region", r.Name)
			continue
		}
		ch, err := x.c.PutRegion(ctx, r, x.writeOpts(cond)...)
		if err != nil {
			return fmt.Errorf("region %s: %w", r.Name, x.explainErr(err))
		}
		record(ch)
	}
	if x.g.dryRun {
		l, err := x.c.Regions(ctx)
		if err != nil {
			return err
		}
		for _, r := range l.Regions {
			existing[r.Name] = true
			if planned[r.Name] == nil {
				planned[r.Name] = r
			}
		}
	}

	// The services as they are, in one listing.
	current := map[string]*regions.Service{}
	if len(d.Services) > 0 {
		l, err := x.c.Services(ctx)
		if err != nil {
			return fmt.Errorf("services: %w", err)
		}
		for _, s := range l.Services {
			current[canonical(s.Name)] = s
		}
	}
	var todo []*regions.Service
	for _, s := range d.Services {
		s.Name = canonical(s.Name)
		cur := current[s.Name]
		switch {
		case cur != nil && sameJSON(cur, s):
			unchanged("service", s.Name)
		case x.g.dryRun && slices.ContainsFunc(s.Regions, func(sr regions.ServiceRegion) bool { return !existing[sr.Region] }):
			ch, err := x.planService(cur, s, planned)
			if err != nil {
				return fmt.Errorf("service %s: %w", s.Name, err)
			}
			record(ch)
		default:
			todo = append(todo, s)
		}
	}
	for done := 0; done < len(todo); {
		n, size := 0, 0
		for done+n < len(todo) && n < applyBatchServices {
			b, err := json.Marshal(todo[done+n])
			if err != nil {
				return err
			}
			if n > 0 && size+len(b) > applyBatchBytes {
				break
			}
			size += len(b) + 1
			n++
		}
		br, err := x.c.PutServices(ctx, todo[done:done+n], x.writeOpts()...)
		if err != nil {
			return fmt.Errorf("services %s to %s: %w", todo[done].Name, todo[done+n-1].Name, x.explainErr(err))
		}
		for i := range br.Changes {
			record(&apitypes.ChangeResponse{Change: br.Changes[i]})
		}
		done += n
		if !x.out.structured() && len(todo) > n {
			x.out.printf("services: %d of %d written\n", done, len(todo))
		}
	}
	if x.out.structured() {
		if err := x.out.value(res); err != nil {
			return err
		}
	} else {
		switch {
		case created+changed == 0:
			x.out.printf("no changes (%d unchanged)\n", res.Unchanged)
		case x.g.dryRun:
			x.out.printf("dry run: %d would be created, %d changed, %d unchanged; nothing was written\n", created, changed, res.Unchanged)
		default:
			x.out.printf("%d created, %d changed, %d unchanged\n", created, changed, res.Unchanged)
		}
	}
	if x.g.exitCode && created+changed > 0 {
		return errDiffers
	}
	return nil
}

// One POST /v1/services of apply: at most this many services and about
// this many bytes, well below the API's body limit (1 MiB by default)
// and its 1,000 services.
const (
	applyBatchServices = 500
	applyBatchBytes    = 512 << 10
)

// planService is the dry run of writing s over cur (nil: absent) when s
// names regions that only the plan creates: s was validated against the
// plan's regions when the file was read; this says what would change and
// applies the server's NODATA rule with the regions as the plan leaves
// them.
func (x *ctl) planService(cur, s *regions.Service, planned map[string]*regions.Region) (*apitypes.ChangeResponse, error) {
	after, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	ch := &apitypes.ChangeResponse{Change: apitypes.Change{Kind: "service", Name: s.Name, Action: "put", After: after, Changed: true, DryRun: true}}
	if cur != nil {
		if ch.Before, err = json.Marshal(cur); err != nil {
			return nil, err
		}
		if nd, lost := store.LostAnswer(cur, s, planned, planned); lost {
			if !x.g.force {
				return nil, fmt.Errorf("refused: %s; --force makes the write anyway", describeNoData([]apitypes.NoData{nd}))
			}
			ch.NoData = []apitypes.NoData{nd}
		}
	}
	return ch, nil
}

// sameJSON says whether two objects encode to the same JSON: what the
// server holds and what the file says.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func (x *ctl) delete(ctx context.Context, args []string) error {
	kind, name := strings.TrimSuffix(args[0], "s"), args[1]
	var ch *apitypes.ChangeResponse
	var err error
	switch kind {
	case "region":
		ch, err = x.c.DeleteRegion(ctx, name, x.writeOpts()...)
	case "service":
		ch, err = x.c.DeleteService(ctx, name, x.writeOpts()...)
	default:
		msg := fmt.Sprintf("delete %q: want region or service", args[0])
		if h := suggest.Hint(args[0], []string{"region", "service"}); h != "" {
			msg += "; " + h
		}
		return usagef("%s", msg)
	}
	if p := client.ProblemOf(err); p != nil && len(p.InUseBy) > 0 {
		return fmt.Errorf("%w: remove it from these services first (meridian ctl apply, or PUT /v1/services)", err)
	}
	if err != nil {
		return x.notFound(ctx, err, kind, name)
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	printChange(x.out, ch)
	return nil
}

func (x *ctl) weightsSet(ctx context.Context, args []string) error {
	service, pairs := args[0], args[1:]
	ws := map[string]uint32{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || k == "" || err != nil {
			return usagef("weights set: %q: want REGION=WEIGHT with a whole number of 0 or more", p)
		}
		if _, dup := ws[k]; dup {
			return usagef("weights set: region %q given twice", k)
		}
		ws[k] = uint32(n)
	}
	set := x.c.SetWeights
	if x.g.replace {
		set = x.c.ReplaceWeights
	}
	ch, err := set(ctx, service, ws, x.writeOpts()...)
	if err != nil {
		return x.notFound(ctx, err, "service", service)
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	var before, after regions.Service
	if err := json.Unmarshal(ch.Before, &before); err != nil {
		return fmt.Errorf("the service before the change: %w", err)
	}
	if err := json.Unmarshal(ch.After, &after); err != nil {
		return fmt.Errorf("the service after the change: %w", err)
	}
	old := map[string]uint32{}
	for _, r := range before.Regions {
		old[r.Region] = r.Weight
	}
	switch {
	case !ch.Changed:
		x.out.printf("%s: weights unchanged\n", ch.Name)
	case ch.DryRun:
		x.out.printf("%s: dry run, nothing written\n", ch.Name)
	default:
		x.out.printf("%s: weights changed (revision %d)\n", ch.Name, ch.Revision)
	}
	var rows [][]string
	for _, r := range after.Regions {
		w := strconv.Itoa(int(r.Weight))
		if old[r.Region] != r.Weight {
			w = fmt.Sprintf("%d -> %d", old[r.Region], r.Weight)
		}
		rows = append(rows, []string{r.Region, w, pct(ch.ExpectedShare["ipv4"], r.Region), pct(ch.ExpectedShare["ipv6"], r.Region)})
	}
	x.out.table("REGION\tWEIGHT\tSHARE IPv4\tSHARE IPv6", rows)
	printNoData(x.out, ch)
	return nil
}

// drainCmd is drain (true) or undrain (false).
func drainCmd(drained bool) func(*ctl, context.Context, []string) error {
	return func(x *ctl, ctx context.Context, args []string) error {
		region := args[0]
		call, verb := x.c.Undrain, "undrain"
		if drained {
			call, verb = x.c.Drain, "drain"
		}
		ch, err := call(ctx, region, x.writeOpts()...)
		if err != nil {
			return x.notFound(ctx, err, "region", region)
		}
		if x.out.structured() {
			return x.out.value(ch)
		}
		switch {
		case !ch.Changed:
			x.out.printf("region %s was already %sed\n", region, verb)
		case ch.DryRun:
			x.out.printf("region %s would be %sed (dry run)\n", region, verb)
		default:
			x.out.printf("region %s %sed (revision %d)\n", region, verb, ch.Revision)
		}
		printNoData(x.out, ch)
		return nil
	}
}

// acceptEmpty confirms, to the server it talks to, that etcd is meant to
// be empty.
func (x *ctl) acceptEmpty(ctx context.Context, _ []string) error {
	ch, err := x.c.AcceptEmpty(ctx, x.writeOpts()...)
	if err != nil {
		return err
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	x.out.printf("%s now serves the empty state from etcd\n", x.c.Server())
	return nil
}

// latencyImport checks the regions the table names against the server's
// before sending it (the server checks again), naming the first line of
// each that does not exist.
func (x *ctl) latencyImport(ctx context.Context, args []string) error {
	file := args[0]
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	l, err := x.c.Regions(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, r := range l.Regions {
		names = append(names, r.Name)
	}
	if _, err := latency.ParseCSVFor(f, func(region string) (bool, string) {
		return !slices.Contains(names, region), suggest.Hint(region, names)
	}); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	ch, err := x.c.ImportLatency(ctx, f, x.writeOpts()...)
	if err != nil {
		return err
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	counts := fmt.Sprintf("%d entries -> %d entries", ch.EntriesBefore, ch.Entries)
	if apitypes.Absent(ch.Before) {
		counts = fmt.Sprintf("no table -> %d entries", ch.Entries)
	}
	switch {
	case !ch.Changed:
		x.out.printf("latency table unchanged (%d entries)\n", ch.Entries)
	case ch.DryRun:
		x.out.printf("latency table of %d entries is valid (dry run, nothing written): %s\n", ch.Entries, counts)
	default:
		x.out.printf("latency table of %d entries imported (revision %d): %s\n", ch.Entries, ch.Revision, counts)
	}
	return nil
}
