package editlog

import (
	"errors"
	"fmt"

	"github.com/mvrepair/mvrepair/internal/jsonx"
	"github.com/mvrepair/mvrepair/mvstate"
)

// The snapshot records of docs/design.md §4.9: the state as a compacted
// table, one record per MV keyed like the edit log ("<db_id>:<mv_id>"), a
// tombstone (nil value) for a dropped MV, and checkpoint markers under
// CheckpointKey. The snapshot topic and the local store's snapshot files
// both hold these records: one format, one encoder, one decoder.
const (
	// OpSnapshot is the op of an MV snapshot record.
	OpSnapshot Op = "mv_snapshot"
	// OpCheckpoint is the op of a checkpoint marker.
	OpCheckpoint Op = "checkpoint"
	// CheckpointKey is the key of checkpoint markers.
	CheckpointKey = "__checkpoint"
)

// ErrNotSnapshot is wrapped by DecodeSnapshot's errors.
var ErrNotSnapshot = errors.New("editlog: not a snapshot record")

// MVSnapshot is an MV as of JournalID, the last edit-log record that changed
// it, written by a writer of epoch Epoch.
type MVSnapshot struct {
	JournalID int64
	Epoch     int64
	MV        *mvstate.MV
}

// AppendSnapshot appends the value of an MV snapshot record:
// {"op":"mv_snapshot","journal_id":J,"epoch":E,"mv":{...}}, where mv is the
// MV as mv_upserted records carry it.
func AppendSnapshot(dst []byte, s MVSnapshot) []byte {
	dst = append(dst, `{"op":"mv_snapshot","journal_id":`...)
	dst = jsonx.AppendInt(dst, s.JournalID)
	dst = append(dst, `,"epoch":`...)
	dst = jsonx.AppendInt(dst, s.Epoch)
	dst = append(dst, `,"mv":`...)
	dst = mvstate.AppendMV(dst, s.MV, mvstate.CompactEntries)
	return append(dst, '}')
}

// DecodeSnapshot decodes an MV snapshot record value.
func DecodeSnapshot(b []byte) (MVSnapshot, error) {
	var s MVSnapshot
	var r jsonx.Reader
	r.Reset(b)
	var op string
	var mvRaw []byte // set when the MV needs the generic decoder
	var m *mvstate.MV
	r.Object(func(k []byte) {
		switch string(k) {
		case "op":
			op = r.String()
		case "journal_id":
			s.JournalID = r.Int()
		case "epoch":
			s.Epoch = r.Int()
		case "mv":
			// One pass: the MV is read in place; only a shape the fast
			// reader leaves alone is read again by DecodeMV.
			at := r
			var ok bool
			if m, ok = mvstate.ReadMV(&r); !ok {
				r, m = at, nil
				mvRaw = r.Raw()
			}
		default:
			r.Skip()
		}
	})
	if err := r.End(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrNotSnapshot, err)
	}
	if Op(op) != OpSnapshot || (m == nil && len(mvRaw) == 0) || s.JournalID < 0 {
		return s, fmt.Errorf("%w: op %q, journal_id %d", ErrNotSnapshot, op, s.JournalID)
	}
	if m == nil {
		var err error
		if m, err = mvstate.DecodeMVGeneric(mvRaw); err != nil { // ReadMV already refused it
			return s, fmt.Errorf("%w: mv: %w", ErrNotSnapshot, err)
		}
	}
	if m.DBID <= 0 || m.MVID <= 0 {
		return s, fmt.Errorf("%w: mv.db_id and mv.mv_id must be positive", ErrNotSnapshot)
	}
	s.MV = m
	return s, nil
}

// Checkpoint is a checkpoint marker: every MV's state as of journal id
// JournalID (the edit-log record at offset EditLogOffset, written in epoch
// Epoch) is on the snapshot topic, as a record with a journal id at or
// below JournalID or a newer one, and every MV dropped by then has its
// tombstone. MVs is the number of MVs at JournalID; At the wall clock (ms).
type Checkpoint struct {
	JournalID     int64
	Epoch         int64
	EditLogOffset int64
	MVs           int
	At            int64
}

// AppendCheckpoint appends the marker's value:
// {"op":"checkpoint","journal_id":J,"epoch":E,"edit_log_offset":O,"mvs":N,"at":ms}.
func AppendCheckpoint(dst []byte, c Checkpoint) []byte {
	dst = append(dst, `{"op":"checkpoint","journal_id":`...)
	dst = jsonx.AppendInt(dst, c.JournalID)
	dst = append(dst, `,"epoch":`...)
	dst = jsonx.AppendInt(dst, c.Epoch)
	dst = append(dst, `,"edit_log_offset":`...)
	dst = jsonx.AppendInt(dst, c.EditLogOffset)
	dst = append(dst, `,"mvs":`...)
	dst = jsonx.AppendInt(dst, int64(c.MVs))
	dst = append(dst, `,"at":`...)
	dst = jsonx.AppendInt(dst, c.At)
	return append(dst, '}')
}

// DecodeCheckpoint decodes a checkpoint marker value.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	var c Checkpoint
	var r jsonx.Reader
	r.Reset(b)
	var op string
	r.Object(func(k []byte) {
		switch string(k) {
		case "op":
			op = r.String()
		case "journal_id":
			c.JournalID = r.Int()
		case "epoch":
			c.Epoch = r.Int()
		case "edit_log_offset":
			c.EditLogOffset = r.Int()
		case "mvs":
			c.MVs = int(r.Int())
		case "at":
			c.At = r.Int()
		default:
			r.Skip()
		}
	})
	if err := r.End(); err != nil {
		return c, fmt.Errorf("editlog: checkpoint marker: %w", err)
	}
	if Op(op) != OpCheckpoint || c.JournalID < 0 || c.EditLogOffset < 0 || c.MVs < 0 {
		return c, fmt.Errorf("editlog: not a checkpoint marker (op %q, journal_id %d, edit_log_offset %d)", op, c.JournalID, c.EditLogOffset)
	}
	return c, nil
}
