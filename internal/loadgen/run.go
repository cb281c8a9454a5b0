package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/service"
)

// Defaults, sized so that the four default cases run in about three
// minutes on a 2-core machine.
const (
	DefaultEvents      = 100000
	DefaultRounds      = 3
	DefaultRate        = TargetRate
	DefaultDuration    = 10 * time.Second
	DefaultTailMaxWait = 100 * time.Millisecond
)

// Quick defaults: a smoke run of every case in seconds (the figures mean
// little). The cases keep their MVs, tables and input partitions, but each
// MV records at most QuickPartitions partitions (seeding a catalog of 2000
// MVs with 50 partitions each is most of a quick run, ten times that under
// the race detector).
const (
	QuickEvents     = 3000
	QuickRounds     = 2
	QuickRate       = 1000
	QuickDuration   = time.Second
	QuickPartitions = 10
)

// Errors callers branch on.
var (
	// ErrOptions: the options cannot run (a usage error).
	ErrOptions = errors.New("loadgen: invalid options")
	// ErrUnknownCase: a case name that is not one of CaseNames (a usage
	// error).
	ErrUnknownCase = errors.New("loadgen: unknown case")
	// ErrTimeout: a pipeline did not finish a phase in time.
	ErrTimeout = errors.New("loadgen: timed out")
)

// Options configures a run. Zero values take the defaults (the Quick ones
// when Quick is set); Config's client, batch and writer settings are used
// as they are (with Batch and BatchWait overriding batch.max_events and
// batch.max_wait when set).
type Options struct {
	// Cases run one after the other; nil runs DefaultCases.
	Cases []Case
	// Quick makes the defaults of Events, Rounds, Rate and Duration the
	// Quick ones, and caps the cases' recorded partitions at QuickPartitions.
	Quick bool
	// Events is N, the backlog each throughput round produces and both
	// pipelines consume.
	Events int
	// Rounds is the number of throughput rounds (the rates reported are the
	// median over the rounds).
	Rounds int
	// Rate is R, events per second in the latency phases.
	Rate int
	// Duration is how long each latency phase produces.
	Duration time.Duration
	// Batch overrides batch.max_events (and the baseline's batch size).
	Batch int
	// BatchWait overrides batch.max_wait.
	BatchWait time.Duration
	// Brokers are real brokers to run against; empty starts an embedded
	// one per case.
	Brokers []string
	// Config is the base configuration (config.Default() when nil). A case
	// replaces the state dir, brokers, topic names, group id and
	// kafka.partitions.
	Config *config.Config
	// ServiceLog receives the service's logs at Config.Log.Level; nil
	// discards them (they are still formatted, as in production).
	ServiceLog io.Writer
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// CPUProfile, when set, is a path: each case writes a CPU profile of its
	// repair throughput phase (pipeline and, when embedded, the broker) to
	// the path with "-<case>" inserted before the extension.
	CPUProfile string
	// TailMaxWait is the fetch MaxWait of the latency tails.
	TailMaxWait time.Duration
	// SkipLatency skips the latency phases.
	SkipLatency bool
	// Transports, when set, runs every case once per transport (see
	// Transports), one after the other, each on an embedded broker with that
	// listener; nil runs the configuration's (plaintext on the embedded
	// broker). Not with Brokers.
	Transports []string
	// CheckpointEvery, when positive, alternates the throughput rounds, two
	// by two, between checkpoints every CheckpointEvery edit-log records
	// (checkpoint.max_records; rounds 1, 2, 5, 6, ...) and none (3, 4, ...),
	// and reports the ratio of the two kinds of rounds' repair /
	// pass-through ratios (CaseReport.Checkpoints). Rounds is raised to a
	// multiple of 4.
	CheckpointEvery int64
}

func (o Options) withDefaults() Options {
	events, rounds, rate, dur := DefaultEvents, DefaultRounds, DefaultRate, DefaultDuration
	if o.Quick {
		events, rounds, rate, dur = QuickEvents, QuickRounds, QuickRate, QuickDuration
	}
	if o.Events <= 0 {
		o.Events = events
	}
	if o.Rounds <= 0 {
		o.Rounds = rounds
	}
	if o.CheckpointEvery > 0 {
		o.Rounds = max(4, (o.Rounds+3)/4*4)
	}
	if o.Rate <= 0 {
		o.Rate = rate
	}
	if o.Duration <= 0 {
		o.Duration = dur
	}
	if o.TailMaxWait <= 0 {
		o.TailMaxWait = DefaultTailMaxWait
	}
	if o.Cases == nil {
		o.Cases = DefaultCases()
	}
	if o.Quick {
		o.Cases = slices.Clone(o.Cases)
		for i := range o.Cases {
			if c := &o.Cases[i]; c.Partitions > QuickPartitions {
				c.Partitions = QuickPartitions
				c.Title += fmt.Sprintf(" (--quick: %d partitions)", QuickPartitions)
			}
		}
	}
	return o
}

