package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// repairPhases runs one service over the backlog (throughput), then at a
// fixed rate (latency). It returns the input high watermarks at the end.
func (r *runner) repairPhases(ctx context.Context, h1 map[int]int64) (map[int]int64, error) {
	s, err := r.openService(ctx)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.stop(r.cfg.ShutdownTimeout)
		}
	}()
	if err := r.repairThroughput(ctx, s, h1); err != nil {
		return nil, err
	}
	if !r.opt.SkipLatency {
		if err := r.repairLatency(ctx, s); err != nil {
			return nil, err
		}
	}
	h2, err := r.hwm(ctx, r.cfg.Kafka.Topics.Input)
	if err != nil {
		return nil, err
	}
	stopped = true
	if err := s.stop(r.cfg.ShutdownTimeout + 5*time.Second); err != nil {
		return nil, err
	}
	return h2, nil
}

// repairThroughput starts the service on the backlog h1 and times it until
// every event is applied, journaled and committed; then it checks the
// result.
func (r *runner) repairThroughput(ctx context.Context, s *svcRun, h1 map[int]int64) error {
	stopProfile, err := r.profile()
	if err != nil {
		return err
	}
	N := int64(r.opt.Events)
	r.progress("repair: service started on a backlog of %d events", N)
	tRun := time.Now()
	s.start(ctx)
	tEnd, err := r.drained(ctx, s, r.cfg.Kafka.Topics.Input, h1, N, phaseTimeout(N))
	cpuEnd := processCPU()
	stopProfile()
	if err != nil {
		return err
	}
	end := s.rec.mark()
	tFirst, firstN, cpuFirst := s.rec.first()
	tp := throughput(N, tRun, tFirst, tEnd, firstN, cpuEnd-cpuFirst)
	figs := s.rec.figures(mark{}, end)
	tp.Batches, tp.AvgBatch, tp.OffsetCommits, tp.Records = figs.Batches, figs.AvgEvents, figs.OffsetCommits, end.published
	tp.Verified, tp.VerifyError = r.verifyRepair(s, figs, N)
	if !tp.Verified {
		r.rep.Notes = append(r.rep.Notes, "repair run NOT verified: "+tp.VerifyError)
	}
	if note := retryNote(mark{}, end); note != "" {
		r.rep.Notes = append(r.rep.Notes, "repair throughput: "+note)
	}
	r.rep.Repair, r.rep.RepairBatches = tp, figs
	r.progress("repair: %.0f events/s from the first batch (%.0f from Run); %d batches of %.0f events, %.1f records each; process+commit %.2fms/batch; verified=%t",
		tp.EventsPerSec, tp.FromStartPerSec, tp.Batches, tp.AvgBatch, figs.RecordsPerBatch, figs.TookMs.Mean, tp.Verified)
	return nil
}

// phaseTimeout bounds a throughput phase of n events.
func phaseTimeout(n int64) time.Duration {
	return 5*time.Minute + time.Duration(n)*time.Millisecond
}

// throughput computes the rates of a phase of n events: from the first
// batch (its firstN events not counted) and from the start.
func throughput(n int64, tStart, tFirst, tEnd time.Time, firstN int, cpu time.Duration) Throughput {
	tp := Throughput{Events: int(n), FirstBatchEvents: firstN,
		Seconds:           tEnd.Sub(tFirst).Seconds(),
		FromStartPerSec:   float64(n) / tEnd.Sub(tStart).Seconds(),
		FirstBatchSeconds: tFirst.Sub(tStart).Seconds(),
		CPUSeconds:        cpu.Seconds()}
	if tp.Seconds > 0 {
		tp.EventsPerSec = float64(n-int64(firstN)) / tp.Seconds
		tp.CPUUtilization = tp.CPUSeconds / (tp.Seconds * float64(numCPU()))
	}
	return tp
}

// verifyRepair checks the throughput phase: every event repaired every MV
// of its table, nothing was skipped or dead-lettered, and the state holds
// the versions the events lead to.
func (r *runner) verifyRepair(s *svcRun, f BatchFigures, n int64) (bool, string) {
	want := r.wl.expectedRepairs(0, n)
	bad, sample := r.wl.verify(s.svc.Store().State().Get, n)
	if f.Repaired == want && f.Skips == 0 && f.DLQ == 0 && f.Duplicates == 0 && f.Events == n && bad == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d events committed (want %d), %d repairs (want %d), %d skips, %d DLQ, %d duplicates, %d wrong entries %s",
		f.Events, n, f.Repaired, want, f.Skips, f.DLQ, f.Duplicates, bad, sample)
}

// repairLatency measures the running service at a fixed rate, with its
// batches during the phase.
func (r *runner) repairLatency(ctx context.Context, s *svcRun) error {
	kBase := int64(r.opt.Events)
	from := s.rec.mark()
	lat, err := r.latency(ctx, latencySpec{
		name: "repair", prefix: "lr-", kBase: kBase, outTopic: r.cfg.Kafka.Topics.EditLog,
		ids:      editLogCauses,
		expected: func(k int64) int32 { return int32(r.wl.mvsOn[r.wl.tableOf(k)]) },
		alive:    s.svc.Live,
	})
	if err != nil {
		return err
	}
	to := s.rec.mark()
	r.rep.RepairLatency = lat
	r.rep.LatencyBatches = s.rec.figures(from, to)
	if note := retryNote(from, to); note != "" {
		r.rep.Notes = append(r.rep.Notes, "repair latency: "+note)
	}
	return nil
}

// profile starts the case's CPU profile when one was asked for and returns
// its stop.
func (r *runner) profile() (func(), error) {
	if r.opt.CPUProfile == "" {
		return func() {}, nil
	}
	path := profilePath(r.opt.CPUProfile, r.c.Name)
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	r.rep.CPUProfile = path
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// profilePath inserts "-<case>" before the extension of path.
func profilePath(path, name string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + name + ext
}

// editLogCauses returns the cause event ids of an edit-log record.
func editLogCauses(m kafkaio.Message, fn func(id []byte, at int64)) {
	rec, err := editlog.Decode(m.Value)
	if err != nil {
		return
	}
	for _, c := range rec.Causes {
		fn([]byte(c.EventID), rec.At)
	}
}

var eventIDField = []byte(`"event_id":"`)

// eventIDOf returns the event id of a pass-through record (the input event
// unchanged).
func eventIDOf(m kafkaio.Message, fn func(id []byte, at int64)) {
	i := bytes.Index(m.Value, eventIDField)
	if i < 0 {
		return
	}
	rest := m.Value[i+len(eventIDField):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		fn(rest[:j], 0)
	}
}
