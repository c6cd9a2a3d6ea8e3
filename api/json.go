package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-gslb/meridian/regions"
)

// writeJSON answers with v as JSON in the API's one style: the snake_case
// names of the types' tags, times in RFC 3339, and empty lists and maps
// as [] and {}, never null (see emptyLists).
func writeJSON(w http.ResponseWriter, status int, v any) {
	if v != nil {
		v = emptyLists(reflect.ValueOf(v)).Interface()
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeProblem(w, Problem{Status: http.StatusInternalServerError, Detail: "cannot encode the response: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the client went away; nothing to do
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// marshalsItself says whether t (or *t) writes its own JSON or text:
// such values (times, addresses, durations, raw JSON) are left alone.
func marshalsItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonMarshaler) || t.Implements(textMarshaler) || p.Implements(jsonMarshaler) || p.Implements(textMarshaler)
}

// emptyLists returns a copy of v in which every nil slice is an empty one
// and every nil map an empty map, so that lists encode as [] and maps as
// {}. It copies instead of changing v in place: responses are built from
// snapshots, which are shared and never modified.
func emptyLists(v reflect.Value) reflect.Value {
	if !v.IsValid() {
		return v
	}
	t := v.Type()
	if t.Kind() != reflect.Interface && marshalsItself(t) {
		return v
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(emptyLists(v.Elem()))
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t).Elem()
		out.Set(emptyLists(v.Elem()))
		return out
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return v
		}
		if v.IsNil() {
			return reflect.MakeSlice(t, 0, 0)
		}
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(emptyLists(v.Index(i)))
		}
		return out
	case reflect.Array:
		out := reflect.New(t).Elem()
		for i := range v.Len() {
			out.Index(i).Set(emptyLists(v.Index(i)))
		}
		return out
	case reflect.Map:
		out := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), emptyLists(it.Value()))
		}
		return out
	case reflect.Struct:
		out := reflect.New(t).Elem()
		out.Set(v)
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				out.Field(i).Set(emptyLists(v.Field(i)))
			}
		}
		return out
	}
	return v
}

// decodeJSON reads a request body of at most limit bytes into v, strictly:
// unknown fields and trailing data are refused with a problem document
// naming what is wrong. The body is read as JSON whatever its
// Content-Type says (curl -d sends a form type). It reports whether v is
// usable.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeProblem(w, bodyProblem(err, limit))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		// One value, and nothing after it.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err == nil {
		return true
	}
	p := bodyProblem(err, limit)
	if len(p.Errors) == 1 && p.Errors[0].Field == "" {
		// A type's own decoder (an address, a duration) does not say
		// where its value was: find it.
		if field := refusedField(data, reflect.TypeOf(v)); field != "" {
			p.Errors[0].Field = field
			p.Detail = field + ": " + p.Detail
		}
	}
	writeProblem(w, p)
	return false
}

func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// bodyProblem explains why a JSON body could not be read.
func bodyProblem(err error, limit int64) Problem {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	bad := func(field, msg string) Problem {
		return Problem{Status: http.StatusBadRequest, Title: "invalid request body", Detail: msg,
			Errors: []FieldError{{Field: field, Message: msg}}}
	}
	switch {
	case isTooLarge(err):
		return Problem{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the request body is larger than %d bytes", limit)}
	case errors.Is(err, io.EOF):
		return bad("", "the request body is empty: send a JSON object")
	case errors.As(err, &syn):
		return bad("", fmt.Sprintf("not JSON at byte %d: %v", syn.Offset, syn))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("", "the JSON value is cut short")
	case errors.As(err, &typ):
		field := typ.Field
		return bad(field, fmt.Sprintf("%s: %s is not a valid %s", orBody(field), typ.Value, typeName(typ.Type)))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return bad(name, fmt.Sprintf("unknown field %q", name))
	}
	// A type's own decoder (an address, a duration) refused its value.
	return bad("", err.Error())
}

func orBody(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

func typeName(t reflect.Type) string {
	if t == reflect.TypeFor[regions.Duration]() {
		return `duration like "10s" or "1m30s"`
	}
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number of at least 0"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "list"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.String()
}

// drainBody refuses a body on requests that take none (other than an
// empty JSON object), so that a misdirected payload is not silently
// ignored.
func drainBody(w http.ResponseWriter, r *http.Request) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1024))
	if err != nil {
		writeProblem(w, bodyProblem(err, 1024))
		return false
	}
	if s := bytes.TrimSpace(b); len(s) > 0 && string(s) != "{}" {
		writeProblem(w, Problem{Status: http.StatusBadRequest, Title: "invalid request body", Detail: "this request takes no body"})
		return false
	}
	return true
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// refusedField finds the first value in the JSON document data that the
// type t (where it lies in t) refuses, and names it as validation errors
// name fields: "vips[0]", "check.interval", "check.address.192.0.2.1".
// It returns "" when no single value is refused (a syntax error, say).
func refusedField(data []byte, t reflect.Type) string {
	var doc any
	if json.Unmarshal(data, &doc) != nil {
		return ""
	}
	return refusedIn(doc, t, "")
}

func refusedIn(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := reflect.PointerTo(t); p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler) {
		b, err := json.Marshal(v)
		if err == nil && json.Unmarshal(b, reflect.New(t).Interface()) != nil {
			return path
		}
		return ""
	}
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		for _, key := range slices.Sorted(maps.Keys(obj)) {
			if f, ok := jsonField(t, key); ok {
				if field := refusedIn(obj[key], f.Type, join(jsonName(f))); field != "" {
					return field
				}
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return ""
		}
		for i, e := range list {
			if field := refusedIn(e, t.Elem(), path+"["+strconv.Itoa(i)+"]"); field != "" {
				return field
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		for _, key := range slices.Sorted(maps.Keys(obj)) {
			if k := reflect.PointerTo(t.Key()); k.Implements(textUnmarshaler) {
				if reflect.New(t.Key()).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(key)) != nil {
					return join(key)
				}
			}
			if field := refusedIn(obj[key], t.Elem(), join(key)); field != "" {
				return field
			}
		}
	}
	return ""
}

// jsonField finds the field of struct t that encoding/json decodes key
// into: the exact name first, then one that differs only in case, also
// among the fields of embedded structs.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	folded := false
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Tag.Get("json") == "-" || f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			continue
		}
		switch name := jsonName(f); {
		case name == key:
			return f, true
		case !folded && strings.EqualFold(name, key):
			fold, folded = f, true
		}
	}
	return fold, folded
}

// jsonName is the name encoding/json gives a struct field.
func jsonName(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
		return name
	}
	return f.Name
}
