package regions

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Desired is a desired-state file: the regions and services a fresh
// deployment starts with.
type Desired struct {
	Regions  []*Region  `yaml:"regions"`
	Services []*Service `yaml:"services"`
}

// FileError is one problem in a file, with the line and the field it is
// about where known. Validation problems match ErrInvalid.
type FileError struct {
	File  string
	Line  int
	Field string // "services[0].regions[1].weight"
	Msg   string
	Err   error // what it wraps, if anything
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// LoadDesired reads a desired-state file strictly (unknown keys are
// errors) and validates every object, services against the file's own
// regions. Every problem is reported, each with file, line and field.
func LoadDesired(path string) (*Desired, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("desired state: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, desiredYAMLError(path, &root, err)
	}
	d := new(Desired)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(d); err != nil && !errors.Is(err, io.EOF) {
		return nil, desiredYAMLError(path, &root, err)
	}
	if err := d.validate(path, &root); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Desired) validate(path string, root *yaml.Node) error {
	var errs []error
	add := func(field, msg string, wrapped error) {
		errs = append(errs, &FileError{File: path, Line: nodeLine(root, field), Field: field, Msg: msg, Err: wrapped})
	}
	addValidation := func(prefix string, err error) {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			add(prefix, err.Error(), err)
			return
		}
		for _, p := range ve.Problems {
			add(prefix+"."+p.Field, p.Message, ErrInvalid)
		}
	}
	regions := map[string]*Region{}
	for i, r := range d.Regions {
		f := "regions[" + strconv.Itoa(i) + "]"
		if r == nil {
			add(f, "empty entry", ErrInvalid)
			continue
		}
		if err := r.Validate(); err != nil {
			addValidation(f, err)
		}
		if regions[r.Name] != nil {
			add(f+".name", fmt.Sprintf("region %q is defined twice", r.Name), ErrInvalid)
		}
		regions[r.Name] = r
	}
	services := map[string]bool{}
	for i, s := range d.Services {
		f := "services[" + strconv.Itoa(i) + "]"
		if s == nil {
			add(f, "empty entry", ErrInvalid)
			continue
		}
		if err := s.Validate(regions, nil); err != nil {
			addValidation(f, err)
		}
		if name := CanonicalName(s.Name); services[name] {
			add(f+".name", fmt.Sprintf("service %q is defined twice", name), ErrInvalid)
		} else {
			services[name] = true
		}
	}
	return errors.Join(errs...)
}

var (
	yamlLineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknownRE = regexp.MustCompile(`^field (\S+) not found in type `)
	yamlValueRE   = regexp.MustCompile("`([^`]*)`")
)

// desiredYAMLError turns a YAML error into FileErrors with lines. Values
// that a field's own decoder refuses (an address, a duration) come back
// from the YAML library without a line; those are found by decoding the
// document piece by piece.
func desiredYAMLError(path string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		fe := &FileError{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
		}
		// A document that parsed failed in a field's own decoder: find
		// which field.
		if root.Kind != 0 {
			field, line := locateDecodeError(root)
			fe.Field = field
			if line > 0 {
				fe.Line = line
			}
		}
		return fe
	}
	var errs []error
	for _, e := range te.Errors {
		fe := &FileError{File: path, Msg: e, Err: ErrInvalid}
		if m := yamlLineRE.FindStringSubmatch(e); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
			if u := yamlUnknownRE.FindStringSubmatch(m[2]); u != nil {
				fe.Field = keyPathAt(root, fe.Line, u[1])
				fe.Msg = "unknown key"
			} else {
				fe.Field = valuePathAt(root, fe.Line, yamlValueRE.FindStringSubmatch(m[2]))
			}
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// locateDecodeError narrows a failing document down to the smallest piece
// that still fails to decode into a Desired, and returns its path and line.
func locateDecodeError(root *yaml.Node) (string, int) {
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	fails := func(n *yaml.Node) bool { return n.Decode(new(Desired)) != nil }
	field, n := "", doc
	wrap := func(x *yaml.Node) *yaml.Node { return x }
	for {
		found := false
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content) && !found; i += 2 {
				k, v, outer := n.Content[i], n.Content[i+1], wrap
				w := func(x *yaml.Node) *yaml.Node {
					return outer(&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, x}})
				}
				if fails(w(v)) {
					field, n, wrap, found = joinField(field, k.Value), v, w, true
				}
			}
		case yaml.SequenceNode:
			for j := 0; j < len(n.Content) && !found; j++ {
				v, outer := n.Content[j], wrap
				w := func(x *yaml.Node) *yaml.Node {
					return outer(&yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{x}})
				}
				if fails(w(v)) {
					field, n, wrap, found = field+"["+strconv.Itoa(j)+"]", v, w, true
				}
			}
		}
		if !found {
			return field, n.Line
		}
	}
}

func joinField(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// walkYAML calls f for every node with its path.
func walkYAML(n *yaml.Node, path string, f func(path string, key, value *yaml.Node)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkYAML(c, path, f)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinField(path, n.Content[i].Value)
			f(p, n.Content[i], n.Content[i+1])
			walkYAML(n.Content[i+1], p, f)
		}
	case yaml.SequenceNode:
		for j, c := range n.Content {
			p := path + "[" + strconv.Itoa(j) + "]"
			f(p, nil, c)
			walkYAML(c, p, f)
		}
	}
}

// keyPathAt finds the path of the mapping key name on line.
func keyPathAt(root *yaml.Node, line int, name string) string {
	found := ""
	walkYAML(root, "", func(path string, key, _ *yaml.Node) {
		if found == "" && key != nil && key.Line == line && key.Value == name {
			found = path
		}
	})
	return found
}

// valuePathAt finds the path of the scalar value on line that the YAML
// error quoted (m[1], possibly cut short and ending in "..."), or else of
// the first scalar on the line.
func valuePathAt(root *yaml.Node, line int, m []string) string {
	quoted := ""
	if m != nil {
		quoted = strings.TrimSuffix(m[1], "...")
	}
	first, found := "", ""
	walkYAML(root, "", func(path string, _, value *yaml.Node) {
		if value.Kind != yaml.ScalarNode || value.Line != line {
			return
		}
		if first == "" {
			first = path
		}
		if found == "" && quoted != "" && strings.HasPrefix(value.Value, quoted) {
			found = path
		}
	})
	if found != "" {
		return found
	}
	return first
}

// nodeLine finds the line of a field given as a path
// ("services[0].geo.countries.DE[1]"), or the nearest enclosing one found.
func nodeLine(root *yaml.Node, field string) int {
	line := 0
	walkYAML(root, "", func(path string, key, value *yaml.Node) {
		if field == path || strings.HasPrefix(field, path+".") || strings.HasPrefix(field, path+"[") {
			// Deeper matches come later in the walk and win.
			if key != nil {
				line = key.Line
			} else {
				line = value.Line
			}
		}
	})
	return line
}
