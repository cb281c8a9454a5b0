// Package loadtest is the load benchmark behind `consumer load` (DESIGN.md
// §8): it measures, in one run, on one broker and with one set of client
// settings,
//
//  1. the repair pipeline's sustained throughput: a catalog of M MVs over T
//     tables (P recorded partitions each) is seeded through the catalog
//     topic, N partition_version_changed events that each repair every MV of
//     their table are pre-produced (keyed per table), then the service is
//     started in-process (service.Open + Run) and timed until every input
//     offset is applied, every edit-log record is on the edit-log topic and
//     the group has committed every input offset;
//  2. a pass-through baseline over the same N records: a consumer group with
//     the same kafkaio fetcher settings, the same batching (batch.max_events,
//     batch.max_wait), one Publish per batch to an output topic with the same
//     Producer settings, one offset commit per batch; no decoding, no state;
//  3. end-to-end latency at a fixed rate R for both pipelines: events are
//     produced paced, each event's produce time is recorded (the moment it is
//     handed to Producer.Publish), the edit-log topic (or the baseline's
//     output topic) is tailed with a small fetch MaxWait, and the latency of
//     an event is the time the last record naming it (causes[].event_id) was
//     read minus its produce time. The tail's own fetch delay is included.
//
// Throughput is reported from the first batch (the service's first local
// commit; the baseline's first collected batch) to the end, which excludes
// the consumer-group join; the rate measured from the start of Run (join
// included) is reported next to it.
//
// By default the broker is an embedded kfake broker in this process, started
// like the service's dev mode (`kafka.brokers: embedded`: a data dir, no
// fsync), on a random port: it shares the CPUs with the pipeline it serves,
// which a real deployment would not. Options.Brokers runs against real
// brokers instead; topic names and group ids are unique per run.
package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/service"
)

// Defaults, sized for a 2-core machine.
const (
	DefaultEvents          = 200000
	DefaultRate            = 5000
	DefaultDuration        = 10 * time.Second
	DefaultMVs             = 48
	DefaultTables          = 12
	DefaultPartitions      = 50
	DefaultTopicPartitions = 6
	DefaultTailMaxWait     = 100 * time.Millisecond
)

// Options configures a run. Zero values take the defaults above; Config's
// client, batch and writer settings are used as they are (with Batch and
// BatchWait overriding batch.max_events and batch.max_wait when set).
type Options struct {
	// Events is N, the pre-produced backlog of the throughput phases.
	Events int
	// Rate is R, events per second in the latency phases.
	Rate int
	// Duration is how long each latency phase produces.
	Duration time.Duration
	// MVs is M, the MVs of the catalog; each reads one table.
	MVs int
	// Tables is T, the base tables the MVs read (at most MVs).
	Tables int
	// Partitions is P, the partitions each MV recorded of its table.
	Partitions int
	// TopicPartitions is kafka.partitions of the created input topics.
	TopicPartitions int
	// Batch overrides batch.max_events (and the baseline's batch size).
	Batch int
	// BatchWait overrides batch.max_wait.
	BatchWait time.Duration
	// Brokers are real brokers to run against; empty starts an embedded one.
	Brokers []string
	// Config is the base configuration (config.Default() when nil). The run
	// replaces the state dir, brokers, topic names and group id.
	Config *config.Config
	// ServiceLog receives the service's logs at Config.Log.Level; nil
	// discards them (they are still formatted, as in production).
	ServiceLog io.Writer
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// CPUProfile, when set, receives a CPU profile of the repair throughput
	// phase (pipeline and, when embedded, the broker).
	CPUProfile io.Writer
	// TailMaxWait is the fetch MaxWait of the latency tails.
	TailMaxWait time.Duration
	// SkipLatency skips both latency phases.
	SkipLatency bool
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Events, DefaultEvents)
	def(&o.Rate, DefaultRate)
	def(&o.MVs, DefaultMVs)
	def(&o.Tables, DefaultTables)
	def(&o.Partitions, DefaultPartitions)
	def(&o.TopicPartitions, DefaultTopicPartitions)
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.TailMaxWait <= 0 {
		o.TailMaxWait = DefaultTailMaxWait
	}
	o.Tables = min(o.Tables, o.MVs)
	return o
}

// runner holds one run's shared parts.
type runner struct {
	opt      Options
	cfg      *config.Config
	log      zerolog.Logger
	dir      string
	broker   *embedded.Broker
	brokers  []string
	admin    *kafkaio.Admin
	producer *kafkaio.Producer
	wl       *workload
	outTopic string
	blGroup  string
	report   *Report
}

// Run runs the whole benchmark and returns its report.
func Run(ctx context.Context, opt Options) (*Report, error) {
	opt = opt.withDefaults()
	r := &runner{opt: opt, report: &Report{Machine: machine()}}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	rep := r.report
	if err := r.seedCatalog(ctx); err != nil {
		return nil, fmt.Errorf("loadtest: seed catalog: %w", err)
	}
	h1, err := r.preProduce(ctx)
	if err != nil {
		return nil, fmt.Errorf("loadtest: pre-produce: %w", err)
	}
	h2, err := r.repairPhases(ctx, h1)
	if err != nil {
		return nil, fmt.Errorf("loadtest: repair pipeline: %w", err)
	}
	if err := r.passThroughPhases(ctx, h1, h2); err != nil {
		return nil, fmt.Errorf("loadtest: pass-through pipeline: %w", err)
	}
	if rep.PassThrough.EventsPerSec > 0 {
		rep.Ratio = rep.Repair.EventsPerSec / rep.PassThrough.EventsPerSec
	}
	rep.Targets = targets(rep, opt)
	rep.Machine.LoadAvgEnd = loadAvg()
	return rep, nil
}

