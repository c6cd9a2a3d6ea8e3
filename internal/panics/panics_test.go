package panics

import (
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/internal/testlog"
)

// recovered panics with v and records it as a server's deferred recovery
// would.
func recovered(p *Log, v any) {
	defer func() {
		if r := recover(); r != nil {
			p.Record(r, "first", "repeat")
		}
	}()
	var list []int
	if v == nil {
		_ = list[len(list)] // a runtime panic: the site is this line, not the runtime's
	}
	panic(v)
}

func TestLog(t *testing.T) {
	var buf testlog.Buffer
	p := &Log{Logger: buf.Logger()}
	recovered(p, nil)
	recovered(p, "boom")
	out := buf.String()
	if n := strings.Count(out, "msg=first"); n != 2 {
		t.Fatalf("%d first records for two sites, want 2:\n%s", n, out)
	}
	for _, want := range []string{`panic="runtime error: index out of range [0] with length 0"`, "panic=boom",
		`site="github.com/meridian-gslb/meridian/internal/panics.recovered (`, "panics_test.go:", "stack="} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	recovered(&Log{}, "no logger") // must not panic
}
