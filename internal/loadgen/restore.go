package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/mvstate"
)

// RestoreOptions shape a restore measurement (`loadgen restore`): a state
// of MVs × Partitions partition entries written to the snapshot topic as one
// checkpoint, an edit log holding HistoryX times the state's bytes of
// records before the checkpoint and Tail records after it, and a restore
// (recovery.Restore into a new durable store, installed as `consumer
// rebuild --from-edit-log` does) timed in a child process of its own, so
// that its peak RSS is the restore's alone.
type RestoreOptions struct {
	MVs        int
	Partitions int
	// HistoryX is the edit log's size before the checkpoint, as a multiple
	// of the snapshot's bytes (0: only the checkpoint's own record).
	HistoryX float64
	// SnapshotRounds is how many complete rounds of snapshots the snapshot
	// topic holds (the older ones superseded, as before compaction).
	SnapshotRounds int
	// Tail is the number of edit-log records after the checkpoint.
	Tail int
	// Runs is the number of restores timed (each in a new child).
	Runs int
	// Brokers, when set, are used instead of an embedded broker.
	Brokers []string
	// CPUProfile, when set, is a path: each run writes a CPU profile of its
	// restore there, with -<run> before the extension.
	CPUProfile string
	// Config supplies client settings; topics and the state dir are the
	// run's own. ConfigPath is the file it was loaded from ("" for the
	// built-in defaults): each child loads it again, with the environment
	// it inherits, so that no setting (a secret least of all) travels on
	// its command line or environment.
	Config     config.Config
	ConfigPath string
	Progress   io.Writer
}

// RestoreRun is one timed restore, measured by the child that ran it.
type RestoreRun struct {
	Seconds       float64 `json:"seconds"`
	EntriesPerSec float64 `json:"entries_per_s"`
	// PeakRSSBytes is the child's peak resident set (VmHWM).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// RSSBytes is its resident set after the restore, with the restored
	// store open and the heap collected: what a service holding this state
	// needs.
	RSSBytes       int64   `json:"rss_bytes"`
	HeapBytes      int64   `json:"heap_bytes"`
	BytesPerEntry  float64 `json:"rss_bytes_per_entry"`
	Entries        int64   `json:"entries"`
	MVs            int     `json:"mvs"`
	TailApplied    int     `json:"tail_applied"`
	FromCheckpoint bool    `json:"from_checkpoint"`
}

// RestoreReport is the outcome of `loadgen restore`.
type RestoreReport struct {
	MVs            int          `json:"mvs"`
	Partitions     int          `json:"partitions"`
	Entries        int64        `json:"entries"`
	SnapshotBytes  int64        `json:"snapshot_bytes"`
	HistoryBytes   int64        `json:"history_bytes"`
	HistoryRecords int64        `json:"history_records"`
	SnapshotRounds int          `json:"snapshot_rounds"`
	Tail           int          `json:"tail"`
	HistoryX       float64      `json:"history_x"`
	Runs           []RestoreRun `json:"runs"`
	// Median of the runs' seconds.
	MedianSeconds float64 `json:"median_seconds"`
	// With a history: the runs of the same state without one (alternating
	// with Runs), their median, and MedianSeconds over it (target ≤ 1.2).
	NoHistoryRuns          []RestoreRun `json:"no_history_runs,omitempty"`
	NoHistoryMedianSeconds float64      `json:"no_history_median_seconds,omitempty"`
	HistoryRatio           float64      `json:"history_ratio,omitempty"`
}

// restoreChildEnv marks the child process and carries its job as JSON.
const restoreChildEnv = "MVREPAIR_LOADGEN_RESTORE_CHILD"

// restoreJob is what the child is told: where its configuration is and
// what the run replaces in it, never a setting's value.
type restoreJob struct {
	ConfigPath        string        `json:"config,omitempty"`
	Brokers           string        `json:"brokers"`
	ReplicationFactor int           `json:"replication_factor"`
	Topics            config.Topics `json:"topics"`
	StateDir          string        `json:"state_dir"`
	Entries           int64         `json:"entries"`
	MVs               int           `json:"mvs"`
	TailWant          int           `json:"tail"`
	Profile           string        `json:"cpuprofile,omitempty"`
}

