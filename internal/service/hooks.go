package service

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/metrics"
	"github.com/mvrepair/mvrepair/internal/pipeline"
)

// metricsHook turns the pipeline's reports into metrics.
type metricsHook struct{ m *metrics.Metrics }

func (h metricsHook) OnBatch(r *pipeline.Report) {
	if r.DryRun {
		return // a dry run changes nothing: it moves no metric either
	}
	m := h.m
	m.LocalLog(r.Bytes)
	if r.Role == pipeline.RoleFollower {
		m.FollowerApplied(r.Counts.Applied)
		return
	}
	m.ObserveBatch(r.Size, r.Took)
	for _, e := range r.Events {
		kind := string(e.Kind)
		if kind == "" {
			kind = "unknown"
		}
		m.Event(kind, metrics.Outcome(e.Outcome))
		m.Repairs(e.Repaired)
		for _, s := range e.Skips {
			m.Skip(string(s.Reason))
		}
	}
	for _, d := range r.DeadLetters {
		m.DLQ(string(d.Reason))
	}
	for range r.PartitionMoves {
		m.TablePartitionMove()
	}
}

func (h metricsHook) OnPublish(_, records int, d time.Duration) { h.m.EditLogPublished(records, d) }
func (h metricsHook) OnRetry(op string, _ error, _ int)         { h.m.Retry(op) }
func (h metricsHook) OnOffsetCommit()                           { h.m.Commit() }

// logHook logs what batches did: a summary at INFO every summaryEvery (or
// at the next batch after it), one DEBUG line per edit-log record and per
// skip of an event naming a known table, a WARN line per dead letter and
// per table whose events changed partition.
type logHook struct {
	log zerolog.Logger

	mu   sync.Mutex
	sum  summary
	last time.Time
}

const summaryEvery = 10 * time.Second

type summary struct {
	batches, events, repairs, records, followed int
	outcomes                                    map[pipeline.Outcome]int
	skips, dlq                                  map[string]int
	firstJID, lastJID                           int64
}

func newLogHook(log zerolog.Logger) *logHook {
	return &logHook{log: log, last: time.Now()}
}

func (h *logHook) OnBatch(r *pipeline.Report) {
	for _, d := range r.DeadLetters {
		h.log.Warn().Str("topic", d.Source.Topic).Int("partition", d.Source.Partition).Int64("offset", d.Source.Offset).
			Str("event_id", d.Source.EventID).Str("reason", string(d.Reason)).Str("error", d.Error).Bool("dry_run", r.DryRun).
			Msg("dead-lettered")
	}
	for _, mv := range r.PartitionMoves {
		h.log.Warn().Str("table", mv.Table).Int("from_partition", mv.From).Int("to_partition", mv.To).
			Msg("a table's events arrived on another input partition: their producer does not partition by the Java default partitioner (murmur2 of the key), so per-table order is not guaranteed")
	}
	if h.log.GetLevel() <= zerolog.DebugLevel {
		h.debug(r)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.add(r)
	if time.Since(h.last) >= summaryEvery {
		h.flushLocked()
	}
}

// debug logs one line per edit-log record and per skip.
func (h *logHook) debug(r *pipeline.Report) {
	for _, rec := range r.Records {
		ev := h.log.Debug().Str("role", string(r.Role)).Int64("journal_id", rec.JournalID).Int64("epoch", rec.Epoch).
			Str("op", string(rec.Op)).Str("mv", rec.MV.Key().String()).Str("mv_name", rec.MV.MVName).Bool("dry_run", r.DryRun)
		if rec.BaseTable != nil {
			ev = ev.Int64("table_id", rec.BaseTable.TableID)
		}
		if len(rec.Partitions) > 0 {
			ev = ev.Int("partitions", len(rec.Partitions))
		}
		if len(rec.Causes) > 0 {
			c := rec.Causes[0]
			ev = ev.Str("topic", c.Topic).Int("partition", c.Partition).Int64("offset", c.Offset).Str("event_id", c.EventID)
		}
		ev.Msg(string(rec.Op))
	}
	for _, e := range r.Events {
		for _, s := range e.Skips {
			h.log.Debug().Str("topic", e.Source.Topic).Int("partition", e.Source.Partition).Int64("offset", e.Source.Offset).
				Str("event_id", e.Source.EventID).Str("reason", string(s.Reason)).Str("mv", keyStr(s)).
				Int64("table_id", s.TableID).Str("partition_name", s.Partition).Str("detail", s.Detail).Msg("skipped")
		}
	}
}

func keyStr(s handler.Skip) string {
	if s.MV.DBID == 0 && s.MV.MVID == 0 {
		return ""
	}
	return s.MV.String()
}

func (h *logHook) add(r *pipeline.Report) {
	s := &h.sum
	if s.outcomes == nil {
		s.outcomes, s.skips, s.dlq = map[pipeline.Outcome]int{}, map[string]int{}, map[string]int{}
	}
	if r.Role == pipeline.RoleFollower {
		s.followed += r.Counts.Applied
	} else {
		s.batches++
		s.events += len(r.Events)
	}
	for _, e := range r.Events {
		s.outcomes[e.Outcome]++
		s.repairs += e.Repaired
		for _, k := range e.Skips {
			s.skips[string(k.Reason)]++
		}
	}
	for _, d := range r.DeadLetters {
		s.dlq[string(d.Reason)]++
	}
	if n := len(r.Records); n > 0 {
		s.records += n
		if s.firstJID == 0 {
			s.firstJID = r.Records[0].JournalID
		}
		s.lastJID = r.Records[n-1].JournalID
	}
}

// Flush logs the pending summary if the interval has passed (the service
// calls it while idle, so the last batches of a burst are summarised too).
func (h *logHook) Flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.last) >= summaryEvery {
		h.flushLocked()
	}
}

func (h *logHook) flushLocked() {
	s := h.sum
	h.sum, h.last = summary{}, time.Now()
	if s.events == 0 && s.followed == 0 {
		return
	}
	ev := h.log.Info().Int("batches", s.batches).Int("events", s.events).Int("repairs", s.repairs).Int("records", s.records)
	if s.followed > 0 {
		ev = ev.Int("followed_records", s.followed)
	}
	if s.records > 0 {
		ev = ev.Int64("first_journal_id", s.firstJID).Int64("last_journal_id", s.lastJID)
	}
	for _, o := range slices.Sorted(maps.Keys(s.outcomes)) {
		ev = ev.Int("outcome_"+string(o), s.outcomes[o])
	}
	if len(s.skips) > 0 {
		d := zerolog.Dict()
		for _, k := range slices.Sorted(maps.Keys(s.skips)) {
			d = d.Int(k, s.skips[k])
		}
		ev = ev.Dict("skips", d)
	}
	if len(s.dlq) > 0 {
		d := zerolog.Dict()
		for _, k := range slices.Sorted(maps.Keys(s.dlq)) {
			d = d.Int(k, s.dlq[k])
		}
		ev = ev.Dict("dlq", d)
	}
	ev.Msg("summary")
}
