package main

import (
	"bytes"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/internal/zapslog"
	"github.com/meridian-gslb/meridian/regions"
)

var yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// configKeys lists the YAML keys of a config struct as dotted paths
// ("dns.cookie_secrets", "zones[].file"), parents before their fields. A
// type that reads itself from YAML (Duration) is one value, not a section.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			keys = append(keys, configKeys(f.Type, prefix)...)
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name) // yaml.v3's default
		}
		key := prefix + tag
		keys = append(keys, key)
		switch ft := f.Type; {
		case reflect.PointerTo(ft).Implements(yamlUnmarshaler):
		case ft.Kind() == reflect.Struct:
			keys = append(keys, configKeys(ft, key+".")...)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, configKeys(ft.Elem(), key+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, configKeys(ft.Elem(), key+"[].")...)
		}
	}
	return keys
}

// yamlKeys lists the keys present in a YAML document the same way.
func yamlKeys(n *yaml.Node, prefix string, into map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			yamlKeys(c, prefix, into)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := prefix + n.Content[i].Value
			into[key] = true
			yamlKeys(n.Content[i+1], key+".", into)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			yamlKeys(c, strings.TrimSuffix(prefix, ".")+"[].", into)
		}
	}
}

// TestExampleConfigShowsEveryField keeps examples/meridian.yaml, which the
// README presents as the reference of every field, in step with Config:
// it must parse, validate, and contain every key of the Config tree.
func TestExampleConfigShowsEveryField(t *testing.T) {
	const path = "../../examples/meridian.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	yamlKeys(&doc, "", present)

	want := configKeys(reflect.TypeFor[Config](), "")
	if len(want) < 40 {
		t.Fatalf("found only %d keys in Config: %v", len(want), want)
	}
	for _, key := range want {
		if !present[key] {
			t.Errorf("examples/meridian.yaml lacks %s", key)
		}
	}
	for key := range present {
		if !slices.Contains(want, key) {
			t.Errorf("examples/meridian.yaml has %s, which Config does not know", key)
		}
	}

	cfg, err := readConfig(path)
	if err != nil {
		t.Fatalf("examples/meridian.yaml does not load: %v", err)
	}
	// make run builds the GeoIP database before it starts the server; the
	// rest must validate as it is.
	cfg.GeoIP.Database = ""
	if err := cfg.validate(); err != nil {
		t.Errorf("examples/meridian.yaml is not valid: %v", err)
	}
}

func TestConfigKeys(t *testing.T) {
	type inner struct {
		A int    `yaml:"a"`
		B string `yaml:"b,omitempty"`
	}
	type outer struct {
		X      inner   `yaml:"x"`
		List   []inner `yaml:"list"`
		Plain  []string
		Wait   regions.Duration `yaml:"wait"`
		Skip   int              `yaml:"-"`
		Inline struct {
			I int `yaml:"i"`
		} `yaml:",inline"`
		hidden int
	}
	_ = outer{hidden: 0}
	got := configKeys(reflect.TypeFor[outer](), "")
	want := []string{"x", "x.a", "x.b", "list", "list[].a", "list[].b", "plain", "wait", "i"}
	if !slices.Equal(got, want) {
		t.Errorf("configKeys = %v, want %v", got, want)
	}

	doc := "x:\n  a: 1\nlist:\n  - a: 2\n    b: c\nplain: [p]\n"
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	yamlKeys(&n, "", present)
	wantPresent := map[string]bool{"x": true, "x.a": true, "list": true, "list[].a": true, "list[].b": true, "plain": true}
	if !reflect.DeepEqual(present, wantPresent) {
		t.Errorf("yamlKeys = %v, want %v", present, wantPresent)
	}
}

// TestLogDurations: durations are written as Go prints them in both log
// formats, in groups and in what etcd logs through zap as well.
func TestLogDurations(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{"text", []string{"took=635ms", "backoff.retry_in=1m30s", "took_zap=1.5s"}},
		{"json", []string{`"took":"635ms"`, `"backoff":{"retry_in":"1m30s"}`, `"took_zap":"1.5s"`}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(LogConfig{Level: "info", Format: tc.format}, &buf)
			log.Info("snapshot built", "took", 635*time.Millisecond, slog.Group("backoff", "retry_in", 90*time.Second))
			zapslog.New(log, "etcd", zapcore.InfoLevel, nil).Warn("slow apply", zap.Duration("took_zap", 1500*time.Millisecond))
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("lacks %s:\n%s", w, buf.String())
				}
			}
		})
	}
}