// config is the child's configuration: the run's file and environment,
// with the run's brokers, topics and state dir.
func (j restoreJob) config() (*config.Config, error) {
	cfg, _, err := config.LoadWithWarnings(j.ConfigPath, os.Environ())
	if err != nil {
		return nil, err
	}
	cfg.Kafka.Brokers, cfg.Kafka.ReplicationFactor, cfg.Kafka.Topics, cfg.State.Dir = j.Brokers, j.ReplicationFactor, j.Topics, j.StateDir
	return cfg, nil
}

// Restore measures restores of a generated state (see RestoreOptions).
// With a history (HistoryX > 0) the same state is also written without
// one, on topics of its own on the same broker, and the runs alternate
// between the two: RestoreReport.HistoryRatio compares them in one run.
func Restore(ctx context.Context, opt RestoreOptions) (*RestoreReport, error) {
	if opt.MVs <= 0 || opt.Partitions <= 0 || opt.HistoryX < 0 || opt.Tail < 0 || opt.SnapshotRounds < 0 || opt.Runs < 0 {
		return nil, fmt.Errorf("%w: --mvs and --partitions must be positive; --history-x, --tail, --snapshot-rounds and --runs not negative", ErrOptions)
	}
	opt.SnapshotRounds = max(opt.SnapshotRounds, 1)
	opt.Runs = max(opt.Runs, 1)
	tmp, err := os.MkdirTemp("", "loadgen-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cfg := opt.Config
	brokers := opt.Brokers
	if len(brokers) == 0 {
		br, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0"})
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		defer br.Close()
		brokers = []string{br.Addr()}
		cfg.Kafka.ReplicationFactor = 1
	}
	cfg.Kafka.Brokers = strings.Join(brokers, ",")
	cfg.State.Dir = tmp
	rep := &RestoreReport{MVs: opt.MVs, Partitions: opt.Partitions, Entries: int64(opt.MVs) * int64(opt.Partitions),
		SnapshotRounds: opt.SnapshotRounds, Tail: opt.Tail, HistoryX: opt.HistoryX}
	withHist, err := writeRestoreTopics(ctx, cfg, opt, rep)
	if err != nil {
		return nil, err
	}
	var baseline config.Topics
	if opt.HistoryX > 0 {
		noHist := opt
		noHist.HistoryX = 0
		if baseline, err = writeRestoreTopics(ctx, cfg, noHist, &RestoreReport{}); err != nil {
			return nil, err
		}
	}
	job := restoreJob{ConfigPath: opt.ConfigPath, Brokers: cfg.Kafka.Brokers, ReplicationFactor: cfg.Kafka.ReplicationFactor,
		Entries: rep.Entries, MVs: opt.MVs, TailWant: opt.Tail}
	for i := 1; i <= opt.Runs; i++ {
		// The baseline first in odd runs, second in even ones.
		order := []bool{false, true}
		if i%2 == 0 {
			order = []bool{true, false}
		}
		for _, base := range order {
			if base && opt.HistoryX == 0 {
				continue
			}
			job.Topics, job.StateDir, job.Profile = withHist, fmt.Sprintf("%s/state-%d", tmp, i), ""
			name := "run"
			if base {
				job.Topics, job.StateDir, name = baseline, job.StateDir+"-base", "no-history run"
			} else if opt.CPUProfile != "" {
				job.Profile = profilePath(opt.CPUProfile, strconv.Itoa(i))
			}
			run, err := runRestoreChild(ctx, job)
			if err != nil {
				return rep, fmt.Errorf("%s %d: %w", name, i, err)
			}
			_ = os.RemoveAll(job.StateDir)
			progressf(opt.Progress, "restore: %s %d: %.2f s (%.0f entries/s), peak RSS %d MB, RSS after %d MB (%.0f bytes/entry)",
				name, i, run.Seconds, run.EntriesPerSec, run.PeakRSSBytes>>20, run.RSSBytes>>20, run.BytesPerEntry)
			if base {
				rep.NoHistoryRuns = append(rep.NoHistoryRuns, *run)
			} else {
				rep.Runs = append(rep.Runs, *run)
			}
		}
	}
	rep.MedianSeconds = medianSeconds(rep.Runs)
	if len(rep.NoHistoryRuns) > 0 {
		rep.NoHistoryMedianSeconds = medianSeconds(rep.NoHistoryRuns)
		rep.HistoryRatio = rep.MedianSeconds / rep.NoHistoryMedianSeconds
	}
	return rep, nil
}

func medianSeconds(runs []RestoreRun) float64 {
	var secs []float64
	for _, r := range runs {
		secs = append(secs, r.Seconds)
	}
	return median(secs)
}

// writeRestoreTopics creates topics of their own and writes the generated
// state, history and tail to them.
func writeRestoreTopics(ctx context.Context, cfg config.Config, opt RestoreOptions, rep *RestoreReport) (config.Topics, error) {
	id := "loadgen-" + runID()
	cfg.Kafka.Topics = config.Topics{Input: id + "-input", Catalog: id + "-catalog", EditLog: id + "-edit-log",
		DLQ: id + "-dlq", Snapshots: id + "-snapshots"}
	k, err := service.OpenKafka(ctx, &cfg, zerolog.Nop())
	if err != nil {
		return cfg.Kafka.Topics, err
	}
	start := time.Now()
	err = generateRestoreState(ctx, k.Producer, cfg.Kafka.Topics, opt, rep)
	k.Close()
	if err != nil {
		return cfg.Kafka.Topics, fmt.Errorf("generate: %w", err)
	}
	progressf(opt.Progress, "restore: wrote %d MVs x %d partitions (%d MB of snapshots x %d rounds), %d history records (%d MB), %d tail records in %s",
		opt.MVs, opt.Partitions, rep.SnapshotBytes>>20, opt.SnapshotRounds, rep.HistoryRecords, rep.HistoryBytes>>20, opt.Tail, since(start))
	return cfg.Kafka.Topics, nil
}

// restoreMV returns MV i of the generated state: one base table of its
// own, partitions p000000.. at version v.
func restoreMV(i int64, partitions int, v int64) *mvstate.MV {
	table := 100_000 + i
	m := &mvstate.MV{DBID: 1, MVID: i, DBName: "d", MVName: "mv" + strconv.FormatInt(i, 10), Active: true,
		BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: table}},
		VersionMap: mvstate.VersionMap{table: make(mvstate.PartitionMap, partitions)}}
	for p := range partitions {
		m.VersionMap[table][partName(p)] = mvstate.NewBasePartitionInfo(int64(p+1), v, 1_700_000_000_000+v)
	}
	return m
}

