package loadgen

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/pipeline"
)

func TestWorkload_chainsRepairEveryEvent(t *testing.T) {
	w := newWorkload(3, 7, 4, 3)
	if len(w.tables) != 3 {
		t.Fatalf("tables = %v", w.tables)
	}
	// Event k continues its chain: last_version is what the previous event of
	// the same (table, partition) set.
	last := map[[2]int64]int64{}
	for k := int64(0); k < 100; k++ {
		e := w.event(k, "x")
		p := e.Partitions[0]
		key := [2]int64{e.TableID, p.PartitionID}
		want := last[key]
		if want == 0 {
			want = baseVersion
		}
		if p.LastVersion != want || p.NewVersion != want+1 {
			t.Fatalf("event %d: %d→%d, want %d→%d", k, p.LastVersion, p.NewVersion, want, want+1)
		}
		last[key] = p.NewVersion
	}
	for t2 := 0; t2 < 3; t2++ {
		for p := 0; p < 4; p++ {
			want := last[[2]int64{w.tables[t2], partID(p)}]
			if got := w.finalVersion(t2, p, 100); got != want {
				t.Errorf("finalVersion(%d,%d) = %d, want %d", t2, p, got, want)
			}
		}
	}
	if got := w.expectedRepairs(0, 3); got != 3+2+2 {
		t.Errorf("expectedRepairs = %d, want 7 (MVs 0,3,6 read table 0; 1,4 table 1; 2,5 table 2)", got)
	}
}

func TestWorkload_eventsCoverEveryTableAndPartition(t *testing.T) {
	w := newWorkload(5, 5, 3, 2)
	seen := map[[2]int64]bool{}
	for k := int64(0); k < 15; k++ {
		e := w.event(k, "x")
		seen[[2]int64{e.TableID, e.Partitions[0].PartitionID}] = true
	}
	if len(seen) != 15 {
		t.Errorf("15 events touch %d (table, partition) pairs, want all 15", len(seen))
	}
}

// Kafka's UtilsTest.testMurmur2 vectors.
func TestMurmur2_isKafkasHash(t *testing.T) {
	for _, c := range []struct {
		key  string
		hash int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(c.key))); got != c.hash {
			t.Errorf("murmur2(%q) = %d, want %d", c.key, got, c.hash)
		}
	}
}

// The producer partitions like the Java client; franz-go implements the
// same partitioner.
func TestKeyPartition_matchesTheJavaClientsPartitioner(t *testing.T) {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 2, 6, 7, 50} {
		for id := int64(20001); id < 22001; id++ {
			key := tableKey(loadDBID, id)
			if got, want := keyPartition(key, n), tp.Partition(&kgo.Record{Key: []byte(key)}, n); got != want {
				t.Fatalf("key %q over %d partitions: %d, Java partitioner %d", key, n, got, want)
			}
		}
	}
}

func TestSpreadTableIDs_giveEveryPartitionItsShare(t *testing.T) {
	for _, c := range []struct{ tables, partitions int }{{12, 6}, {500, 6}, {7, 3}, {3, 1}} {
		ids := spreadTableIDs(loadDBID, c.tables, c.partitions)
		count := make([]int, c.partitions)
		seen := map[int64]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%d tables over %d partitions: id %d twice", c.tables, c.partitions, id)
			}
			seen[id] = true
			count[keyPartition(tableKey(loadDBID, id), c.partitions)]++
		}
		for p, n := range count {
			if lo := c.tables / c.partitions; n < lo || n > lo+1 {
				t.Errorf("%d tables over %d partitions: partition %d has %d (%v)", c.tables, c.partitions, p, n, count)
			}
		}
	}
}

func TestSelectCases_byNameInOrderOnce(t *testing.T) {
	all, err := SelectCases(nil)
	if err != nil || len(all) != 4 || all[0].Name != CaseSpread {
		t.Fatalf("SelectCases(nil) = %v, %v; want the 4 default cases, spread first", all, err)
	}
	got, err := SelectCases([]string{"easy", "spread", "easy"})
	if err != nil || len(got) != 2 || got[0].Name != "easy" || got[1].Name != "spread" {
		t.Errorf("SelectCases(easy, spread, easy) = %v, %v", got, err)
	}
	if _, err := SelectCases([]string{"sprad"}); !errors.Is(err, ErrUnknownCase) || !strings.Contains(err.Error(), "one-partition") {
		t.Errorf("unknown case: %v, want ErrUnknownCase listing the cases", err)
	}
}