func (o Options) validate() error {
	if len(o.Cases) == 0 {
		return fmt.Errorf("%w: no case to run", ErrOptions)
	}
	if err := checkTransports(o.Transports, o.Brokers); err != nil {
		return err
	}
	if int64(o.Events)*int64(o.Rounds) > 1<<40 {
		return fmt.Errorf("%w: %d rounds of %d events is too many", ErrOptions, o.Rounds, o.Events)
	}
	for _, c := range o.Cases {
		if err := c.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Run measures every case of opt, one after the other, and returns the
// report. A case that fails is reported (CaseReport.Error) and the next one
// runs; the error returned then names the failed cases, next to the report
// of everything measured. A canceled ctx stops the run.
func Run(ctx context.Context, opt Options) (*Report, error) {
	opt = opt.withDefaults()
	if err := opt.validate(); err != nil {
		return nil, err
	}
	base := config.Default()
	if opt.Config != nil {
		base = *opt.Config
	}
	rep := &Report{Machine: machine(), Settings: settingsOf(opt, &base)}
	var failed []string
	transports := opt.Transports
	if len(transports) == 0 {
		transports = []string{""}
	}
	n := len(opt.Cases) * len(transports)
	for i, c := range opt.Cases {
		for j, tr := range transports {
			name := caseName(c.Name, tr)
			progressf(opt.Progress, "case %d/%d: %s (%s)", i*len(transports)+j+1, n, name, c.Title)
			cr, err := runCase(ctx, opt, c, tr)
			if err != nil {
				cr.Error = err.Error()
				failed = append(failed, name)
				progressf(opt.Progress, "%s: FAILED: %v", name, err)
			}
			rep.Cases = append(rep.Cases, *cr)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	if len(failed) > 0 {
		return rep, fmt.Errorf("loadgen: case %s failed", strings.Join(failed, ", "))
	}
	return rep, nil
}

func progressf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "loadgen: "+format+"\n", args...)
	}
}

// caseName is a case's name with its transport, when one was chosen.
func caseName(name, transport string) string {
	if transport == "" {
		return name
	}
	return name + " [" + transport + "]"
}

// runner holds one case's parts.
type runner struct {
	opt       Options
	c         Case
	transport string // "": the configuration's
	cfg       *config.Config
	log       zerolog.Logger
	dir       string
	broker    *embedded.Broker
	brokers   []string
	admin     *kafkaio.Admin
	producer  *kafkaio.Producer
	wl        *workload
	outTopic  string // the baseline's output
	ptInput   string // the baseline's input in the latency phase
	blGroup   string
	rep       *CaseReport
}

// runCase measures one case. The report is never nil: it holds what was
// measured before an error.
func runCase(ctx context.Context, opt Options, c Case, transport string) (*CaseReport, error) {
	start := time.Now()
	r := &runner{opt: opt, c: c, transport: transport, rep: &CaseReport{Case: c, Transport: transport, LoadAvgStart: loadAvg()}}
	defer func() { r.rep.Seconds = time.Since(start).Seconds() }()
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return r.rep, fmt.Errorf("setup: %w", err)
	}
	if err := r.seedCatalog(ctx); err != nil {
		return r.rep, fmt.Errorf("seed catalog: %w", err)
	}
	if err := r.throughputRounds(ctx); err != nil {
		return r.rep, fmt.Errorf("throughput: %w", err)
	}
	if !r.opt.SkipLatency {
		if err := r.latencyPhase(ctx); err != nil {
			return r.rep, fmt.Errorf("latency: %w", err)
		}
	}
	r.rep.finish(opt)
	r.rep.Seconds = time.Since(start).Seconds()
	r.progress("%s", r.rep.oneLine())
	return r.rep, nil
}

