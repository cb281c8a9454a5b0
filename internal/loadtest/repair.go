package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/service"
)

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// svcRun is one in-process service: Open, then Run in a goroutine.
type svcRun struct {
	svc    *service.Service
	cancel context.CancelFunc
	done   chan error
}

func (r *runner) openService(ctx context.Context) (*svcRun, error) {
	svc, err := service.Open(ctx, r.cfg, r.log)
	if err != nil {
		return nil, err
	}
	return &svcRun{svc: svc, done: make(chan error, 1)}, nil
}

func (s *svcRun) start(ctx context.Context) {
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() { s.done <- s.svc.Run(runCtx) }()
}

// stop ends Run (a graceful shutdown) and closes the service.
func (s *svcRun) stop(timeout time.Duration) error {
	var err error
	if s.cancel != nil {
		s.cancel()
		select {
		case err = <-s.done:
		case <-time.After(timeout):
			err = fmt.Errorf("service did not stop within %s", timeout)
		}
	}
	s.svc.Close()
	return err
}

// seedCatalog publishes the catalog, runs the service until it is applied
// and journaled, and stops it.
func (r *runner) seedCatalog(ctx context.Context) error {
	start := time.Now()
	msgs, err := r.wl.catalogMessages(r.cfg.Kafka.Topics.Catalog)
	if err != nil {
		return err
	}
	s, err := r.openService(ctx)
	if err != nil {
		return err
	}
	if err := r.producer.Publish(ctx, msgs...); err != nil {
		_ = s.stop(r.cfg.ShutdownTimeout)
		return err
	}
	hwm, err := r.hwm(ctx, r.cfg.Kafka.Topics.Catalog)
	if err != nil {
		_ = s.stop(r.cfg.ShutdownTimeout)
		return err
	}
	s.start(ctx)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := s.svc.Store().State()
		if applied(st.AppliedOffset, r.cfg.Kafka.Topics.Catalog, hwm) && st.Len() == r.opt.MVs {
			if n, err := r.count(ctx, r.cfg.Kafka.Topics.EditLog); err == nil && n >= st.JournalID() {
				break
			}
		}
		if err := s.svc.Live(); err != nil {
			_ = s.stop(r.cfg.ShutdownTimeout)
			return err
		}
		if time.Now().After(deadline) {
			_ = s.stop(r.cfg.ShutdownTimeout)
			return fmt.Errorf("%w: catalog of %d MVs not applied within 60s (store holds %d)", errTimeout, r.opt.MVs, s.svc.Store().State().Len())
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			_ = s.stop(r.cfg.ShutdownTimeout)
			return err
		}
	}
	if err := s.stop(r.cfg.ShutdownTimeout + 5*time.Second); err != nil {
		return err
	}
	r.progress("seeded %d MVs over %d tables × %d partitions in %s (service start, apply, journal, stop)",
		r.opt.MVs, len(r.wl.tables), r.opt.Partitions, since(start))
	return nil
}

// applied reports whether every partition of topic reached hwm.
func applied(at func(string, int) int64, topic string, hwm map[int]int64) bool {
	for p, h := range hwm {
		if h > 0 && at(topic, p) < h {
			return false
		}
	}
	return true
}

// done counts the events of topic applied below hwm.
func doneBelow(at func(string, int) int64, topic string, hwm map[int]int64) int64 {
	var n int64
	for p, h := range hwm {
		n += min(max(at(topic, p), 0), h)
	}
	return n
}

