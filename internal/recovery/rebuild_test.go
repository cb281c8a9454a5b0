package recovery_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// memLog is an in-memory one-partition edit-log topic.
type memLog struct{ values [][]byte }

type memTail struct {
	log *memLog
	pos int
}

func (t *memTail) Fetch(ctx context.Context) (kafkaio.Message, error) {
	if t.pos >= len(t.log.values) {
		<-ctx.Done()
		return kafkaio.Message{}, ctx.Err()
	}
	m := kafkaio.Message{Topic: "log", Offset: int64(t.pos), Value: t.log.values[t.pos]}
	t.pos++
	return m, nil
}

func (t *memTail) TryFetch() (kafkaio.Message, bool) { return kafkaio.Message{}, false }

func (t *memTail) Close() error { return nil }

func (l *memLog) source() recovery.Source {
	return recovery.Source{Topic: "log",
		Open: func(ctx context.Context, start map[int]int64) (pipeline.Tail, error) {
			return &memTail{log: l, pos: int(start[0])}, nil
		},
		HWM: func(context.Context) (map[int]int64, error) { return map[int]int64{0: int64(len(l.values))}, nil }}
}

func (l *memLog) add(t *testing.T, recs ...*editlog.Record) {
	t.Helper()
	for _, r := range recs {
		b, err := editlog.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		l.values = append(l.values, b)
	}
}

func upsert(j, e, mvID int64) *editlog.Record {
	return &editlog.Record{JournalID: j, Epoch: e, Op: editlog.OpUpserted, At: 1, MV: editlog.MVRef{DBID: 1, MVID: mvID},
		Definition: &mvstate.MV{DBID: 1, MVID: mvID, DBName: "d", MVName: "m", VersionMap: mvstate.VersionMap{7: {
			"p": mvstate.NewBasePartitionInfo(1, j, j)}}}}
}

func drop(j, e, mvID int64) *editlog.Record {
	return &editlog.Record{JournalID: j, Epoch: e, Op: editlog.OpDropped, At: 1, MV: editlog.MVRef{DBID: 1, MVID: mvID}}
}

func TestRebuild_appliesTheJournalAndReportsDuplicates(t *testing.T) {
	l := &memLog{}
	l.add(t, upsert(1, 1, 1), upsert(2, 1, 2), upsert(2, 1, 2), drop(3, 1, 1))
	st := store.NewMemory()
	rep, err := recovery.Rebuild(context.Background(), st, l.source(), recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 4 || rep.Applied != 3 || rep.Duplicates != 1 || rep.JournalID != 3 || rep.MVs != 1 {
		t.Fatalf("report %+v", rep)
	}
	if st.State().AppliedOffset("log", 0) != 4 {
		t.Fatalf("edit-log position %d, want 4", st.State().AppliedOffset("log", 0))
	}
}

func TestRebuild_dropsAndReportsRecordsSupersededByANewerEpoch(t *testing.T) {
	l := &memLog{}
	// Epoch 1 wrote 1..2; epoch 2 started at 3 (it had seen 1..2); a zombie
	// of epoch 1 published 3 late, after epoch 2's first record.
	l.add(t, upsert(1, 1, 1), upsert(2, 1, 2), upsert(3, 2, 3), drop(3, 1, 1), upsert(4, 2, 4))
	st := store.NewMemory()
	rep, err := recovery.Rebuild(context.Background(), st, l.source(), recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fenced) != 1 || rep.Fenced[0] != (recovery.Fenced{JournalID: 3, Epoch: 1, Offset: 3}) {
		t.Fatalf("fenced %+v", rep.Fenced)
	}
	if st.State().Get(mvstate.MVKey{DBID: 1, MVID: 1}) == nil {
		t.Fatal("the zombie's drop was applied")
	}
	if rep.JournalID != 4 || rep.Epoch != 2 || rep.MVs != 4 {
		t.Fatalf("report %+v", rep)
	}
}

func TestRebuild_failsOnAGapUnlessAllowed(t *testing.T) {
	l := &memLog{}
	l.add(t, upsert(1, 1, 1), upsert(2, 1, 2), upsert(5, 1, 5))
	_, err := recovery.Rebuild(context.Background(), store.NewMemory(), l.source(), recovery.Options{})
	var gap *recovery.GapError
	if !errors.As(err, &gap) || gap.After != 2 || gap.Next != 5 {
		t.Fatalf("want a gap 3..4, got %v", err)
	}
	st := store.NewMemory()
	rep, err := recovery.Rebuild(context.Background(), st, l.source(), recovery.Options{AllowGaps: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 1 || rep.JournalID != 2 {
		t.Fatalf("report %+v", rep)
	}
}

func TestRebuild_reportsUndecodableRecords(t *testing.T) {
	l := &memLog{}
	l.add(t, upsert(1, 1, 1))
	l.values = append(l.values, []byte(`{"not":"a record"}`))
	l.add(t, upsert(2, 1, 2))
	rep, err := recovery.Rebuild(context.Background(), store.NewMemory(), l.source(), recovery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Undecodable) != 1 || rep.Undecodable[0] != 1 || rep.Applied != 2 {
		t.Fatalf("report %+v", rep)
	}
}

func TestRebuild_refusesANonEmptyStore(t *testing.T) {
	st := store.NewMemory()
	l := &memLog{}
	l.add(t, upsert(1, 1, 1))
	if _, err := recovery.Rebuild(context.Background(), st, l.source(), recovery.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := recovery.Rebuild(context.Background(), st, l.source(), recovery.Options{}); !errors.Is(err, recovery.ErrNotEmpty) {
		t.Fatalf("want ErrNotEmpty, got %v", err)
	}
}

func TestRebuild_ofAnEmptyLogLeavesAnEmptyStore(t *testing.T) {
	st := store.NewMemory()
	rep, err := recovery.Rebuild(context.Background(), st, (&memLog{}).source(), recovery.Options{})
	if err != nil || rep.Records != 0 || st.State().Len() != 0 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}
