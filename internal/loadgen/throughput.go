package loadgen

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
)

// Round is one paired measurement of both pipelines over the same backlog.
type Round struct {
	Repair      Throughput `json:"repair"`
	PassThrough Throughput `json:"pass_through"`
	// Ratio is Repair.EventsPerSec / PassThrough.EventsPerSec.
	Ratio float64 `json:"ratio"`
	// RepairFirst says which pipeline ran first (the order alternates).
	RepairFirst bool `json:"repair_first"`
	// Checkpoints says the repair service wrote checkpoints in this round
	// (Options.CheckpointEvery); SnapshotRecords is how many records it
	// wrote to the snapshot topic (MV snapshots and markers).
	Checkpoints     bool  `json:"checkpoints,omitempty"`
	SnapshotRecords int64 `json:"snapshot_records,omitempty"`
}

// CheckpointFigures compare the rounds with checkpoints to those without
// (Options.CheckpointEvery).
type CheckpointFigures struct {
	Every int64 `json:"every_records"`
	// RatioWith and RatioWithout are the medians of the rounds' repair /
	// pass-through ratios; Relative is RatioWith / RatioWithout (target
	// ≥ 0.9).
	RatioWith       float64 `json:"ratio_with"`
	RatioWithout    float64 `json:"ratio_without"`
	Relative        float64 `json:"relative"`
	SnapshotRecords int64   `json:"snapshot_records"`
}

// throughputRounds measures both pipelines over Rounds backlogs of N events
// each: for each round a new backlog is produced, then the repair service
// (started fresh) and the pass-through baseline (its group started fresh)
// consume it one after the other, in alternating order, so that each
// round's ratio compares two runs close in time (other work on the machine
// comes and goes).
func (r *runner) throughputRounds(ctx context.Context) error {
	n := int64(r.opt.Events)
	var all phase
	for i := 1; i <= r.opt.Rounds; i++ {
		k0 := int64(i-1) * n
		hwm, err := r.produceBacklog(ctx, k0, n)
		if err != nil {
			return fmt.Errorf("round %d: produce: %w", i, err)
		}
		rd := Round{RepairFirst: i%2 == 1}
		var ph phase
		repair := func() error {
			before, err := r.setCheckpoints(ctx, &rd, i)
			if err != nil {
				return err
			}
			rd.Repair, ph, err = r.repairRound(ctx, i, k0, n, hwm)
			if err == nil && r.opt.CheckpointEvery > 0 {
				rd.SnapshotRecords, err = r.snapshotRecordsSince(ctx, before)
			}
			return err
		}
		pass := func() error {
			var err error
			rd.PassThrough, err = r.passRound(ctx, i, hwm, n)
			return err
		}
		steps := []func() error{repair, pass}
		if !rd.RepairFirst {
			steps = []func() error{pass, repair}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("round %d: %w", i, err)
			}
		}
		if rd.PassThrough.EventsPerSec > 0 {
			rd.Ratio = rd.Repair.EventsPerSec / rd.PassThrough.EventsPerSec
		}
		if !rd.Repair.Verified {
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("round %d: repair run NOT verified: %s", i, rd.Repair.VerifyError))
		}
		if note := ph.retryNote(); note != "" {
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("round %d: %s", i, note))
		}
		r.rep.Rounds = append(r.rep.Rounds, rd)
		all.add(ph)
	}
	r.rep.Checkpoints = checkpointFigures(r.opt.CheckpointEvery, r.rep.Rounds)
	r.rep.RepairBatches = all.figures()
	r.rep.Repair, r.rep.PassThrough = aggregate(r.rep.Rounds, func(rd Round) Throughput { return rd.Repair }),
		aggregate(r.rep.Rounds, func(rd Round) Throughput { return rd.PassThrough })
	return nil
}

