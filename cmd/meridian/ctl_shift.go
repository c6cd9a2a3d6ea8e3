package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/api/client"
	"github.com/meridian-gslb/meridian/internal/suggest"
	"github.com/meridian-gslb/meridian/regions"
)

// shiftGuards are the values of --revert-if, by the API's names.
var shiftGuards = map[string]string{"unhealthy": "unhealthy", "high-watermark": "high_watermark"}

// shiftFlags maps the fields of a shift request to the flags that give
// them, so that a refusal names what the operator typed.
var shiftFlags = map[string]string{"service": "--service", "drain": "--drain", "weights": "--weights", "expires_in": "--for",
	"expires": "--for", "reason": "--reason", "revert_if": "--revert-if", "revert_if.high_watermark": "--revert-if high-watermark"}

// shiftErr names the flags in a refusal of a shift request: "--for:
// ... is 73h0m0s ahead" rather than the API's field; a service or region
// that does not exist gets "did you mean". req is the request refused
// (nil: none with names in it).
func (x *ctl) shiftErr(ctx context.Context, err error, req *apitypes.ShiftRequest) error {
	p := client.ProblemOf(err)
	if p == nil || len(p.Errors) == 0 {
		return x.explainErr(err)
	}
	var parts []string
	for _, fe := range p.Errors {
		flag, ok := shiftFlags[fe.Field]
		kind, name := "", ""
		switch region, isWeight := strings.CutPrefix(fe.Field, "weights."); {
		case isWeight:
			flag, ok, kind, name = "--weights "+region, true, "region", region
		case fe.Field == "service" && req != nil:
			kind, name = "service", canonical(req.Service)
		case fe.Field == "drain" && req != nil:
			kind, name = "region", req.Drain
		}
		if !ok {
			flag = fe.Field
		}
		msg := flag + ": " + fe.Message
		if p.Status == 404 && kind != "" {
			if h := suggest.Hint(name, x.names(ctx, kind)); h != "" {
				msg += "; " + h
			}
		}
		parts = append(parts, msg)
	}
	return renamedErr{fmt.Sprintf("%d %s: %s", p.Status, p.Title, strings.Join(parts, "; ")), err}
}

// renamedErr is a refusal said in ctl's words; it unwraps to the
// client's error.
type renamedErr struct {
	msg string
	err error
}

func (e renamedErr) Error() string { return e.msg }
func (e renamedErr) Unwrap() error { return e.err }

// parseShiftWeights reads --weights r1=0,r2=100.
func parseShiftWeights(s string) (map[string]uint32, error) {
	ws := map[string]uint32{}
	for _, p := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || k == "" || err != nil {
			return nil, usagef("--weights %q: want REGION=WEIGHT,... with whole numbers of 0 or more", p)
		}
		if _, dup := ws[k]; dup {
			return nil, usagef("--weights: region %q given twice", k)
		}
		ws[k] = uint32(n)
	}
	return ws, nil
}

// shiftFor reads --for: a duration above 0 (the server checks the 72 h).
func (x *ctl) shiftFor(cmd string) (string, error) {
	if x.g.shiftFor == "" {
		return "", usagef("%s: want --for DURATION (like 30m or 2h; at most %s): a shift must carry an expiry", cmd, regions.MaxShiftDuration)
	}
	d, err := time.ParseDuration(x.g.shiftFor)
	if err != nil || d <= 0 {
		return "", usagef("--for %q: want a duration above 0, like 30m or 2h", x.g.shiftFor)
	}
	return d.String(), nil
}