func (r *runner) progress(format string, args ...any) {
	progressf(r.opt.Progress, caseName(r.c.Name, r.transport)+": "+format, args...)
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// setup starts the broker (when embedded), builds the case's
// configuration, creates the topics and the producer.
func (r *runner) setup(ctx context.Context) (err error) {
	if r.dir, err = os.MkdirTemp("", "mvrepair-loadgen-"); err != nil {
		return err
	}
	if err := r.configure(); err != nil {
		return err
	}
	if err := r.startBroker(ctx); err != nil {
		return err
	}
	w := r.opt.ServiceLog
	if w == nil {
		w = io.Discard
	}
	if r.log, err = logging.New(w, r.cfg.Log.Level, r.cfg.Log.Format); err != nil {
		return err
	}
	if err := r.createTopics(ctx); err != nil {
		return err
	}
	if r.producer, err = r.newProducer(); err != nil {
		return err
	}
	r.wl = newWorkload(r.c.Tables, r.c.MVs, r.c.Partitions, r.c.TopicPartitions)
	return nil
}

// startBroker starts an embedded broker, with the case's transport, unless
// real brokers were given; the configuration then names its address.
func (r *runner) startBroker(ctx context.Context) error {
	if len(r.opt.Brokers) > 0 {
		r.brokers = r.opt.Brokers
	} else {
		bc := embedded.Config{Addr: "127.0.0.1:0", DataDir: filepath.Join(r.dir, "kafka")}
		if err := secure(r.transport, r.dir, &bc, r.cfg); err != nil {
			return err
		}
		b, err := embedded.Start(ctx, bc)
		if err != nil {
			return fmt.Errorf("embedded broker: %w", err)
		}
		r.broker, r.brokers = b, []string{b.Addr()}
	}
	r.cfg.Kafka.Brokers = strings.Join(r.brokers, ",")
	if err := r.cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// configure derives the case's configuration from the base one: its own
// state dir, topics and groups, the case's input partitions (the brokers
// come with startBroker).
func (r *runner) configure() error {
	cfg := config.Default()
	if r.opt.Config != nil {
		cfg = *r.opt.Config
	}
	id := runID()
	cfg.State.Dir = filepath.Join(r.dir, "state")
	cfg.Kafka.CreateTopics = true
	cfg.Kafka.Partitions = r.c.TopicPartitions
	prefix := "loadgen-" + id + "-" + r.c.Name + "-"
	t := &cfg.Kafka.Topics
	t.Input, t.Catalog, t.EditLog, t.DLQ, t.Snapshots = prefix+"input", prefix+"catalog", prefix+"edit-log", prefix+"dlq", prefix+"snapshots"
	r.outTopic, r.ptInput = prefix+"passthrough-out", prefix+"passthrough-in"
	cfg.Kafka.GroupID = "mvrepair-loadgen-" + r.c.Name + "-" + id
	r.blGroup = "mvrepair-loadgen-passthrough-" + r.c.Name + "-" + id
	cfg.Kafka.InstanceName = "loadgen"
	if r.opt.Batch > 0 {
		cfg.Batch.MaxEvents = r.opt.Batch
	}
	if r.opt.BatchWait > 0 {
		cfg.Batch.MaxWait = r.opt.BatchWait
	}
	r.cfg = &cfg
	if len(r.opt.Brokers) > 0 {
		r.progress("topics %s* and groups %s, %s stay on the cluster (delete them when done)", prefix, cfg.Kafka.GroupID, r.blGroup)
	}
	return nil
}

// createTopics creates the service's topics (as service.Open would) and the
// baseline's output through this runner's admin, so that its metadata knows
// them.
func (r *runner) createTopics(ctx context.Context) (err error) {
	if r.admin, err = kafkaio.NewAdmin(service.AdminConfig(r.cfg, r.brokers)); err != nil {
		return err
	}
	specs := service.TopicSpecs(r.cfg)
	for _, t := range []string{r.outTopic, r.ptInput} {
		specs = append(specs, kafkaio.TopicSpec{Name: t, Partitions: r.c.TopicPartitions, ReplicationFactor: r.cfg.Kafka.ReplicationFactor})
	}
	return r.admin.EnsureTopics(ctx, specs)
}

// newProducer builds a producer with the service's settings, for the
// input, catalog and pass-through topics: their record limit is the
// broker's default, not the edit log's (service.ProducerConfig's limit also
// bounds the batches a Publish sends to one partition).
func (r *runner) newProducer() (*kafkaio.Producer, error) {
	pc := service.ProducerConfig(r.cfg, r.brokers, zerolog.Nop())
	pc.MaxMessageBytes = kafkaio.DefaultMaxMessageBytes
	return kafkaio.NewProducer(pc)
}

// fetcherConfig is the service's reader configuration.
func (r *runner) fetcherConfig() kafkaio.FetcherConfig {
	return service.FetcherConfig(r.cfg, r.brokers, zerolog.Nop())
}

func (r *runner) close() {
	service.CloseClients(r.producer, r.admin, r.broker)
	if r.dir != "" {
		_ = os.RemoveAll(r.dir)
	}
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

func total(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

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