// repairRecord is an mv_version_repaired record of MV i's partition p
// moving from version v to v+1.
func repairRecord(jid, i int64, p int, v int64) *editlog.Record {
	table := 100_000 + i
	bt := mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: table}
	name := partName(p)
	return &editlog.Record{JournalID: jid, Epoch: 1, Op: editlog.OpVersionRepaired, At: 1_700_000_000_000 + jid,
		MV: editlog.MVRef{DBID: 1, MVID: i}, BaseTable: &bt,
		Partitions:        mvstate.PartitionMap{name: mvstate.NewBasePartitionInfo(int64(p+1), v+1, 1_700_000_000_000+v+1)},
		Previous:          mvstate.PartitionMap{name: mvstate.NewBasePartitionInfo(int64(p+1), v, 1_700_000_000_000+v)},
		MVLastRefreshTime: 1_700_000_000_000 + jid,
		Causes:            []editlog.Cause{{EventID: "e" + strconv.FormatInt(jid, 10), Topic: "input", Partition: 0, Offset: jid}}}
}

// generateRestoreState writes the history, the checkpoint's record, the
// snapshot rounds with their markers, and the tail.
func generateRestoreState(ctx context.Context, p *kafkaio.Producer, t config.Topics, opt RestoreOptions, rep *RestoreReport) error {
	const version = 5
	pub := newChunkPublisher(ctx, p)
	// The snapshot rounds first (their bytes size the history).
	for round := 1; round <= opt.SnapshotRounds; round++ {
		var buf []byte
		for i := int64(1); i <= int64(opt.MVs); i++ {
			buf = editlog.AppendSnapshot(buf[:0], editlog.MVSnapshot{JournalID: 1, Epoch: 1, MV: restoreMV(i, opt.Partitions, version)})
			if round == 1 {
				rep.SnapshotBytes += int64(len(buf))
			}
			if err := pub.add(kafkaio.Message{Topic: t.Snapshots, Key: []byte(fmt.Sprintf("1:%d", i)), Value: slices.Clone(buf)}); err != nil {
				return err
			}
		}
	}
	// The edit log: history records, then the checkpoint's own record.
	jid := int64(0)
	var enc []byte
	for rep.HistoryBytes < int64(opt.HistoryX*float64(rep.SnapshotBytes)) {
		jid++
		i := 1 + (jid-1)%int64(opt.MVs)
		var err error
		r := repairRecord(jid, i, int((jid-1)/int64(opt.MVs))%opt.Partitions, version-1)
		if enc, err = editlog.Encode(r); err != nil {
			return err
		}
		rep.HistoryBytes += int64(len(enc))
		rep.HistoryRecords++
		if err := pub.add(editLogMessage(t.EditLog, r, enc)); err != nil {
			return err
		}
	}
	jid++
	cpRec := repairRecord(jid, 1, 0, version-1)
	enc, err := editlog.Encode(cpRec)
	if err != nil {
		return err
	}
	if err := pub.add(editLogMessage(t.EditLog, cpRec, enc)); err != nil {
		return err
	}
	marker := editlog.Checkpoint{JournalID: jid, Epoch: 1, EditLogOffset: jid - 1, MVs: opt.MVs, At: time.Now().UnixMilli()}
	if err := pub.add(kafkaio.Message{Topic: t.Snapshots, Key: []byte(editlog.CheckpointKey), Value: editlog.AppendCheckpoint(nil, marker)}); err != nil {
		return err
	}
	// The tail: each MV's partitions moved one version on, in turn (and on
	// again when the tail is longer than the state).
	for n := range opt.Tail {
		jid++
		i := 1 + int64(n)%int64(opt.MVs)
		round := n / opt.MVs
		r := repairRecord(jid, i, round%opt.Partitions, version+int64(round/opt.Partitions))
		if enc, err = editlog.Encode(r); err != nil {
			return err
		}
		if err := pub.add(editLogMessage(t.EditLog, r, enc)); err != nil {
			return err
		}
	}
	return pub.flush()
}