func TestShape_overridesOnlyWhatIsSet(t *testing.T) {
	c := DefaultCases()[0]
	if got := (Shape{}).Apply(c); got.Title != c.Title || got.MVs != 500 {
		t.Errorf("empty shape changed the case: %+v", got)
	}
	got := Shape{MVs: 100, TopicPartitions: 12}.Apply(c)
	if got.MVs != 100 || got.Tables != 100 || got.Partitions != 50 || got.TopicPartitions != 12 || !strings.Contains(got.Title, "changed") {
		t.Errorf("Apply = %+v, want 100 MVs on 100 tables (capped), 50 partitions, 12 input partitions", got)
	}
}

func TestOptions_quickKeepsTheShapesButFewerPartitions(t *testing.T) {
	o := Options{Quick: true, Events: 7}.withDefaults()
	if o.Events != 7 || o.Rounds != QuickRounds || o.Rate != QuickRate || o.Duration != QuickDuration || len(o.Cases) != 4 {
		t.Errorf("quick defaults: %+v", o)
	}
	for i, c := range o.Cases {
		d := DefaultCases()[i]
		if c.MVs != d.MVs || c.Tables != d.Tables || c.TopicPartitions != d.TopicPartitions || c.Partitions != QuickPartitions {
			t.Errorf("quick %s = %+v, want the shape of %+v with %d partitions", c.Name, c, d, QuickPartitions)
		}
	}
	if d := (Options{}).withDefaults(); d.Events != DefaultEvents || d.Rounds != DefaultRounds || d.Cases[0].Partitions != 50 {
		t.Errorf("defaults: %d events, %d partitions", d.Events, d.Cases[0].Partitions)
	}
}

func TestRun_refusesAnImpossibleCase(t *testing.T) {
	_, err := Run(t.Context(), Options{Cases: []Case{{Name: "x", MVs: 1, Tables: 1, Partitions: 0, TopicPartitions: 1}}})
	if !errors.Is(err, ErrOptions) {
		t.Errorf("Run = %v, want ErrOptions", err)
	}
}

func TestPercentiles_nearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	var p Percentiles
	p.fill(ds)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 || p.Mean != 50.5 {
		t.Errorf("percentiles of 1..100 ms = %+v", p)
	}
	var empty Percentiles
	empty.fill(nil)
	if empty != (Percentiles{}) {
		t.Errorf("empty = %+v", empty)
	}
}

func TestTargets_followTheCasesGoals(t *testing.T) {
	c := CaseReport{Case: DefaultCases()[0],
		Repair:             Throughput{EventsPerSec: 90, Verified: true},
		PassThrough:        Throughput{EventsPerSec: 100},
		RepairLatency:      Latency{Rate: 5000, Measured: 10, P99Ms: 30},
		PassThroughLatency: Latency{Rate: 5000, Measured: 10, P99Ms: 20},
		RepairBatches:      BatchFigures{Batches: 1, TookMsPer1000Events: 3, LogBytesRatio: 2.5, RecordBytes: 10}}
	c.finish(Options{})
	got := map[string]bool{}
	for _, tg := range c.Targets {
		got[tg.Name] = tg.Pass
	}
	want := map[string]bool{"repair / pass-through events/s": true, "repair p99 / pass-through p99": false,
		"process + local commit per 1000 events": true, "local log bytes / edit-log record bytes": false}
	if len(got) != len(want) {
		t.Fatalf("targets = %+v", c.Targets)
	}
	for name, pass := range want {
		if got[name] != pass {
			t.Errorf("%s: pass=%t, want %t (%+v)", name, got[name], pass, c.Targets)
		}
	}
	// An unverified run never meets the throughput goal.
	c.Repair.Verified = false
	c.finish(Options{})
	if c.Targets[0].Pass {
		t.Errorf("unverified run passed %+v", c.Targets[0])
	}
}

