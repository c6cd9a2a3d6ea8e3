package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// ctlOut prints what a command got: tables (-o table, or wide with more
// columns), or the API's answer as JSON or YAML.
type ctlOut struct {
	w      io.Writer
	format string
}

// structured says whether the answer is printed as data (JSON or YAML)
// instead of tables.
func (o *ctlOut) structured() bool { return o.format == "json" || o.format == "yaml" }

func (o *ctlOut) wide() bool { return o.format == "wide" }

// value prints v as JSON or YAML, with the API's names.
func (o *ctlOut) value(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if o.format == "json" {
		_, err = fmt.Fprintf(o.w, "%s\n", b)
		return err
	}
	y, err := jsonToYAML(b)
	if err != nil {
		return err
	}
	_, err = o.w.Write(y)
	return err
}

// jsonToYAML writes a JSON document as block-style YAML, keeping the
// order of its keys.
func jsonToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value != "" {
			// A string that would read back as another type keeps its
			// quotes ("yes", "1.5", "null").
			var v any
			if yaml.Unmarshal([]byte(n.Value), &v) != nil {
				n.Style = yaml.DoubleQuotedStyle
			} else if _, ok := v.(string); !ok {
				n.Style = yaml.DoubleQuotedStyle
			}
		}
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// tableWide is a table whose rows carry the columns of wide after those
// of header with -o wide (the caller adds them).
func (o *ctlOut) tableWide(header, wide string, rows [][]string) {
	if o.wide() {
		header += "\t" + wide
	}
	o.table(header, rows)
}

func (o *ctlOut) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func (o *ctlOut) printf(format string, args ...any) { fmt.Fprintf(o.w, format, args...) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func weightList(s *regions.Service) string {
	var ws []string
	for _, r := range s.Regions {
		ws = append(ws, fmt.Sprintf("%s=%d", r.Region, r.Weight))
	}
	return strings.Join(ws, " ")
}

func shareList(sh regions.Shares) string {
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(sh.Regions)) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", r, 100*sh.Regions[r]))
	}
	return strings.Join(parts, ", ")
}

func pct(sh regions.Shares, region string) string {
	v, ok := sh.Regions[region]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// describeNoData says which services answer NODATA, to which types and
// why: "api.gslb.example. answers: NODATA (A, AAAA): every region …".
func describeNoData(nd []apitypes.NoData) string {
	parts := make([]string, len(nd))
	for i, n := range nd {
		parts[i] = fmt.Sprintf("%s answers: NODATA (%s): %s", n.Service, strings.Join(n.Types, ", "), n.Reason)
	}
	return strings.Join(parts, "; ")
}

// printChange says what a write did, with the diff of the object.
func printChange(o *ctlOut, ch *apitypes.ChangeResponse) {
	verb := map[bool]string{true: "would be", false: ""}[ch.DryRun]
	what := ch.Kind + " " + ch.Name
	switch {
	case !ch.Changed:
		o.printf("%s unchanged\n", what)
		return
	case apitypes.Absent(ch.Before):
		o.printf("+ %s %s\n", what, strings.TrimSpace(verb+" created"))
	case apitypes.Absent(ch.After):
		o.printf("- %s %s\n", what, strings.TrimSpace(verb+" deleted"))
	default:
		o.printf("~ %s %s (%s)\n", what, strings.TrimSpace(verb+" changed"), ch.Action)
	}
	for _, l := range jsonDiff(ch.Before, ch.After) {
		o.printf("    %s\n", l)
	}
	printNoData(o, ch)
	if !ch.DryRun && ch.Revision > 0 {
		o.printf("    revision %d\n", ch.Revision)
	}
}

// printNoData lists the services a forced write leaves answering NODATA.
func printNoData(o *ctlOut, ch *apitypes.ChangeResponse) {
	for _, n := range ch.NoData {
		o.printf("    ! %s answers: NODATA (%s): %s\n", n.Service, strings.Join(n.Types, ", "), n.Reason)
	}
}

// jsonDiff is a line diff of two JSON values, indented: changed lines
// marked - and +, with a line of context around them.
func jsonDiff(a, b json.RawMessage) []string {
	lines := func(r json.RawMessage) []string {
		if apitypes.Absent(r) {
			return nil
		}
		var buf bytes.Buffer
		if json.Indent(&buf, r, "", "  ") != nil {
			return []string{string(r)}
		}
		return strings.Split(buf.String(), "\n")
	}
	x, y := lines(a), lines(b)
	// Longest common subsequence; objects are small.
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		mark byte
		text string
	}
	var all []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			all = append(all, line{' ', x[i]})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, line{'-', x[i]})
			i++
		default:
			all = append(all, line{'+', y[j]})
			j++
		}
	}
	var out []string
	near := func(k int) bool {
		for d := -1; d <= 1; d++ {
			if k+d >= 0 && k+d < len(all) && all[k+d].mark != ' ' {
				return true
			}
		}
		return false
	}
	skipped := false
	for k, l := range all {
		if l.mark == ' ' && !near(k) {
			if !skipped {
				out = append(out, "  …")
			}
			skipped = true
			continue
		}
		skipped = false
		out = append(out, string(l.mark)+" "+l.text)
	}
	return out
}
