package config

import (
	"fmt"
	"io"
)

// Redacted is what every rendering of a non-empty [Secret] shows instead of
// its value.
const Redacted = "***"

// Secret is a configuration value that must never be shown: in logs, error
// messages, metrics, `--help` or any dump of a [Config]. Every way Go prints
// or serialises a value is redacted: fmt (all verbs, including %v, %+v, %#v,
// %s, %q and %x), encoding.TextMarshaler (YAML, zerolog, text dumps) and
// json.Marshaler. A non-empty Secret renders as [Redacted], an empty one as
// the empty string, so a dump still shows whether it is set.
//
// Only [Secret.Reveal] returns the value: call it where the value is handed
// to the Kafka client, nowhere else.
//
// A JSON or text round trip therefore loses the value (it reads back as
// "***"). Code that passes a Config to another process as JSON must pass the
// secret separately, e.g. in [PasswordEnv].
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is not empty.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) redacted() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// String implements fmt.Stringer: [Redacted], or "" when empty.
func (s Secret) String() string { return s.redacted() }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.redacted()) }

// Format implements fmt.Formatter, so that no verb (%x, %q, %d ...) prints
// the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			_, _ = io.WriteString(f, s.GoString())
			return
		}
		_, _ = io.WriteString(f, s.redacted())
	case 'q':
		_, _ = fmt.Fprintf(f, "%q", s.redacted())
	default:
		_, _ = io.WriteString(f, s.redacted())
	}
}

// MarshalText implements encoding.TextMarshaler (YAML, zerolog, flag
// defaults).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte(`""`), nil
	}
	return []byte(`"` + Redacted + `"`), nil
}
