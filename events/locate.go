package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// This file explains encoding/json type errors. encoding/json reports a
// mismatch with a dotted path that has no array indices or map keys
// ("partitions.new_version"); when a decode fails, locate walks the document
// along the Go type it was decoded into and names the exact value at fault
// ("partitions[2].new_version"). It runs on the error path only.

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// locate returns an invalid_json error for the first value of raw (in
// document order) whose JSON type the Go type t cannot hold, or nil when every
// value fits. path is raw's position in the document. t is a wire type:
// structs with json tags, slices, maps with string keys, pointers and scalars.
// Structs are walked field by field even when they implement json.Unmarshaler
// (mvstate.BasePartitionInfo decodes its own fields, with defaults).
func locate(raw json.RawMessage, t reflect.Type, path string) *DecodeError {
	got := jsonType(raw)
	if got == "null" || t == rawMessageType {
		return nil // encoding/json accepts null for every type: the field stays unset.
	}
	switch t.Kind() {
	case reflect.Pointer:
		return locate(raw, t.Elem(), path)
	case reflect.Struct:
		if got != "object" {
			return mismatch(path, "an object", raw)
		}
		fields := jsonFields(t)
		return eachMember(raw, func(name string, val json.RawMessage) *DecodeError {
			f, ok := matchField(fields, name)
			if !ok {
				return nil // unknown member: ignored
			}
			return locate(val, f.typ, join(path, f.name))
		})
	case reflect.Map:
		if got != "object" {
			return mismatch(path, "an object", raw)
		}
		return eachMember(raw, func(k string, val json.RawMessage) *DecodeError {
			return locate(val, t.Elem(), mapKey(path, k))
		})
	case reflect.Slice:
		if got != "array" {
			return mismatch(path, "an array", raw)
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil
		}
		for i, el := range elems {
			if de := locate(el, t.Elem(), index(path, i)); de != nil {
				return de
			}
		}
		return nil
	default:
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			return mismatch(path, wantName(t), raw)
		}
		return nil
	}
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields lists the JSON members of a struct type as encoding/json sees
// them (wire types have no embedded structs).
func jsonFields(t reflect.Type) []jsonField {
	out := make([]jsonField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, typ: f.Type})
	}
	return out
}

// matchField finds the field a member name decodes into: an exact match,
// else a case-insensitive one, as encoding/json does.
func matchField(fields []jsonField, name string) (jsonField, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f, true
		}
	}
	return jsonField{}, false
}

// eachMember calls fn for every member of the JSON object raw, in document
// order (duplicates included), and returns the first error fn returns.
func eachMember(raw json.RawMessage, fn func(name string, val json.RawMessage) *DecodeError) *DecodeError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		name, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil
		}
		if de := fn(name, val); de != nil {
			return de
		}
	}
	return nil
}

// jsonType names the JSON type of a well-formed value by its first byte.
func jsonType(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

func wantName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer (" + t.Kind().String() + ")"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer (" + t.Kind().String() + ")"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	default:
		return t.String()
	}
}

// mismatch is the invalid_json error for a value of the wrong JSON type.
func mismatch(path, want string, raw json.RawMessage) *DecodeError {
	got := jsonType(raw)
	if got == "number" || got == "string" {
		lit := string(bytes.TrimSpace(raw))
		if got == "string" {
			var s string
			_ = json.Unmarshal(raw, &s)
			lit = clip(s)
		} else if len(lit) > 64 {
			lit = lit[:64] + "…"
		}
		got += " " + lit
	}
	return &DecodeError{Reason: ReasonInvalidJSON, Field: path, Msg: "expected " + want + ", got " + got}
}

// invalid is an invalid_event error.
func invalid(path, format string, args ...any) *DecodeError {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &DecodeError{Reason: ReasonInvalidEvent, Field: path, Msg: msg}
}

// join appends an object member name to a path.
func join(path, name string) string {
	switch {
	case path == "":
		return name
	case name == "":
		return path
	default:
		return path + "." + name
	}
}

// index appends an array index to a path.
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// mapKey appends a map member (Go-quoted key) to a path.
func mapKey(path, k string) string { return path + "[" + strconv.Quote(k) + "]" }