func (r *runner) progress(format string, args ...any) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "load: "+format+"\n", args...)
	}
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func (r *runner) setup(ctx context.Context) (err error) {
	opt := r.opt
	base := config.Default()
	if opt.Config != nil {
		base = *opt.Config
	}
	cfg := &base
	if r.dir, err = os.MkdirTemp("", "mvrepair-load-"); err != nil {
		return err
	}
	id := runID()
	if len(opt.Brokers) == 0 {
		r.broker, err = embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(r.dir, "kafka")})
		if err != nil {
			return fmt.Errorf("loadtest: embedded broker: %w", err)
		}
		r.brokers = []string{r.broker.Addr()}
	} else {
		r.brokers = opt.Brokers
		defer func() {
			if err == nil {
				r.progress("topics %s* and groups mvrepair-load-*%s stay on the cluster (delete them when done)", "load-"+id+"-", id)
			}
		}()
	}
	cfg.State.Dir = filepath.Join(r.dir, "state")
	cfg.Kafka.Brokers = strings.Join(r.brokers, ",")
	cfg.Kafka.CreateTopics = true
	cfg.Kafka.Partitions = opt.TopicPartitions
	prefix := "load-" + id + "-"
	t := &cfg.Kafka.Topics
	t.Input, t.Catalog, t.EditLog, t.DLQ = prefix+"input", prefix+"catalog", prefix+"edit-log", prefix+"dlq"
	r.outTopic = prefix + "passthrough-out"
	cfg.Kafka.GroupID = "mvrepair-load-" + id
	r.blGroup = "mvrepair-load-passthrough-" + id
	cfg.Kafka.InstanceName = "load"
	if opt.Batch > 0 {
		cfg.Batch.MaxEvents = opt.Batch
	}
	if opt.BatchWait > 0 {
		cfg.Batch.MaxWait = opt.BatchWait
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("loadtest: configuration: %w", err)
	}
	r.cfg = cfg
	w := opt.ServiceLog
	if w == nil {
		w = io.Discard
	}
	if r.log, err = logging.New(w, cfg.Log.Level, cfg.Log.Format); err != nil {
		return err
	}
	if r.admin, err = kafkaio.NewAdmin(service.AdminConfig(cfg, r.brokers)); err != nil {
		return err
	}
	// The service's topics (as service.Open would create them) and the
	// baseline's output, created through this admin so that its metadata
	// knows them.
	specs := append(service.TopicSpecs(cfg), kafkaio.TopicSpec{Name: r.outTopic, Partitions: opt.TopicPartitions,
		ReplicationFactor: cfg.Kafka.ReplicationFactor})
	if err := r.admin.EnsureTopics(ctx, specs); err != nil {
		return err
	}
	if r.producer, err = r.newProducer(); err != nil {
		return err
	}
	r.wl = newWorkload(opt.Tables, opt.MVs, opt.Partitions, opt.TopicPartitions)
	r.report.Settings = settingsOf(opt, cfg, r.broker != nil)
	return nil
}

// newProducer builds a producer with the service's settings.
func (r *runner) newProducer() (*kafkaio.Producer, error) {
	return kafkaio.NewProducer(service.ProducerConfig(r.cfg, r.brokers, zerolog.Nop()))
}

// fetcherConfig is the service's reader configuration.
func (r *runner) fetcherConfig() kafkaio.FetcherConfig {
	return service.FetcherConfig(r.cfg, r.brokers, zerolog.Nop())
}

func (r *runner) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.producer != nil {
		_ = r.producer.Close(ctx)
	}
	if r.admin != nil {
		_ = r.admin.Close()
	}
	if r.broker != nil {
		r.broker.Close()
	}
	if r.dir != "" {
		_ = os.RemoveAll(r.dir)
	}
}

// preProduce publishes the N events of the throughput phases and returns the
// input topic's high watermarks after them.
func (r *runner) preProduce(ctx context.Context) (map[int]int64, error) {
	start := time.Now()
	topic := r.cfg.Kafka.Topics.Input
	const chunk = 1000
	msgs := make([]kafkaio.Message, 0, chunk)
	for k := 0; k < r.opt.Events; k++ {
		m, err := r.wl.message(topic, int64(k), "load-"+itoa(int64(k)))
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		if len(msgs) == chunk || k == r.opt.Events-1 {
			if err := r.producer.Publish(ctx, msgs...); err != nil {
				return nil, err
			}
			msgs = msgs[:0]
		}
	}
	hwm, err := r.hwm(ctx, topic)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, o := range hwm {
		total += o
	}
	if total != int64(r.opt.Events) {
		return nil, fmt.Errorf("input topic holds %d records after producing %d (not a fresh topic?)", total, r.opt.Events)
	}
	r.progress("pre-produced %d events in %s (%.0f events/s)", r.opt.Events, since(start), float64(r.opt.Events)/time.Since(start).Seconds())
	return hwm, nil
}

// hwm returns the high watermark of every partition of topic.
func (r *runner) hwm(ctx context.Context, topic string) (map[int]int64, error) {
	offs, err := r.admin.ListOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(offs))
	for p, o := range offs {
		out[p] = o.Last
	}
	return out, nil
}

// count returns the number of retained records of topic.
func (r *runner) count(ctx context.Context, topic string) (int64, error) {
	offs, err := r.admin.ListOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range offs {
		n += o.Last - o.First
	}
	return n, nil
}

// profile starts the CPU profile when one was asked for and returns its stop.
func (r *runner) profile() (func(), error) {
	if r.opt.CPUProfile == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(r.opt.CPUProfile); err != nil {
		return nil, fmt.Errorf("loadtest: cpu profile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

var errTimeout = errors.New("loadtest: timed out")

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
