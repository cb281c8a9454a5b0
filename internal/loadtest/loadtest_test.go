package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLoad_smallRunReportsEveryFigure runs the whole benchmark at a tiny
// scale on the embedded broker and checks that every figure is there and
// consistent (not that any target is met).
func TestLoad_smallRunReportsEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and the service three times")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Events: 3000, Rate: 400, Duration: time.Second, MVs: 6, Tables: 3, Partitions: 7,
		TopicPartitions: 3, Batch: 200, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Notes) > 0 {
		t.Errorf("notes: %q", rep.Notes)
	}
	r := rep.Repair
	if !r.Verified || r.Repairs != 3000*2 || r.Skips != 0 || r.DLQ != 0 {
		t.Errorf("repair run: verified=%t repairs=%d skips=%d dlq=%d, want 6000 repairs", r.Verified, r.Repairs, r.Skips, r.DLQ)
	}
	for name, tp := range map[string]Throughput{"repair": rep.Repair, "pass-through": rep.PassThrough} {
		if tp.EventsPerSec <= 0 || tp.FromStartPerSec <= 0 || tp.FromStartPerSec > tp.EventsPerSec*1.5 ||
			tp.Batches <= 0 || tp.AvgBatch <= 0 || tp.AvgBatch > 200 || tp.Records <= 0 || tp.Seconds <= 0 {
			t.Errorf("%s throughput incomplete: %+v", name, tp)
		}
	}
	if rep.Ratio <= 0 {
		t.Errorf("ratio = %v", rep.Ratio)
	}
	for name, l := range map[string]Latency{"repair": rep.RepairLatency, "pass-through": rep.PassThroughLatency} {
		if l.Produced != 400 || l.Measured != 400 || l.Missing != 0 {
			t.Errorf("%s latency: produced %d measured %d missing %d, want 400/400/0", name, l.Produced, l.Measured, l.Missing)
		}
		if !(0 < l.P50Ms && l.P50Ms <= l.P90Ms && l.P90Ms <= l.P99Ms && l.P99Ms <= l.MaxMs) {
			t.Errorf("%s latency percentiles out of order: %+v", name, l)
		}
	}
	if len(rep.Targets) != 3 {
		t.Errorf("targets = %+v", rep.Targets)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	for _, want := range []string{"repair (consume→repair→journal→commit)", "pass-through (consume→produce→commit)",
		"ratio repair / pass-through", "p99", "Targets", "machine:"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
}

func TestWorkload_chainsRepairEveryEvent(t *testing.T) {
	w := newWorkload(3, 7, 4, 3)
	if len(w.tables) != 3 {
		t.Fatalf("tables = %v", w.tables)
	}
	// The tables' keys land on distinct partitions.
	seen := map[int]bool{}
	for _, id := range w.tables {
		seen[keyPartition(tableKey(loadDBID, id), 3)] = true
	}
	if len(seen) != 3 {
		t.Errorf("tables %v map to partitions %v", w.tables, seen)
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
		t.Errorf("expectedRepairs = %d", got)
	}
}

var (
	fullEvents   = flag.Int("load.events", DefaultEvents, "TestLoadFull: N")
	fullRate     = flag.Int("load.rate", DefaultRate, "TestLoadFull: R")
	fullDuration = flag.Duration("load.duration", DefaultDuration, "TestLoadFull: latency phase length")
	fullMVs      = flag.Int("load.mvs", DefaultMVs, "TestLoadFull: M")
	fullBatch    = flag.Int("load.batch", 0, "TestLoadFull: batch.max_events (0: config default)")
	fullProfile  = flag.String("load.cpuprofile", "", "TestLoadFull: CPU profile of the repair throughput phase")
	fullJSON     = flag.String("load.json", "", "TestLoadFull: write the JSON report here")
)

// TestLoadFull runs the benchmark at full size when MVREPAIR_LOAD=1:
//
//	MVREPAIR_LOAD=1 go test ./internal/loadtest -run TestLoadFull -v -timeout 30m -args -load.events=200000
func TestLoadFull(t *testing.T) {
	if os.Getenv("MVREPAIR_LOAD") != "1" {
		t.Skip("set MVREPAIR_LOAD=1 to run the full-size load benchmark")
	}
	opt := Options{Events: *fullEvents, Rate: *fullRate, Duration: *fullDuration, MVs: *fullMVs, Batch: *fullBatch,
		Progress: os.Stderr}
	if *fullProfile != "" {
		f, err := os.Create(*fullProfile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		opt.CPUProfile = f
	}
	rep, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep.WriteTable(&b)
	t.Logf("\n%s", b.String())
	if *fullJSON != "" {
		j, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*fullJSON, j, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