func (x *ctl) shiftCreate(ctx context.Context, _ []string) error {
	req := apitypes.ShiftRequest{Service: x.g.service, Drain: x.g.drain, Reason: x.g.reason}
	switch {
	case x.g.drain != "" && x.g.weights != "":
		return usagef("shift create: --drain or --weights, not both")
	case x.g.weights != "":
		if x.g.service == "" {
			return usagef("shift create --weights: name the service (--service NAME)")
		}
		ws, err := parseShiftWeights(x.g.weights)
		if err != nil {
			return err
		}
		req.Weights = ws
	case x.g.drain == "":
		return usagef("shift create: want --drain REGION [--service NAME] or --service NAME --weights R=N,...")
	}
	var err error
	if req.ExpiresIn, err = x.shiftFor("shift create"); err != nil {
		return err
	}
	if x.g.revertIf != "" {
		req.RevertIf = &regions.ShiftGuard{}
		for _, g := range strings.Split(x.g.revertIf, ",") {
			switch shiftGuards[strings.TrimSpace(g)] {
			case "unhealthy":
				req.RevertIf.Unhealthy = true
			case "high_watermark":
				req.RevertIf.HighWatermark = true
			default:
				msg := fmt.Sprintf("--revert-if %q: want unhealthy, high-watermark or both (comma-separated)", g)
				if h := suggest.Hint(g, slices.Sorted(maps.Keys(shiftGuards))); h != "" {
					msg += "; " + h
				}
				return usagef("%s", msg)
			}
		}
	}
	ch, err := x.c.CreateShift(ctx, req, x.writeOpts()...)
	if err != nil {
		return x.shiftErr(ctx, err, &req)
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	sh := ch.Shift
	when := shiftUntil(sh)
	if ch.DryRun {
		x.out.printf("shift would be created (dry run, nothing written): %s %s\n", sh.Does, when)
	} else {
		x.out.printf("shift %s created: %s %s\n", sh.ID, sh.Does, when)
	}
	printShiftShares(x.out, ch)
	return nil
}

// printShiftShares shows what a shift write does to the answers: each
// service's regions with their expected shares before and after.
func printShiftShares(o *ctlOut, ch *apitypes.ShiftChange) {
	var rows [][]string
	for _, s := range ch.Services {
		for _, r := range slices.Sorted(maps.Keys(s.After["ipv4"].Regions)) {
			rows = append(rows, []string{s.Service, r, pct(s.Before["ipv4"], r), pct(s.After["ipv4"], r), pct(s.Before["ipv6"], r), pct(s.After["ipv6"], r)})
		}
	}
	if len(rows) > 0 {
		o.table("SERVICE\tREGION\tIPv4 BEFORE\tIPv4 AFTER\tIPv6 BEFORE\tIPv6 AFTER", rows)
	}
	if more := ch.ServicesTotal - len(ch.Services); more > 0 {
		o.printf("and %d more services (-o json lists the first %d)\n", more, apitypes.MaxShiftServices)
	}
	printNoData(o, &apitypes.ChangeResponse{Change: ch.Change})
}

func (x *ctl) shiftList(ctx context.Context, _ []string) error {
	l, err := x.c.Shifts(ctx)
	if err != nil {
		return err
	}
	if x.out.structured() {
		return x.out.value(l)
	}
	var rows [][]string
	for _, s := range l.Shifts {
		left := "-"
		if s.State == regions.ShiftActive {
			left = shiftLeft(&s)
		}
		row := []string{s.ID, string(s.State), s.Does, s.Expires.Local().Format(time.RFC3339), left, s.CreatedBy, orDash(s.Reason)}
		if x.out.wide() {
			guard := []string{}
			if g := s.RevertIf; g != nil {
				if g.Unhealthy {
					guard = append(guard, "unhealthy")
				}
				if g.HighWatermark {
					guard = append(guard, "high-watermark")
				}
			}
			ended := "-"
			if e := s.Ended; e != nil {
				ended = fmt.Sprintf("%s %s by %s", e.How, e.At.Local().Format(time.RFC3339), firstOf(e.By, "-"))
			}
			row = append(row, s.Created.Local().Format(time.RFC3339), orDash(strings.Join(guard, ",")), ended, orDash(firstOf(s.Why, endDetail(s.Ended))))
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		x.out.printf("no shifts\n")
		return nil
	}
	x.out.tableWide("ID\tSTATE\tSHIFT\tEXPIRES\tLEFT\tBY\tREASON", "CREATED\tREVERT IF\tENDED\tWHY", rows)
	return nil
}

// shiftLeft is how long an active shift still runs.
func shiftLeft(s *apitypes.ShiftStatus) string {
	return time.Duration(s.ExpiresInSeconds * float64(time.Second)).Round(time.Second).String()
}

// shiftUntil says until when a shift runs, and how long that is.
func shiftUntil(s *apitypes.ShiftStatus) string {
	return fmt.Sprintf("until %s (%s)", s.Expires.Local().Format(time.RFC3339), shiftLeft(s))
}

func endDetail(e *regions.ShiftEnd) string {
	if e == nil {
		return ""
	}
	return e.Detail
}

func (x *ctl) shiftExtend(ctx context.Context, args []string) error {
	id := args[0]
	in, err := x.shiftFor("shift extend")
	if err != nil {
		return err
	}
	patch := apitypes.ShiftPatch{ExpiresIn: in}
	if x.g.reason != "" {
		patch.Reason = &x.g.reason
	}
	ch, err := x.c.ExtendShift(ctx, id, patch, x.writeOpts()...)
	if err != nil {
		return x.shiftNotFound(ctx, x.shiftErr(ctx, err, nil), id)
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	when := shiftUntil(ch.Shift)
	switch {
	case ch.DryRun:
		x.out.printf("shift %s would run %s (dry run, nothing written)\n", id, when)
	default:
		x.out.printf("shift %s runs %s: %s\n", id, when, ch.Shift.Does)
	}
	return nil
}

func (x *ctl) shiftCancel(ctx context.Context, args []string) error {
	id := args[0]
	ch, err := x.c.CancelShift(ctx, id, x.writeOpts()...)
	if err != nil {
		return x.shiftNotFound(ctx, x.explainErr(err), id)
	}
	if x.out.structured() {
		return x.out.value(ch)
	}
	switch {
	case !ch.Changed:
		x.out.printf("shift %s had already ended (%s)\n", id, ch.Shift.State)
		return nil
	case ch.DryRun:
		x.out.printf("shift %s would be cancelled (dry run, nothing written): %s\n", id, ch.Shift.Does)
	default:
		x.out.printf("shift %s cancelled: %s; the weights come back\n", id, ch.Shift.Does)
	}
	printShiftShares(x.out, ch)
	return nil
}

// shiftNotFound adds "did you mean" to a 404 for a shift id.
func (x *ctl) shiftNotFound(ctx context.Context, err error, id string) error {
	if client.StatusCode(err) != 404 {
		return err
	}
	if h := suggest.Hint(id, x.shiftIDs(ctx, false)); h != "" {
		return fmt.Errorf("%w; %s", err, h)
	}
	return err
}

// shiftIDs lists the ids of the server's shifts (only the active ones
// with active); none when it cannot.
func (x *ctl) shiftIDs(ctx context.Context, active bool) []string {
	l, err := x.c.Shifts(ctx)
	if err != nil {
		return nil
	}
	var ids []string
	for _, s := range l.Shifts {
		if !active || s.State == regions.ShiftActive {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// completeShiftID completes the id of an active shift.
func completeShiftID(x *ctl, ctx context.Context, i int, _ []string) []string {
	if i == 0 {
		return x.shiftIDs(ctx, true)
	}
	return nil
}
