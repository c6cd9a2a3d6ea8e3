package zapslog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	quiet := new(atomic.Bool)
	lg := New(logger, "etcd", zapcore.WarnLevel, quiet).With(zap.String("member", "m1"))
	lg.Info("chatty", zap.Int("n", 1))
	lg.Warn("slow apply", zap.Duration("took", time.Second), zap.Error(errors.New("boom")))
	lg.Error("failed")
	quiet.Store(true)
	lg.Error("closing listener")
	out := buf.String()
	for _, tc := range []struct {
		name, want string
		present    bool
	}{
		{"info is dropped below the lowest level", "chatty", false},
		{"warning with fields", `level=WARN msg="slow apply" logger=etcd error=boom member=m1 took=1s`, true},
		{"error", `level=ERROR msg=failed logger=etcd`, true},
		{"quiet turns errors into debug", `level=DEBUG msg="closing listener"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(out, tc.want) != tc.present {
				t.Errorf("log %q: contains %q = %v, want %v", out, tc.want, !tc.present, tc.present)
			}
		})
	}
	New(nil, "etcd", zapcore.WarnLevel, nil).Error("dropped") // must not panic
}
