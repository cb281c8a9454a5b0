package jsonx

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrSyntax is wrapped by every error of a Reader. The reader is strict on
// purpose: it refuses what it does not handle (floats, odd escapes, invalid
// UTF-8) so that callers fall back to encoding/json, which then either
// decodes the value or reports the precise problem.
var ErrSyntax = errors.New("jsonx: unsupported or invalid JSON")

// Reader is a pull scanner over one JSON document. The first error sticks:
// once Err is non-nil every method returns zero values. Typical use:
//
//	r := jsonx.NewReader(b)
//	r.Object(func(key []byte) {
//		switch string(key) {
//		case "id":
//			v.ID = r.Int()
//		default:
//			r.Skip()
//		}
//	})
//	if err := r.End(); err != nil { ... }
type Reader struct {
	b   []byte
	i   int
	err error
}

// NewReader returns a reader of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from the start.
func (r *Reader) Reset(b []byte) { *r = Reader{b: b} }

// Err returns the first error.
func (r *Reader) Err() error { return r.err }

// End checks that only whitespace follows and returns the first error.
func (r *Reader) End() error {
	if r.err == nil {
		r.ws()
		if r.i != len(r.b) {
			r.fail("unexpected data after the value")
		}
	}
	return r.err
}

func (r *Reader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at offset %d", ErrSyntax, msg, r.i)
	}
}

func (r *Reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (r *Reader) peek() byte {
	r.ws()
	if r.i >= len(r.b) {
		return 0
	}
	return r.b[r.i]
}

func (r *Reader) expect(c byte) bool {
	if r.err != nil {
		return false
	}
	if r.peek() != c {
		r.fail(fmt.Sprintf("expected %q", c))
		return false
	}
	r.i++
	return true
}

// IsNull consumes a null and reports whether there was one.
func (r *Reader) IsNull() bool {
	if r.err != nil || r.peek() != 'n' {
		return false
	}
	if len(r.b)-r.i >= 4 && string(r.b[r.i:r.i+4]) == "null" {
		r.i += 4
		return true
	}
	r.fail("bad literal")
	return false
}

// Object reads an object, calling fn for each member with its key (valid
// only during the call); fn must consume the member's value.
func (r *Reader) Object(fn func(key []byte)) {
	if !r.expect('{') {
		return
	}
	if r.peek() == '}' {
		r.i++
		return
	}
	for r.err == nil {
		key := r.rawString()
		if !r.expect(':') {
			return
		}
		fn(key)
		if r.err != nil {
			return
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return
		default:
			r.fail("expected , or }")
		}
	}
}

// Members returns the number of members of the object at the reader's
// position without consuming it (0 when the next value is not a
// well-formed object): a decoder sizes its map once instead of growing it
// member by member.
func (r *Reader) Members() int {
	c := *r
	n := 0
	c.Object(func([]byte) {
		n++
		c.Skip()
	})
	if c.err != nil {
		return 0
	}
	return n
}

// Array reads an array, calling fn for each element; fn must consume it.
func (r *Reader) Array(fn func()) {
	if !r.expect('[') {
		return
	}
	if r.peek() == ']' {
		r.i++
		return
	}
	for r.err == nil {
		fn()
		if r.err != nil {
			return
		}
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.fail("expected , or ]")
		}
	}
}

// rawString reads a string with no escapes and returns its bytes (a slice
// of the input). Strings with escapes are decoded into a new slice.
func (r *Reader) rawString() []byte {
	if !r.expect('"') {
		return nil
	}
	start := r.i
	ascii := true
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			s := r.b[start:r.i]
			r.i++
			if !ascii && !utf8.Valid(s) {
				r.fail("invalid UTF-8 in string")
				return nil
			}
			return s
		case c == '\\':
			return r.escapedString(start)
		case c < 0x20:
			r.fail("control character in string")
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
		r.i++
	}
	r.fail("unterminated string")
	return nil
}