// produceBacklog publishes events [k0, k0+n) and returns the input topic's
// high watermarks after them.
func (r *runner) produceBacklog(ctx context.Context, k0, n int64) (map[int]int64, error) {
	start := time.Now()
	topic := r.cfg.Kafka.Topics.Input
	before, err := r.admin.HighWatermarks(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := r.publishEvents(ctx, topic, k0, n); err != nil {
		return nil, err
	}
	hwm, err := r.admin.HighWatermarks(ctx, topic)
	if err != nil {
		return nil, err
	}
	per := make([]int64, r.c.TopicPartitions)
	for p, o := range hwm {
		if p < len(per) {
			per[p] = o - before[p]
		}
	}
	if total(hwm)-total(before) != n {
		return nil, fmt.Errorf("the input topic grew by %d records after producing %d (not a fresh topic?)", total(hwm)-total(before), n)
	}
	if k0 == 0 {
		r.rep.EventsPerInputPartition = per
	}
	r.progress("produced a backlog of %d events in %s (%.0f events/s), per input partition %v", n, since(start),
		float64(n)/time.Since(start).Seconds(), per)
	return hwm, nil
}

// publishEvents publishes events [k0, k0+n) of the workload to topic, in
// chunks.
func (r *runner) publishEvents(ctx context.Context, topic string, k0, n int64) error {
	const chunk = 1000
	msgs := make([]kafkaio.Message, 0, chunk)
	for k := k0; k < k0+n; k++ {
		m, err := r.wl.message(topic, k, "load-"+itoa(k))
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
		if len(msgs) == chunk || k == k0+n-1 {
			if err := r.producer.Publish(ctx, msgs...); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

// aggregate combines one pipeline's rounds: rates are the median over the
// rounds, counts and CPU time are summed.
func aggregate(rounds []Round, of func(Round) Throughput) Throughput {
	var out Throughput
	if len(rounds) == 0 {
		return out
	}
	var rates, fromStart, firstBatch, util []float64
	out.Verified = true
	for _, rd := range rounds {
		t := of(rd)
		rates = append(rates, t.EventsPerSec)
		fromStart = append(fromStart, t.FromStartPerSec)
		firstBatch = append(firstBatch, t.FirstBatchSeconds)
		util = append(util, t.CPUUtilization)
		out.Events += t.Events
		out.Seconds += t.Seconds
		out.FirstBatchEvents += t.FirstBatchEvents
		out.Batches += t.Batches
		out.OffsetCommits += t.OffsetCommits
		out.Records += t.Records
		out.CPUSeconds += t.CPUSeconds
		if !t.Verified {
			out.Verified = false
			out.VerifyError = t.VerifyError
		}
	}
	out.EventsPerSec, out.FromStartPerSec, out.FirstBatchSeconds = median(rates), median(fromStart), median(firstBatch)
	out.CPUUtilization = median(util)
	out.MinEventsPerSec, out.MaxEventsPerSec = slices.Min(rates), slices.Max(rates)
	if out.Batches > 0 {
		out.AvgBatch = float64(out.Events) / float64(out.Batches)
	}
	if counted := out.Events - out.FirstBatchEvents; counted > 0 {
		out.CPUMicrosPerEvent = out.CPUSeconds * 1e6 / float64(counted)
	}
	return out
}

// median returns the median of xs (the mean of the middle two for an even
// count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

// setCheckpoints turns the repair service's checkpoints on and off when
// Options.CheckpointEvery is set, and returns the snapshot topic's size
// before the round. They switch every two rounds (on, on, off, off, ...),
// so that each kind has as many rounds with the repair pipeline first as
// with the baseline first (which goes first alternates every round).
func (r *runner) setCheckpoints(ctx context.Context, rd *Round, i int) (int64, error) {
	if r.opt.CheckpointEvery <= 0 {
		return 0, nil
	}
	rd.Checkpoints = ((i-1)/2)%2 == 0
	r.cfg.Checkpoint.Interval = 0
	r.cfg.Checkpoint.MaxRecords = 0
	if rd.Checkpoints {
		r.cfg.Checkpoint.MaxRecords = r.opt.CheckpointEvery
	}
	hwm, err := r.admin.HighWatermarks(ctx, r.cfg.Kafka.Topics.Snapshots)
	return total(hwm), err
}

// snapshotRecordsSince returns the records written to the snapshot topic
// since it held before.
func (r *runner) snapshotRecordsSince(ctx context.Context, before int64) (int64, error) {
	hwm, err := r.admin.HighWatermarks(ctx, r.cfg.Kafka.Topics.Snapshots)
	return total(hwm) - before, err
}

// checkpointFigures compares the rounds with checkpoints to those without
// (nil when Options.CheckpointEvery is off).
func checkpointFigures(every int64, rounds []Round) *CheckpointFigures {
	if every <= 0 {
		return nil
	}
	var with, without []float64
	f := &CheckpointFigures{Every: every}
	for _, rd := range rounds {
		if rd.Checkpoints {
			with = append(with, rd.Ratio)
			f.SnapshotRecords += rd.SnapshotRecords
		} else {
			without = append(without, rd.Ratio)
		}
	}
	f.RatioWith, f.RatioWithout = median(with), median(without)
	if f.RatioWithout > 0 {
		f.Relative = f.RatioWith / f.RatioWithout
	}
	return f
}
