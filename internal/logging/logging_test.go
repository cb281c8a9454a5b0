package logging_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/logging"
)

// lines decodes each JSON line of buf.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestNew_json_writes_one_object_per_line_with_time_level_and_message(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "info", logging.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC().Truncate(time.Millisecond)
	log.Info().Str("k", "v").Msg("first")
	log.Warn().Msg("second")
	after := time.Now().UTC()

	got := lines(t, &buf)
	if len(got) != 2 {
		t.Fatalf("got %d lines, want 2: %s", len(got), buf.String())
	}
	if got[0]["level"] != "info" || got[0]["message"] != "first" || got[0]["k"] != "v" || got[1]["level"] != "warn" {
		t.Errorf("lines = %v", got)
	}
	ts, err := time.Parse(logging.TimeLayout, got[0]["time"].(string))
	if err != nil {
		t.Fatalf("time %q does not parse with TimeLayout: %v", got[0]["time"], err)
	}
	if ts.Before(before) || ts.After(after) {
		t.Errorf("time %v is outside [%v, %v]", ts, before, after)
	}
	if s := got[0]["time"].(string); !strings.HasSuffix(s, "Z") || len(s) != len("2024-11-23T22:13:20.123Z") {
		t.Errorf("time %q is not UTC with milliseconds", s)
	}
}

func TestNew_drops_lines_below_the_level(t *testing.T) {
	for _, tt := range []struct {
		level string
		want  int // of debug, info, warn, error
	}{{"debug", 4}, {"info", 3}, {"WARN", 2}, {"error", 1}} {
		t.Run(tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := logging.New(&buf, tt.level, logging.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug().Msg("d")
			log.Info().Msg("i")
			log.Warn().Msg("w")
			log.Error().Msg("e")
			if got := len(lines(t, &buf)); got != tt.want {
				t.Errorf("level %s wrote %d lines, want %d", tt.level, got, tt.want)
			}
		})
	}
}

func TestNew_console_writes_readable_uncoloured_lines(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "debug", logging.FormatConsole)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str(logging.FieldTopic, "mv-catalog").Msg("repaired")
	out := buf.String()
	for _, want := range []string{"INF", "repaired", "topic=mv-catalog"} {
		if !strings.Contains(out, want) {
			t.Errorf("console line %q lacks %q", out, want)
		}
	}
	if strings.HasPrefix(out, "{") || strings.Contains(out, "\x1b[") {
		t.Errorf("console line is JSON or coloured: %q", out)
	}
}

func TestNew_rejects_unknown_level_and_format(t *testing.T) {
	if _, err := logging.New(&bytes.Buffer{}, "verbose", logging.FormatJSON); err == nil || !strings.Contains(err.Error(), `"verbose"`) {
		t.Errorf("level verbose: err = %v", err)
	}
	if _, err := logging.New(&bytes.Buffer{}, "info", "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("format xml: err = %v", err)
	}
}

func TestRecord_adds_topic_partition_offset_and_event_id(t *testing.T) {
	var buf bytes.Buffer
	log, _ := logging.New(&buf, "info", logging.FormatJSON)
	log.Warn().EmbedObject(logging.Record{Topic: "partition-version-changed", Partition: 3, Offset: 42, EventID: "E1"}).
		Str(logging.FieldReason, "bad_json").Msg("dead-lettered")
	log.Warn().EmbedObject(logging.Record{Topic: "t", Partition: 0, Offset: 0}).Msg("no event id")

	got := lines(t, &buf)
	want := map[string]any{"topic": "partition-version-changed", "partition": 3.0, "offset": 42.0, "event_id": "E1", "reason": "bad_json"}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("field %s = %v, want %v", k, got[0][k], v)
		}
	}
	if _, ok := got[1][logging.FieldEventID]; ok {
		t.Errorf("empty event id was logged: %v", got[1])
	}
	if got[1][logging.FieldPartition] != 0.0 || got[1][logging.FieldOffset] != 0.0 {
		t.Errorf("zero partition/offset omitted: %v", got[1])
	}
}

func TestMV_adds_db_id_mv_id_and_name(t *testing.T) {
	var buf bytes.Buffer
	log, _ := logging.New(&buf, "info", logging.FormatJSON)
	log.Info().EmbedObject(logging.MV{DBID: 10001, MVID: 50001, Name: "mv_orders_daily"}).Int(logging.FieldPartitions, 2).Msg("repaired")
	log.Info().EmbedObject(logging.MV{DBID: 1, MVID: 2}).Msg("no name")
	got := lines(t, &buf)
	if got[0]["db_id"] != 10001.0 || got[0]["mv_id"] != 50001.0 || got[0]["mv_name"] != "mv_orders_daily" || got[0]["partitions"] != 2.0 {
		t.Errorf("line = %v", got[0])
	}
	if _, ok := got[1][logging.FieldMVName]; ok {
		t.Errorf("empty mv name was logged: %v", got[1])
	}
}

func TestNew_child_loggers_keep_the_timestamp(t *testing.T) {
	var buf bytes.Buffer
	log, _ := logging.New(&buf, "info", logging.FormatJSON)
	child := log.With().Str(logging.FieldComponent, "consumer").Logger()
	child.Info().Msg("x")
	got := lines(t, &buf)
	if got[0]["time"] == nil || got[0]["component"] != "consumer" {
		t.Errorf("line = %v", got[0])
	}
}