func TestRecorder_figuresFromReports(t *testing.T) {
	h := newRecorder()
	rec := &editlog.Record{JournalID: 7, Epoch: 1, Op: editlog.OpVersionRepaired, At: 1}
	size := int64(len(editlog.AppendRecord(nil, rec)))
	h.OnBatch(&pipeline.Report{Role: pipeline.RoleFollower, Size: 99}) // not the writer: ignored
	m0 := h.mark()
	for i := 0; i < 4; i++ {
		h.OnBatch(&pipeline.Report{Role: pipeline.RoleWriter, Size: 1000, Took: time.Duration(i+1) * time.Millisecond,
			Bytes: 3 * size, RecordBytes: 2 * size, Records: []*editlog.Record{rec, rec},
			Events: []pipeline.EventResult{{Outcome: pipeline.OutcomeApplied, Repaired: 2}}})
		h.OnPublish(2, 2, time.Millisecond)
		h.OnOffsetCommit()
	}
	h.OnRetry("publish", errors.New("broker down"), 1)
	ph := h.between(m0, h.mark())
	f := ph.figures()
	if f.Batches != 4 || f.Events != 4000 || f.Records != 8 || f.RecordsPerBatch != 2 || f.Repaired != 8 {
		t.Errorf("counts: %+v", f)
	}
	if f.TookMs.Mean != 2.5 || f.TookMs.Max != 4 || f.TookMsPer1000Events != 2.5 || f.PublishMsPerBatch != 1 {
		t.Errorf("times: %+v", f)
	}
	if f.RecordBytes != 8*size || f.LogBytes != 12*size || f.LogBytesRatio != 1.5 {
		t.Errorf("bytes: record %d (want %d), log %d, ratio %.2f (want 1.5)", f.RecordBytes, 8*size, f.LogBytes, f.LogBytesRatio)
	}
	if f.OffsetCommits != 4 || f.Retries != 1 {
		t.Errorf("commits %d retries %d", f.OffsetCommits, f.Retries)
	}
	if n := ph.retryNote(); !strings.Contains(n, "publish×1") || !strings.Contains(n, "broker down") {
		t.Errorf("retry note = %q", n)
	}
	// Phases add up: the batches and counters of both.
	var all phase
	all.add(ph)
	all.add(ph)
	if g := all.figures(); g.Batches != 8 || g.Events != 8000 || g.Retries != 2 || g.TookMs.Mean != 2.5 || g.LogBytesRatio != 1.5 {
		t.Errorf("two phases added: %+v", g)
	}
	if n := all.retryNote(); !strings.Contains(n, "publish×2") {
		t.Errorf("retry note of two phases = %q", n)
	}
	if h.eventCount() != 4000 {
		t.Errorf("eventCount = %d, want 4000 (writer batches only)", h.eventCount())
	}
}

func TestAggregate_mediansRatesAndSumsCounts(t *testing.T) {
	rounds := []Round{
		{Repair: Throughput{Events: 100, FirstBatchEvents: 10, EventsPerSec: 50, CPUSeconds: 1, Batches: 2, Verified: true}},
		{Repair: Throughput{Events: 100, FirstBatchEvents: 10, EventsPerSec: 90, CPUSeconds: 1, Batches: 2, Verified: true}},
		{Repair: Throughput{Events: 100, FirstBatchEvents: 10, EventsPerSec: 70, CPUSeconds: 1, Batches: 2, Verified: false, VerifyError: "bad"}},
	}
	got := aggregate(rounds, func(rd Round) Throughput { return rd.Repair })
	if got.EventsPerSec != 70 || got.MinEventsPerSec != 50 || got.MaxEventsPerSec != 90 || got.Events != 300 || got.Batches != 6 ||
		got.AvgBatch != 50 || got.CPUMicrosPerEvent != 3e6/270 || got.Verified || got.VerifyError != "bad" {
		t.Errorf("aggregate = %+v", got)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 1..4 = %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median of nothing = %v", m)
	}
}

func TestFinish_ratioIsTheMedianOfTheRounds(t *testing.T) {
	c := CaseReport{Case: DefaultCases()[3], Rounds: []Round{{Ratio: 0.9}, {Ratio: 0.5}, {Ratio: 0.7}}}
	c.finish(Options{})
	if c.Ratio != 0.7 || c.RatioMin != 0.5 || c.RatioMax != 0.9 {
		t.Errorf("ratio %v (%v-%v), want 0.7 (0.5-0.9)", c.Ratio, c.RatioMin, c.RatioMax)
	}
}

func TestProfilePath_namesTheCase(t *testing.T) {
	for in, want := range map[string]string{"cpu.prof": "cpu-spread.prof", "/tmp/x": "/tmp/x-spread", "a.b/cpu.pprof": "a.b/cpu-spread.pprof"} {
		if got := profilePath(in, "spread"); got != want {
			t.Errorf("profilePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteTable_showsEveryCaseAndTheSummary(t *testing.T) {
	ok := CaseReport{Case: DefaultCases()[0], Repair: Throughput{Events: 10, EventsPerSec: 5, Verified: true},
		PassThrough: Throughput{Events: 10, EventsPerSec: 10}, RepairBatches: BatchFigures{Batches: 1, AvgEvents: 10},
		Rounds: []Round{{Repair: Throughput{Events: 10, EventsPerSec: 5}, PassThrough: Throughput{Events: 10, EventsPerSec: 10}, Ratio: 0.5, RepairFirst: true}}}
	ok.finish(Options{})
	failed := CaseReport{Case: DefaultCases()[2], Error: "setup: embedded broker: boom"}
	rep := &Report{Cases: []CaseReport{ok, failed}}
	var b bytes.Buffer
	rep.WriteTable(&b)
	out := b.String()
	for _, want := range []string{"== spread", "== large", "FAILED: setup: embedded broker: boom", "Summary (every case",
		"ratio repair / pass-through: 0.50", "round 1 (repair first): 5 / 10 = 0.50", "missed  spread: repair / pass-through events/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
