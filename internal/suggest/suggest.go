// Package suggest finds the names a mistyped one was probably meant to
// be, for "did you mean …?" in error messages: unknown commands, regions
// and services.
//
// suggest imports only the standard library.
package suggest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// maxSuggestions bounds how many names a hint offers.
const maxSuggestions = 3

// Closest returns the candidates closest to word, in the candidates'
// order: those at the smallest edit distance from it (transpositions
// count as one edit), if that is at most a third of word's length and
// at most 3, and those word is a prefix of (counted at that limit). At
// most three; none for an empty word.
func Closest(word string, candidates []string) []string {
	if word == "" {
		return nil
	}
	w := strings.ToLower(word)
	limit := max(1, min(3, len([]rune(w))/3))
	type scored struct {
		name string
		d, i int
	}
	var found []scored
	seen := map[string]bool{}
	for i, c := range candidates {
		if seen[c] || c == word {
			continue
		}
		seen[c] = true
		lc := strings.ToLower(c)
		d := distance(w, lc)
		if strings.HasPrefix(lc, w) && d > limit {
			d = limit // a prefix is as good as the farthest near miss
		}
		if d <= limit {
			found = append(found, scored{c, d, i})
		}
	}
	if len(found) == 0 {
		return nil
	}
	best := slices.MinFunc(found, func(a, b scored) int { return cmp.Compare(a.d, b.d) }).d
	var out []string
	for _, s := range found {
		if s.d == best && len(out) < maxSuggestions {
			out = append(out, s.name)
		}
	}
	return out
}

// Hint is `did you mean "x"?` (or `did you mean one of "x", "y"?`) for
// the candidates close to word, "" when none is.
func Hint(word string, candidates []string) string {
	near := Closest(word, candidates)
	switch len(near) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("did you mean %q?", near[0])
	}
	q := make([]string, len(near))
	for i, n := range near {
		q[i] = fmt.Sprintf("%q", n)
	}
	return "did you mean one of " + strings.Join(q, ", ") + "?"
}

// distance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// runes, each one edit.
func distance(a, b string) int {
	x, y := []rune(a), []rune(b)
	// Three rows: the one before the previous is for transpositions.
	prev2 := make([]int, len(y)+1)
	prev := make([]int, len(y)+1)
	cur := make([]int, len(y)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(x); i++ {
		cur[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(y)]
}
