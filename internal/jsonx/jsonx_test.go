package jsonx

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
)

var stringSeeds = []string{"", "orders", `a"b\c`, "<tag>&", "tab\tnl\ncr\r", "\b\f\x01\x1f", "é ü 中", "\u2028\u2029",
	"bad\xffutf8", "p20240101", "dt=2024-01-01", "\x7f"}

func TestAppendString_matchesEncodingJSON(t *testing.T) {
	for _, s := range stringSeeds {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	})
}

// FuzzReaderString checks that a string the reader accepts decodes as
// encoding/json decodes it, and that every valid string written by
// encoding/json is accepted (invalid UTF-8 becomes U+FFFD there).
func FuzzReaderString(f *testing.F) {
	for _, s := range stringSeeds {
		b, _ := json.Marshal(s)
		f.Add(string(b))
	}
	f.Add(`"\u00e9\ud83d\ude00\/"`)
	f.Add(`"\ud83d"`)
	f.Fuzz(func(t *testing.T, doc string) {
		r := NewReader([]byte(doc))
		got := r.String()
		err := r.End()
		var want string
		jerr := json.Unmarshal([]byte(doc), &want)
		if err == nil {
			if jerr != nil {
				t.Fatalf("reader accepted %q (%q), encoding/json refuses it: %v", doc, got, jerr)
			}
			if got != want {
				t.Fatalf("reader read %q as %q, encoding/json as %q", doc, got, want)
			}
		}
		if !errors.Is(err, ErrSyntax) && err != nil {
			t.Fatalf("error %v does not wrap ErrSyntax", err)
		}
	})
}

func TestReaderInt_boundsAndRefusals(t *testing.T) {
	ok := map[string]int64{"0": 0, "-1": -1, "42": 42, strconv.FormatInt(math.MaxInt64, 10): math.MaxInt64,
		strconv.FormatInt(math.MinInt64, 10): math.MinInt64, " 7 ": 7}
	for in, want := range ok {
		r := NewReader([]byte(in))
		if got := r.Int(); r.End() != nil || got != want {
			t.Errorf("Int(%q) = %d, %v; want %d", in, got, r.Err(), want)
		}
	}
	for _, in := range []string{"", "-", "01", "1.5", "1e3", "9223372036854775808", "-9223372036854775809", "true", `"1"`, "18446744073709551616"} {
		r := NewReader([]byte(in))
		r.Int()
		if r.End() == nil {
			t.Errorf("Int(%q) accepted, want an error", in)
		}
	}
}

// FuzzReaderSkip checks that Skip accepts exactly the documents
// encoding/json considers valid.
func FuzzReaderSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-3,-0,true,false,null,"x"],"b":{}}`, `[]`, `1.`, `-01`, `{"a" 1}`, `[1,]`, `"\u12"`, `1e+`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		r := NewReader([]byte(doc))
		r.Skip()
		got := r.End() == nil
		if want := json.Valid([]byte(doc)); got && !want {
			t.Fatalf("Skip accepted %q, which is not valid JSON", doc)
		}
	})
}

func TestReaderObject_readsMembersInOrderAndSkipsUnknown(t *testing.T) {
	r := NewReader([]byte(` {"id": 3, "name":"p\u00e9", "extra":{"x":[1,{"y":null}]}, "ok":true} `))
	var id int64
	var name string
	var okv bool
	var keys []string
	r.Object(func(k []byte) {
		keys = append(keys, string(k))
		switch string(k) {
		case "id":
			id = r.Int()
		case "name":
			name = r.String()
		case "ok":
			okv = r.Bool()
		default:
			r.Skip()
		}
	})
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if id != 3 || name != "pé" || !okv || len(keys) != 4 {
		t.Fatalf("read id=%d name=%q ok=%v keys=%v", id, name, okv, keys)
	}
}

func TestReader_errorsStickAndWrapErrSyntax(t *testing.T) {
	r := NewReader([]byte(`{"a":1.5,"b":2}`))
	var b int64
	r.Object(func(k []byte) {
		if string(k) == "a" {
			r.Int()
			return
		}
		b = r.Int()
	})
	if err := r.End(); !errors.Is(err, ErrSyntax) || b != 0 {
		t.Fatalf("End() = %v, b = %d; want ErrSyntax and nothing read after the error", err, b)
	}
}

func TestReaderMembers_countsWithoutConsuming(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{`{}`, 0},
		{` {"a":1}`, 1},
		{`{"a":{"x":[1,2,{"y":3}]},"b":"s\"}","c":null}`, 3},
		{`[1,2]`, 0},
		{`{"a":1,`, 0},
		{`7`, 0},
	} {
		r := NewReader([]byte(c.in))
		if got := r.Members(); got != c.want {
			t.Errorf("Members(%s) = %d, want %d", c.in, got, c.want)
		}
		if r.Err() != nil {
			t.Errorf("Members(%s) left an error on the reader: %v", c.in, r.Err())
		}
		// The reader is where it was: the whole value still reads.
		r.Skip()
		if c.want > 0 && r.End() != nil {
			t.Errorf("after Members(%s) the value no longer reads: %v", c.in, r.End())
		}
	}
}
