package testlog

import (
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { b.Logger().Info("hello", "writer", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "level=INFO msg=hello writer="); n != 8 {
		t.Fatalf("%d records, want 8:\n%s", n, b.String())
	}
}