func editLogMessage(topic string, r *editlog.Record, value []byte) kafkaio.Message {
	return kafkaio.Message{Topic: topic, Key: []byte(r.Key()), Value: value,
		Headers: []kafkaio.Header{{Key: editlog.HeaderJournalID, Value: []byte(r.JournalHeader())}}}
}

// chunkPublisher publishes messages in chunks of about 1 MiB.
type chunkPublisher struct {
	ctx   context.Context
	p     *kafkaio.Producer
	msgs  []kafkaio.Message
	bytes int
}

func newChunkPublisher(ctx context.Context, p *kafkaio.Producer) *chunkPublisher {
	return &chunkPublisher{ctx: ctx, p: p}
}

func (c *chunkPublisher) add(m kafkaio.Message) error {
	// Messages of different topics are published in order of arrival: a
	// topic change flushes.
	if len(c.msgs) > 0 && c.msgs[0].Topic != m.Topic {
		if err := c.flush(); err != nil {
			return err
		}
	}
	c.msgs = append(c.msgs, m)
	c.bytes += len(m.Value)
	if c.bytes >= 1<<20 || len(c.msgs) >= 1000 {
		return c.flush()
	}
	return nil
}

func (c *chunkPublisher) flush() error {
	if len(c.msgs) == 0 {
		return nil
	}
	err := c.p.Publish(c.ctx, c.msgs...)
	c.msgs, c.bytes = c.msgs[:0], 0
	return err
}

