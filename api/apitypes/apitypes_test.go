package apitypes

import (
	"encoding/json"
	"testing"
)

func TestAbsent(t *testing.T) {
	for _, tc := range []struct {
		raw  json.RawMessage
		want bool
	}{
		{nil, true}, {json.RawMessage("null"), true}, {json.RawMessage(`{"name":"eu-west"}`), false}, {json.RawMessage(`""`), false},
	} {
		if got := Absent(tc.raw); got != tc.want {
			t.Errorf("Absent(%q) = %v", tc.raw, got)
		}
	}
	// As a client decodes a change: JSON null arrives as "null".
	var ch Change
	if err := json.Unmarshal([]byte(`{"before":null,"after":{"name":"x"}}`), &ch); err != nil || !Absent(ch.Before) || Absent(ch.After) {
		t.Fatalf("%+v %v", ch, err)
	}
}