// escapedString decodes a string with escapes whose content starts at start.
func (r *Reader) escapedString(start int) []byte {
	out := append([]byte(nil), r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			if !utf8.Valid(out) {
				r.fail("invalid UTF-8 in string")
				return nil
			}
			return out
		case c < 0x20:
			r.fail("control character in string")
			return nil
		case c != '\\':
			out = append(out, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			break
		}
		e := r.b[r.i+1]
		r.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			c1, ok := r.hex4()
			if !ok {
				return nil
			}
			if utf16.IsSurrogate(c1) {
				// A pair must follow; anything else is left to encoding/json.
				if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
					r.i += 2
					c2, ok := r.hex4()
					if !ok {
						return nil
					}
					if d := utf16.DecodeRune(c1, c2); d != utf8.RuneError {
						out = utf8.AppendRune(out, d)
						continue
					}
				}
				r.fail("unpaired surrogate")
				return nil
			}
			out = utf8.AppendRune(out, c1)
		default:
			r.fail("bad escape")
			return nil
		}
	}
	r.fail("unterminated string")
	return nil
}

func (r *Reader) hex4() (rune, bool) {
	if r.i+4 > len(r.b) {
		r.fail("short \\u escape")
		return 0, false
	}
	var v rune
	for _, c := range r.b[r.i : r.i+4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			v |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= rune(c-'A') + 10
		default:
			r.fail("bad \\u escape")
			return 0, false
		}
	}
	r.i += 4
	return v, true
}

// StringBytes reads a string value and returns its bytes (a slice of the
// input, or of a new buffer when it had escapes): no string is allocated.
func (r *Reader) StringBytes() []byte {
	if r.err != nil {
		return nil
	}
	return r.rawString()
}

// String reads a string value.
func (r *Reader) String() string {
	if r.err != nil {
		return ""
	}
	return string(r.rawString())
}

// Int reads an integer that fits an int64. Fractions and exponents are
// errors (encoding/json refuses them for integer fields too).
func (r *Reader) Int() int64 {
	if r.err != nil {
		return 0
	}
	r.ws()
	neg := false
	if r.i < len(r.b) && r.b[r.i] == '-' {
		neg = true
		r.i++
	}
	start := r.i
	var u uint64
	for r.i < len(r.b) {
		c := r.b[r.i]
		if c < '0' || c > '9' {
			break
		}
		if u > (math.MaxUint64-9)/10 {
			r.fail("integer overflow")
			return 0
		}
		u = u*10 + uint64(c-'0')
		r.i++
	}
	n := r.i - start
	switch {
	case n == 0:
		r.fail("expected an integer")
		return 0
	case n > 1 && r.b[start] == '0':
		r.fail("leading zero")
		return 0
	}
	if r.i < len(r.b) {
		switch r.b[r.i] {
		case '.', 'e', 'E':
			r.fail("not an integer")
			return 0
		}
	}
	if neg {
		if u > 1<<63 {
			r.fail("integer overflow")
			return 0
		}
		return -int64(u)
	}
	if u > math.MaxInt64 {
		r.fail("integer overflow")
		return 0
	}
	return int64(u)
}

// Bool reads true or false.
func (r *Reader) Bool() bool {
	if r.err != nil {
		return false
	}
	r.ws()
	switch {
	case len(r.b)-r.i >= 4 && string(r.b[r.i:r.i+4]) == "true":
		r.i += 4
		return true
	case len(r.b)-r.i >= 5 && string(r.b[r.i:r.i+5]) == "false":
		r.i += 5
		return false
	}
	r.fail("expected a boolean")
	return false
}

// Raw returns the bytes of the next value (a slice of the input) and skips it.
func (r *Reader) Raw() []byte {
	r.ws()
	start := r.i
	r.Skip()
	if r.err != nil {
		return nil
	}
	return r.b[start:r.i]
}

// Skip consumes any value.
func (r *Reader) Skip() {
	if r.err != nil {
		return
	}
	switch c := r.peek(); {
	case c == '{':
		r.Object(func([]byte) { r.Skip() })
	case c == '[':
		r.Array(r.Skip)
	case c == '"':
		r.rawString()
	case c == 't' || c == 'f':
		r.Bool()
	case c == 'n':
		r.IsNull()
	case c == '-' || (c >= '0' && c <= '9'):
		r.skipNumber()
	default:
		r.fail("unexpected character")
	}
}

// skipNumber consumes a JSON number (a value being skipped may be a float):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *Reader) skipNumber() {
	digits := func() int {
		n := 0
		for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	start := r.i
	if n := digits(); n == 0 || (n > 1 && r.b[start] == '0') {
		r.fail("bad number")
		return
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if digits() == 0 {
			r.fail("bad number")
			return
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			r.fail("bad number")
		}
	}
}
