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

// repairRound times a fresh service over one backlog, events [k0, k0+n)
// ending at the input high watermarks hwm, and checks the result.
func (r *runner) repairRound(ctx context.Context, round int, k0, n int64, hwm map[int]int64) (Throughput, phase, error) {
	s, err := r.openService(ctx)
	if err != nil {
		return Throughput{}, phase{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = s.stop(r.cfg.ShutdownTimeout)
		}
	}()
	stopProfile := func() {}
	if round == 1 {
		if stopProfile, err = r.profile(); err != nil {
			return Throughput{}, phase{}, err
		}
	}
	tRun := time.Now()
	s.start(ctx)
	tEnd, err := r.drained(ctx, s, r.cfg.Kafka.Topics.Input, hwm, n, phaseTimeout(n))
	cpuEnd := processCPU()
	stopProfile()
	if err != nil {
		return Throughput{}, phase{}, err
	}
	ph := s.rec.between(mark{}, s.rec.mark())
	tFirst, firstN, cpuFirst := s.rec.first()
	tp := throughput(n, tRun, tFirst, tEnd, firstN, cpuEnd-cpuFirst)
	figs := ph.figures()
	tp.Batches, tp.AvgBatch, tp.OffsetCommits, tp.Records = figs.Batches, figs.AvgEvents, figs.OffsetCommits, ph.published
	tp.Verified, tp.VerifyError = r.verifyRepair(s, figs, k0, n)
	stopped = true
	if err := s.stop(r.cfg.ShutdownTimeout + 5*time.Second); err != nil {
		return tp, ph, err
	}
	r.progress("round %d: repair %.0f events/s from the first batch (%.0f from Run); %d batches of %.0f events, %.1f records each; process+commit %.2fms/batch; verified=%t",
		round, tp.EventsPerSec, tp.FromStartPerSec, tp.Batches, tp.AvgBatch, figs.RecordsPerBatch, figs.TookMs.Mean, tp.Verified)
	return tp, ph, nil
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
	if counted := n - int64(firstN); counted > 0 {
		tp.CPUMicrosPerEvent = tp.CPUSeconds * 1e6 / float64(counted)
	}
	return tp
}

// verifyRepair checks a round over events [k0, k0+n): every event repaired
// every MV of its table, nothing was skipped or dead-lettered, and the state
// holds the versions events [0, k0+n) lead to.
func (r *runner) verifyRepair(s *svcRun, f BatchFigures, k0, n int64) (bool, string) {
	want := r.wl.expectedRepairs(k0, k0+n)
	bad, sample := r.wl.verify(s.svc.Store().State().Get, k0+n)
	if f.Repaired == want && f.Skips == 0 && f.DLQ == 0 && f.Duplicates == 0 && f.Events == n && bad == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d events committed (want %d), %d repairs (want %d), %d skips, %d DLQ, %d duplicates, %d wrong entries %s",
		f.Events, n, f.Repaired, want, f.Skips, f.DLQ, f.Duplicates, bad, sample)
}

// profile starts the case's CPU profile (of its first repair round) when
// one was asked for and returns its stop.
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