// repairPhases runs the service over the backlog (throughput), then at a
// fixed rate (latency). It returns the input high watermarks at the end.
func (r *runner) repairPhases(ctx context.Context, h1 map[int]int64) (map[int]int64, error) {
	input := r.cfg.Kafka.Topics.Input
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
	st := s.svc.Store().State()
	journalBefore := st.JournalID()
	stopProfile, err := r.profile()
	if err != nil {
		return nil, err
	}
	r.progress("repair: service started on a backlog of %d events", r.opt.Events)
	tRun := time.Now()
	s.start(ctx)
	var tActive, tFirst, tApplied time.Time
	var doneAtFirst int64
	var cpuFirst time.Duration
	N := int64(r.opt.Events)
	deadline := time.Now().Add(10*time.Minute + time.Duration(N)*time.Millisecond)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		if tActive.IsZero() && s.svc.Active() {
			tActive = now
		}
		done := doneBelow(st.AppliedOffset, input, h1)
		if tFirst.IsZero() && done > 0 {
			tFirst, doneAtFirst, cpuFirst = now, done, processCPU()
		}
		if done >= N {
			if tApplied.IsZero() {
				tApplied = now
			}
			// Every edit-log record on the topic and every offset committed.
			if n, err := r.count(ctx, r.cfg.Kafka.Topics.EditLog); err == nil && n >= st.JournalID() {
				if c, err := r.admin.CommittedOffsets(ctx, r.cfg.Kafka.GroupID, []string{input}); err == nil && reached(c[input], h1) {
					break
				}
			}
		}
		if err := s.svc.Live(); err != nil {
			stopProfile()
			return nil, err
		}
		if now.After(deadline) {
			stopProfile()
			return nil, fmt.Errorf("%w: %d of %d events applied", errTimeout, done, N)
		}
		select {
		case <-ctx.Done():
			stopProfile()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	tEnd := time.Now()
	cpuEnd := processCPU()
	stopProfile()
	if tActive.IsZero() {
		tActive = tFirst
	}
	fams, err := s.svc.Metrics.Registry().Gather()
	if err != nil {
		return nil, err
	}
	tp := Throughput{
		Events:           r.opt.Events,
		FirstBatchEvents: int(doneAtFirst),
		Seconds:          tEnd.Sub(tFirst).Seconds(),
		EventsPerSec:     float64(N-doneAtFirst) / tEnd.Sub(tFirst).Seconds(),
		FromActivePerSec: float64(N) / tEnd.Sub(tActive).Seconds(),
		FromStartPerSec:  float64(N) / tEnd.Sub(tRun).Seconds(),
		JoinSeconds:      tActive.Sub(tRun).Seconds(),
		TailSeconds:      tEnd.Sub(tApplied).Seconds(),
		Records:          st.JournalID() - journalBefore,
		Batches:          int(histCount(fams, "mvrepair_batch_size")),
		Commits:          int(counterSum(fams, "mvrepair_commits_total")),
		Repairs:          int64(counterSum(fams, "mvrepair_repairs_total")),
		Skips:            int64(counterSum(fams, "mvrepair_skips_total")),
		DLQ:              int64(counterSum(fams, "mvrepair_dlq_total")),
		CPUSeconds:       (cpuEnd - cpuFirst).Seconds(),
	}
	tp.CPUUtilization = tp.CPUSeconds / (tp.Seconds * float64(r.report.Machine.NumCPU))
	if tp.Batches > 0 {
		tp.AvgBatch = histSum(fams, "mvrepair_batch_size") / float64(tp.Batches)
		tp.ProcessMsPerBatch = 1000 * histSum(fams, "mvrepair_batch_duration_seconds") / float64(tp.Batches)
		if pc := histCount(fams, "mvrepair_editlog_publish_duration_seconds"); pc > 0 {
			tp.PublishMsPerBatch = 1000 * histSum(fams, "mvrepair_editlog_publish_duration_seconds") / float64(tp.Batches)
		}
		// The window holds about Batches-1 whole batches.
		tp.OtherMsPerBatch = max(0, 1000*tp.Seconds/float64(max(tp.Batches-1, 1))-tp.ProcessMsPerBatch-tp.PublishMsPerBatch)
	}
	want := r.wl.expectedRepairs(0, N)
	bad, sample := r.wl.verify(st.Get, N)
	tp.Verified = tp.Repairs == want && tp.Skips == 0 && tp.DLQ == 0 && bad == 0
	if !tp.Verified {
		r.report.Notes = append(r.report.Notes, fmt.Sprintf("repair run NOT verified: %d repairs (want %d), %d skips, %d DLQ, %d wrong entries %s",
			tp.Repairs, want, tp.Skips, tp.DLQ, bad, sample))
	}
	r.report.Repair = tp
	r.progress("repair: %.0f events/s from the first batch (%.0f from Run incl. %.2fs group join); %d batches of %.0f; %d edit-log records; verified=%t",
		tp.EventsPerSec, tp.FromStartPerSec, tp.JoinSeconds, tp.Batches, tp.AvgBatch, tp.Records, tp.Verified)

	if !r.opt.SkipLatency {
		lat, err := r.latency(ctx, latencySpec{
			name: "repair", prefix: "lr-", kBase: N, outTopic: r.cfg.Kafka.Topics.EditLog,
			ids:      editLogCauses,
			expected: func(k int64) int32 { return int32(r.wl.mvsOn[r.wl.tableOf(k)]) },
			alive:    s.svc.Live,
			stats: func() batchStats {
				fams, err := s.svc.Metrics.Registry().Gather()
				if err != nil {
					return batchStats{}
				}
				return batchStats{batches: histCount(fams, "mvrepair_batch_size"), events: histSum(fams, "mvrepair_batch_size"),
					processSecs: histSum(fams, "mvrepair_batch_duration_seconds"),
					publishSecs: histSum(fams, "mvrepair_editlog_publish_duration_seconds")}
			},
		})
		if err != nil {
			return nil, err
		}
		r.report.RepairLatency = lat
	}
	h2, err := r.hwm(ctx, input)
	if err != nil {
		return nil, err
	}
	stopped = true
	if err := s.stop(r.cfg.ShutdownTimeout + 5*time.Second); err != nil {
		return nil, err
	}
	return h2, nil
}

// reached reports whether every partition of got is at least want.
func reached(got map[int]int64, want map[int]int64) bool {
	for p, w := range want {
		if w > 0 && got[p] < w {
			return false
		}
	}
	return true
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

func family(fams []*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

func counterSum(fams []*dto.MetricFamily, name string) float64 {
	var s float64
	if f := family(fams, name); f != nil {
		for _, m := range f.GetMetric() {
			s += m.GetCounter().GetValue()
		}
	}
	return s
}

func histSum(fams []*dto.MetricFamily, name string) float64 {
	var s float64
	if f := family(fams, name); f != nil {
		for _, m := range f.GetMetric() {
			s += m.GetHistogram().GetSampleSum()
		}
	}
	return s
}

func histCount(fams []*dto.MetricFamily, name string) float64 {
	var s float64
	if f := family(fams, name); f != nil {
		for _, m := range f.GetMetric() {
			s += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return s
}
