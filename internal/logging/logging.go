// Package logging builds the service's zerolog loggers and names the fields
// its log lines share (docs/design.md §6): JSON by default, or console output for
// humans; one INFO line per repaired MV; WARN for skipped tables and
// dead-lettered records, each carrying the input record's topic, partition,
// offset and event_id (see [Record]).
//
// The package never touches zerolog's global settings: every option lives on
// the returned Logger.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// The log formats accepted by [New].
const (
	// FormatJSON writes one JSON object per line.
	FormatJSON = "json"
	// FormatConsole writes human-readable lines, coloured on a terminal.
	FormatConsole = "console"
)

// TimeLayout is the layout of the "time" field: RFC 3339 in UTC with
// milliseconds, e.g. "2024-11-23T22:13:20.123Z".
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Field names shared by every log line that mentions the thing they name.
const (
	// FieldTopic is the Kafka topic of the record being handled.
	FieldTopic = "topic"
	// FieldPartition is the Kafka partition of the record being handled.
	FieldPartition = "partition"
	// FieldOffset is the Kafka offset of the record being handled.
	FieldOffset = "offset"
	// FieldEventID is the event_id of the event being handled.
	FieldEventID = "event_id"
	// FieldKind is an event's or an edit-log record's kind.
	FieldKind = "kind"
	// FieldDBID is a database id.
	FieldDBID = "db_id"
	// FieldMVID is a materialized view id.
	FieldMVID = "mv_id"
	// FieldMVName is a materialized view name.
	FieldMVName = "mv_name"
	// FieldTableID is a base table id.
	FieldTableID = "table_id"
	// FieldTableName is a base table name.
	FieldTableName = "table_name"
	// FieldPartitions is a count of partition entries (e.g. repaired).
	FieldPartitions = "partitions"
	// FieldReason is why something was skipped or dead-lettered.
	FieldReason = "reason"
	// FieldJournalID is an edit-log record's journal id.
	FieldJournalID = "journal_id"
	// FieldEpoch is the writer epoch (group generation).
	FieldEpoch = "epoch"
	// FieldInstance is this instance's name in the consumer group.
	FieldInstance = "instance"
	// FieldComponent names the part of the service that logs.
	FieldComponent = "component"
)

// New returns a logger writing to w at the given minimum level (debug, info,
// warn or error) in the given format ([FormatJSON] or [FormatConsole]).
// Every line carries a "time" field in [TimeLayout].
func New(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	switch format {
	case FormatJSON:
	case FormatConsole:
		w = zerolog.ConsoleWriter{
			Out:        w,
			NoColor:    !isTerminal(w),
			TimeFormat: "15:04:05.000",
		}
	default:
		return zerolog.Nop(), fmt.Errorf("logging: unknown format %q (want %s or %s)", format, FormatJSON, FormatConsole)
	}
	return zerolog.New(w).Level(lvl).Hook(timestampHook{}), nil
}

// parseLevel accepts the four levels the configuration allows.
func parseLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info":
		return zerolog.InfoLevel, nil
	case "warn":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	default:
		return zerolog.NoLevel, fmt.Errorf("logging: unknown level %q (want debug, info, warn or error)", s)
	}
}

// timestampHook stamps each line with the wall-clock time in TimeLayout
// (zerolog's own Timestamp would use the global TimeFieldFormat, whose
// default has no sub-second digits).
type timestampHook struct{}

// Run implements zerolog.Hook.
func (timestampHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(TimeLayout))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Record locates the input record a log line is about. Embed it with
// Event.EmbedObject or Context.EmbedObject to add the topic, partition,
// offset and event_id fields:
//
//	log.Warn().EmbedObject(logging.Record{Topic: t, Partition: p, Offset: o, EventID: id}).
//		Str(logging.FieldReason, reason).Msg("dead-lettered")
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	// EventID is omitted from the line when empty (a record too malformed
	// to carry one).
	EventID string
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler.
func (r Record) MarshalZerologObject(e *zerolog.Event) {
	e.Str(FieldTopic, r.Topic).Int(FieldPartition, r.Partition).Int64(FieldOffset, r.Offset)
	if r.EventID != "" {
		e.Str(FieldEventID, r.EventID)
	}
}

// MV identifies the materialized view a log line is about. Embed it like
// [Record] to add the db_id, mv_id and (when known) mv_name fields.
type MV struct {
	DBID int64
	MVID int64
	Name string
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler.
func (m MV) MarshalZerologObject(e *zerolog.Event) {
	e.Int64(FieldDBID, m.DBID).Int64(FieldMVID, m.MVID)
	if m.Name != "" {
		e.Str(FieldMVName, m.Name)
	}
}
