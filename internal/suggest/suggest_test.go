package suggest

import (
	"slices"
	"testing"
)

func TestClosest(t *testing.T) {
	regions := []string{"eu-west", "eu-central", "us-east", "ap-northeast"}
	commands := []string{"apply", "get", "delete", "drain", "undrain", "weights", "explain", "latency", "audit", "state", "status"}
	cases := []struct {
		name, word string
		from       []string
		want       []string
	}{
		{"transposed letters", "eu-wset", regions, []string{"eu-west"}},
		{"one letter off", "us-eats", regions, []string{"us-east"}},
		{"missing letter", "ap-northest", regions, []string{"ap-northeast"}},
		{"upper case", "EU-WEST", regions, []string{"eu-west"}},
		{"prefix", "ap", regions, []string{"ap-northeast"}},
		{"nothing close", "sa-east-1-long-name", regions, nil},
		{"exact name is not suggested", "eu-west", []string{"eu-west"}, nil},
		{"command", "drian", commands, []string{"drain"}},
		{"several as close", "stat", commands, []string{"state", "status"}},
		{"only the closest", "lb.exmaple.org.", []string{"geo.example.org.", "lb.example.org."}, []string{"lb.example.org."}},
		{"empty word", "", commands, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Closest(tc.word, tc.from); !slices.Equal(got, tc.want) {
				t.Fatalf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
			}
		})
	}
}

func TestHint(t *testing.T) {
	cases := []struct{ word, want string }{
		{"drian", `did you mean "drain"?`},
		{"stat", `did you mean one of "state", "status"?`},
		{"xyzzy", ""},
	}
	for _, tc := range cases {
		if got := Hint(tc.word, []string{"drain", "state", "status", "audit"}); got != tc.want {
			t.Errorf("Hint(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"eu-west", "eu-wset", 1}, {"héllo", "hello", 1},
	}
	for _, tc := range cases {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