// runRestoreChild runs one restore in a new process (this executable,
// told by restoreChildEnv) and returns what it measured.
func runRestoreChild(ctx context.Context, job restoreJob) (*RestoreRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), restoreChildEnv+"="+string(b))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("restore child: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var run RestoreRun
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		return nil, fmt.Errorf("restore child printed %q: %w", stdout.String(), err)
	}
	return &run, nil
}

// RunRestoreChild is the child side of Restore: when this process was
// started as a restore child it runs the restore, prints its RestoreRun as
// JSON on stdout and returns true (the caller exits, with status 1 when err
// is set). Otherwise it returns false and does nothing.
func RunRestoreChild(ctx context.Context, stdout io.Writer) (bool, error) {
	raw, ok := os.LookupEnv(restoreChildEnv)
	if !ok {
		return false, nil
	}
	var job restoreJob
	if err := json.Unmarshal([]byte(raw), &job); err != nil {
		return true, fmt.Errorf("restore child: bad job: %w", err)
	}
	run, err := restoreOnce(ctx, job)
	if err != nil {
		return true, err
	}
	return true, json.NewEncoder(stdout).Encode(run)
}

// restoreOnce is one restore as `consumer rebuild --from-edit-log` does it:
// a new store built beside the (absent) live one, recovery.Restore, Install.
func restoreOnce(ctx context.Context, job restoreJob) (*RestoreRun, error) {
	cfg, err := job.config()
	if err != nil {
		return nil, err
	}
	k, err := service.OpenKafka(ctx, cfg, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	defer k.Close()
	d, err := store.LockDir(job.StateDir, store.Options{})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if job.Profile != "" {
		f, err := os.Create(job.Profile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	nw, err := d.Build(ctx)
	if err != nil {
		return nil, err
	}
	defer nw.Close(context.Background(), false)
	rep, err := recovery.Restore(ctx, nw, k.SnapshotSource(zerolog.Nop()), k.EditLogSource(zerolog.Nop()), recovery.Options{})
	if err != nil {
		return nil, err
	}
	if _, err := d.Install(ctx, nw); err != nil {
		return nil, err
	}
	took := time.Since(start)
	st := nw.State()
	if st.Len() != job.MVs || st.Entries() != int(job.Entries) || rep.Applied != job.TailWant {
		return nil, fmt.Errorf("restored %d MVs, %d entries, %d tail records; want %d, %d, %d",
			st.Len(), st.Entries(), rep.Applied, job.MVs, job.Entries, job.TailWant)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, hwm, err := procRSS()
	if err != nil {
		return nil, err
	}
	run := &RestoreRun{Seconds: took.Seconds(), EntriesPerSec: float64(job.Entries) / took.Seconds(),
		PeakRSSBytes: hwm, RSSBytes: rss, HeapBytes: int64(ms.HeapAlloc), Entries: job.Entries, MVs: st.Len(),
		TailApplied: rep.Applied, FromCheckpoint: rep.Checkpoint != nil}
	run.BytesPerEntry = float64(rss) / float64(job.Entries)
	return run, nil
}

// procRSS reads VmRSS and VmHWM of this process (Linux).
func procRSS() (rss, hwm int64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, fmt.Errorf("resident set: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("resident set: %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("resident set: VmRSS/VmHWM not found in /proc/self/status")
	}
	return rss, hwm, sc.Err()
}
