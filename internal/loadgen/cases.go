package loadgen

import (
	"fmt"
	"slices"
	"strings"
)

// Case is one workload shape: M MVs over T tables (MV j reads table j mod
// T), each MV recording P partitions of its table, events keyed by table on
// an input topic of TopicPartitions partitions.
type Case struct {
	Name            string `json:"name"`
	Title           string `json:"title"`
	MVs             int    `json:"mvs"`
	Tables          int    `json:"tables"`
	Partitions      int    `json:"partitions"`
	TopicPartitions int    `json:"topic_partitions"`
	// Goals are the figures the service is tuned for in this case (the tool
	// measures them; it does not fail when they are missed).
	Goals Goals `json:"goals"`
}

// Goals are a case's targets; a zero field sets none.
type Goals struct {
	// MinRatio: repair events/s at least this share of the same run's
	// pass-through events/s.
	MinRatio float64 `json:"min_ratio,omitempty"`
	// MaxP99Ratio: repair p99 latency at most this multiple of the
	// pass-through p99, both at the same fixed rate.
	MaxP99Ratio float64 `json:"max_p99_ratio,omitempty"`
	// MaxProcessMsPer1000: process + local commit (pipeline.Report.Took) at
	// most this many ms per 1000 events, in the throughput phase's batches.
	MaxProcessMsPer1000 float64 `json:"max_process_ms_per_1000,omitempty"`
	// MaxLogBytesRatio: bytes the local log wrote (pipeline.Report.Bytes) at
	// most this multiple of the encoded edit-log records they journal.
	MaxLogBytesRatio float64 `json:"max_log_bytes_ratio,omitempty"`
	// P99RateAtLeast: the p99 goal holds at this rate or above (0: any).
	P99RateAtLeast int `json:"p99_rate_at_least,omitempty"`
}

// The case names.
const (
	CaseSpread       = "spread"
	CaseOnePartition = "one-partition"
	CaseLarge        = "large"
	CaseEasy         = "easy"
)

// TargetRate is the rate the latency goals are set at.
const TargetRate = 5000

// DefaultCases are the cases a run measures unless told otherwise, in the
// order they run: the realistic spread first, the harder and the easy
// shapes beside it.
func DefaultCases() []Case {
	logGoal := 2.0
	return []Case{
		{Name: CaseSpread, Title: "realistic spread: 500 MVs on 500 tables x 50 partitions, events over every table, partition and input partition",
			MVs: 500, Tables: 500, Partitions: 50, TopicPartitions: 6,
			Goals: Goals{MinRatio: 0.8, MaxP99Ratio: 1.25, P99RateAtLeast: TargetRate, MaxProcessMsPer1000: 4, MaxLogBytesRatio: logGoal}},
		{Name: CaseOnePartition, Title: "the spread on a one-partition input topic",
			MVs: 500, Tables: 500, Partitions: 50, TopicPartitions: 1,
			Goals: Goals{MinRatio: 0.5, MaxProcessMsPer1000: 4, MaxLogBytesRatio: logGoal}},
		{Name: CaseLarge, Title: "2000 MVs on 2000 tables x 50 partitions",
			MVs: 2000, Tables: 2000, Partitions: 50, TopicPartitions: 6,
			Goals: Goals{MinRatio: 0.5, MaxLogBytesRatio: logGoal}},
		{Name: CaseEasy, Title: "the easy case (the old default): 48 MVs on 12 tables x 50 partitions, 4 MVs per table",
			MVs: 48, Tables: 12, Partitions: 50, TopicPartitions: 6,
			Goals: Goals{MaxLogBytesRatio: logGoal}},
	}
}

// CaseNames lists the default cases' names.
func CaseNames() []string {
	var out []string
	for _, c := range DefaultCases() {
		out = append(out, c.Name)
	}
	return out
}

// SelectCases returns the default cases named (all of them for none), in
// the order given, each once.
func SelectCases(names []string) ([]Case, error) {
	all := DefaultCases()
	if len(names) == 0 {
		return all, nil
	}
	var out []Case
	var seen []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(all, func(c Case) bool { return c.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("%w %q (cases: %s)", ErrUnknownCase, n, strings.Join(CaseNames(), ", "))
		}
		if !slices.Contains(seen, n) {
			seen = append(seen, n)
			out = append(out, all[i])
		}
	}
	return out, nil
}

// Shape overrides the shape of cases; a zero field keeps the case's.
type Shape struct {
	MVs, Tables, Partitions, TopicPartitions int
}

// IsZero reports whether the shape overrides nothing.
func (s Shape) IsZero() bool { return s == Shape{} }

// Apply returns c with the shape's non-zero fields, marked as changed in
// its title. Tables are capped at the MVs (every table is read by an MV).
func (s Shape) Apply(c Case) Case {
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&c.MVs, s.MVs)
	set(&c.Tables, s.Tables)
	set(&c.Partitions, s.Partitions)
	set(&c.TopicPartitions, s.TopicPartitions)
	c.Tables = min(c.Tables, c.MVs)
	if !s.IsZero() {
		c.Title = fmt.Sprintf("%s, shape changed by flags: %d MVs on %d tables x %d partitions, %d input partitions",
			c.Name, c.MVs, c.Tables, c.Partitions, c.TopicPartitions)
	}
	return c
}

// validate checks that a case can run.
func (c Case) validate() error {
	if c.Name == "" {
		return fmt.Errorf("%w: a case without a name", ErrOptions)
	}
	if c.MVs <= 0 || c.Tables <= 0 || c.Partitions <= 0 || c.TopicPartitions <= 0 {
		return fmt.Errorf("%w: case %s: MVs, tables, partitions and input partitions must be positive (got %d, %d, %d, %d)",
			ErrOptions, c.Name, c.MVs, c.Tables, c.Partitions, c.TopicPartitions)
	}
	return nil
}
