package faulttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// TestServiceChild is the service in a child process; it is skipped unless
// a fault test started it (testkit.StartChild).
func TestServiceChild(t *testing.T) { testkit.RunChild(t) }

// detectWithin is how soon after a fault that stops the service /readyz
// must say so: the stall timeout (a full disk shows after it) plus room
// for a loaded machine. A broker that is down or frozen shows sooner (the
// broker is pinged every second, with a 3s deadline).
func detectWithin(cfg *config.Config) time.Duration { return cfg.Health.StallTimeout + 5*time.Second }

// faultConfig is the configuration of one fault test, its topics created.
func faultConfig(e *testkit.Env, name string) *config.Config {
	cfg := e.Config(name)
	e.EnsureTopics(cfg)
	return cfg
}

// withStateDir returns cfg with a state dir of its own (one per instance).
func withStateDir(t *testing.T, cfg *config.Config, name string) *config.Config {
	c := *cfg
	c.State.Dir = filepath.Join(t.TempDir(), name)
	return &c
}

// brokerKind names the broker in the measurement lines.
func brokerKind(e *testkit.Env) string {
	if e.External {
		return "external"
	}
	return "embedded"
}

// report logs one measurement line: "FAULTTEST fault=NAME key=value ...",
// durations in milliseconds (keys ending in _ms).
func report(t *testing.T, e *testkit.Env, cfg *config.Config, fault string, kv ...any) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "FAULTTEST fault=%s broker=%s", fault, brokerKind(e))
	for i := 0; i+1 < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case time.Duration:
			fmt.Fprintf(&b, " %s=%d", kv[i], v.Milliseconds())
		default:
			fmt.Fprintf(&b, " %s=%v", kv[i], v)
		}
	}
	fmt.Fprintf(&b, " session_timeout=%s heartbeat=%s stall_timeout=%s retry_max_elapsed=%s",
		cfg.Kafka.SessionTimeout, cfg.Kafka.HeartbeatInterval, cfg.Health.StallTimeout, cfg.Retry.MaxElapsedTime)
	t.Log(b.String())
}

// Workload: MVs over native tables and compaction events chaining each
// partition's version v → v+1, so that one lost event leaves its partition
// behind for good and the final state shows it.

const (
	dbID = 10001
	t0   = int64(1732300000000)
)

type workload struct {
	tables []int64
	parts  int
	mvs    []*mvstate.MV
	cur    map[int64][]int64 // table → partition → current version
	seq    int64
	n      int
	rng    *mrand.Rand
}

func partName(p int) string           { return fmt.Sprintf("p%03d", p) }
func partID(table int64, p int) int64 { return table*1000 + int64(p) }

// newWorkload builds 4 MVs over 3 tables of 20 partitions; MV i reads
// tables i and i+1 (mod 3), every partition at version 1.
func newWorkload(t *testing.T) *workload {
	w := &workload{parts: 20, cur: map[int64][]int64{}, rng: testkit.Rand(t)}
	const nTables, nMVs = 3, 4
	for i := range nTables {
		id := int64(20001 + i)
		w.tables = append(w.tables, id)
		w.cur[id] = slices.Repeat([]int64{1}, w.parts)
	}
	for i := range nMVs {
		m := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: int64(50001 + i), MVName: fmt.Sprintf("mv_%d", i),
			Active: i%2 == 0, LastRefreshTime: t0, VersionMap: mvstate.VersionMap{}}
		for _, ti := range []int{i % nTables, (i + 1) % nTables} {
			table := w.tables[ti]
			m.BaseTables = append(m.BaseTables, mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID,
				TableID: table, DBName: "sales", TableName: fmt.Sprintf("t%d", table)})
			pm := mvstate.PartitionMap{}
			for p := range w.parts {
				pm[partName(p)] = mvstate.NewBasePartitionInfo(partID(table, p), 1, t0)
			}
			m.VersionMap[table] = pm
		}
		w.mvs = append(w.mvs, m)
	}
	return w
}

func encode(t testing.TB, topic string, ev events.Event) kafkaio.Message {
	t.Helper()
	b, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return kafkaio.Message{Topic: topic, Key: []byte(events.Key(ev)), Value: b}
}

// catalog returns the catalog records of the workload's MVs.
func (w *workload) catalog(t testing.TB, topic string) []kafkaio.Message {
	out := make([]kafkaio.Message, len(w.mvs))
	for i, m := range w.mvs {
		out[i] = encode(t, topic, &events.MVUpserted{EventID: fmt.Sprintf("upsert-%d", m.MVID), MV: m})
	}
	return out
}

// badEvery makes every badEvery-th input record malformed (not JSON): it
// belongs on the DLQ, and nothing else does.
const badEvery = 97

// next returns the next input record: a compaction of one or two random
// partitions of a random table, or a malformed record.
func (w *workload) next(t testing.TB, topic string) kafkaio.Message {
	w.n++
	table := w.tables[w.rng.IntN(len(w.tables))]
	if w.n%badEvery == 0 {
		return kafkaio.Message{Topic: topic, Key: []byte(fmt.Sprintf("%d:%d", dbID, table)),
			Value: []byte(fmt.Sprintf(`{"kind":"partition_version_changed","bad":%d`, w.n))}
	}
	w.seq++
	at := t0 + 1000 + w.seq
	ev := &events.PartitionVersionChanged{EventID: fmt.Sprintf("COMPACTION_%d-%d-%d", dbID, table, w.seq),
		Source: "compaction", DBID: dbID, TableID: table, TableName: fmt.Sprintf("t%d", table), TableType: "cloud_native",
		EmittedAt: at + 5}
	for _, p := range w.rng.Perm(w.parts)[:1+w.rng.IntN(2)] {
		v := w.cur[table][p]
		w.cur[table][p] = v + 1
		ev.Partitions = append(ev.Partitions, events.PartitionRepair{PartitionID: partID(table, p), PartitionName: partName(p),
			LastVersion: v, NewVersion: v + 1, NewVersionTime: at})
	}
	return encode(t, topic, ev)
}

// load publishes input in small chunks at a steady pace until stopped: the
// stream that goes on while a fault happens. Publishing blocks while the
// broker is away and goes on when it is back (testkit's Publish retries).
type load struct {
	t     *testing.T
	stop  chan struct{}
	done  chan struct{}
	err   error
	mu    sync.Mutex
	sent  []kafkaio.Message
	chunk int
}

// loadChunk records every loadEvery: 100 events a second.
const (
	loadChunk = 10
	loadEvery = 100 * time.Millisecond
)

// startLoad starts publishing w's next records to topic.
func startLoad(t *testing.T, e *testkit.Env, w *workload, topic string) *load {
	l := &load{t: t, stop: make(chan struct{}), done: make(chan struct{}), chunk: loadChunk}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(loadEvery)
		defer tick.Stop()
		for {
			msgs := make([]kafkaio.Message, l.chunk)
			for i := range msgs {
				msgs[i] = w.next(t, topic)
			}
			if err := e.TryPublish(msgs...); err != nil {
				l.err = err
				return
			}
			l.mu.Lock()
			l.sent = append(l.sent, msgs...)
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-l.stop:
		default:
			close(l.stop)
		}
		<-l.done
	})
	return l
}

// Sent returns how many records were published so far.
func (l *load) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent)
}

// Stop ends the stream and returns every record published, in order.
func (l *load) Stop() []kafkaio.Message {
	l.t.Helper()
	close(l.stop)
	<-l.done
	if l.err != nil {
		l.t.Fatalf("publishing the input: %v", l.err)
	}
	return l.sent
}

// committed returns the sum of the group's committed input offsets.
func committed(e *testkit.Env, cfg *config.Config) (int64, error) {
	c, err := e.Admin.CommittedOffsets(testkit.Ctx(e.T, 10*time.Second), cfg.Kafka.GroupID, []string{cfg.Kafka.Topics.Input})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range c[cfg.Kafka.Topics.Input] {
		n += max(o, 0)
	}
	return n, nil
}

// waitApplying waits until the group commits input offsets beyond those it
// held at the first look (which it takes at or after since, as soon as the
// broker answers): the writer is applying input. It returns when it saw
// that. check runs before every look.
func waitApplying(e *testkit.Env, cfg *config.Config, check func() error) time.Time {
	e.T.Helper()
	base := int64(-1)
	var at time.Time
	testkit.Eventually(e.T, testkit.WaitLong, func() error {
		if check != nil {
			if err := check(); err != nil {
				e.T.Fatal(err)
			}
		}
		n, err := committed(e, cfg)
		if err != nil {
			return err
		}
		if base < 0 {
			base = n
			return fmt.Errorf("committed %d input records so far; waiting for more", n)
		}
		if n <= base {
			return fmt.Errorf("no input committed beyond %d", base)
		}
		at = time.Now()
		return nil
	})
	return at
}

// checkDLQ fails the test if the DLQ holds anything but the malformed input.
func checkDLQ(t *testing.T, e *testkit.Env, cfg *config.Config) {
	t.Helper()
	n := 0
	for _, d := range e.ReadTopic(cfg.Kafka.Topics.DLQ) {
		n++
		if r, _ := kafkaio.HeaderValue(d.Headers, pipeline.HeaderDLQReason); r != string(events.ReasonInvalidJSON) {
			src, _ := kafkaio.HeaderValue(d.Headers, pipeline.HeaderSourceOffset)
			t.Errorf("the DLQ holds a valid event (reason %q, source offset %s): only the malformed input belongs there", r, src)
		}
	}
	if n == 0 {
		t.Error("the DLQ is empty: the malformed input was not dead-lettered")
	}
}

// logLine is one JSON line of a child's log.
type logLine struct {
	at     time.Time
	msg    string
	fields map[string]any
}

// logLines returns the JSON lines of the log at path whose message
// contains substr, in order.
func logLines(t *testing.T, path, substr string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	defer f.Close()
	var out []logLine
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if bytes.HasPrefix(line, []byte("{")) && bytes.Contains(line, []byte(substr)) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil {
				msg, _ := m["message"].(string)
				ts, _ := m["time"].(string)
				at, perr := time.Parse(logging.TimeLayout, ts)
				if strings.Contains(msg, substr) && perr == nil {
					out = append(out, logLine{at: at, msg: msg, fields: m})
				}
			}
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
	}
}

// waitLogLine waits for a log line whose message contains substr, logged
// at or after since, and returns it.
func waitLogLine(t *testing.T, path, substr string, since time.Time, check func() error) logLine {
	t.Helper()
	var found logLine
	testkit.Eventually(t, testkit.WaitLong, func() error {
		if check != nil {
			if err := check(); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range logLines(t, path, substr) {
			// Log times have millisecond digits, cut off.
			if !l.at.Before(since.Truncate(time.Millisecond)) {
				found = l
				return nil
			}
		}
		return fmt.Errorf("no log line %q since %s in %s", substr, since.Format("15:04:05.000"), filepath.Base(path))
	})
	return found
}

// metric scrapes one sample of an instance's /metrics: the value of the
// series whose name and labels start with series (say
// `mvrepair_stalled{component="writer"}`), and whether there is one.
func metric(addr, series string) (float64, bool, error) {
	c := http.Client{Timeout: answerTimeout}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, series) {
			continue
		}
		rest := strings.TrimPrefix(line, series)
		if rest == "" || (rest[0] != ' ' && rest[0] != '}' && rest[0] != ',' && rest[0] != '{') {
			continue // a longer name
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil, err
	}
	return 0, false, s.Err()
}

// checkJournal verifies the edit log of cfg as a reader of §4.7 sees it:
// records of a frozen writer that a newer writer superseded (a record of
// epoch e with journal id j, when a record of a newer epoch has a journal
// id at or below j) are dropped, as a rebuild drops them; the rest must
// keep the edit-log contract (testkit.CheckEditLog: no gap, redeliveries
// byte-identical). It returns the journal and the number of dropped
// records.
func checkJournal(t *testing.T, e *testkit.Env, cfg *config.Config) (testkit.Journal, int) {
	t.Helper()
	msgs := e.ReadTopic(cfg.Kafka.Topics.EditLog)
	recs := make([]*editlog.Record, len(msgs))
	for i, m := range msgs {
		r, err := editlog.Decode(m.Value)
		if err != nil {
			t.Fatalf("edit log offset %d: undecodable: %v", m.Offset, err)
		}
		recs[i] = r
	}
	// lowest[e]: the lowest journal id among the records of epochs above e.
	epochs := map[int64]int64{} // epoch → its lowest journal id
	for _, r := range recs {
		if lo, ok := epochs[r.Epoch]; !ok || r.JournalID < lo {
			epochs[r.Epoch] = r.JournalID
		}
	}
	order := slices.Sorted(maps.Keys(epochs))
	lowest := map[int64]int64{}
	above := int64(math.MaxInt64)
	for i := len(order) - 1; i >= 0; i-- {
		lowest[order[i]] = above
		above = min(above, epochs[order[i]])
	}
	var kept []kafkaio.Message
	dropped := 0
	for i, r := range recs {
		if lowest[r.Epoch] <= r.JournalID {
			dropped++
			continue
		}
		kept = append(kept, msgs[i])
	}
	return testkit.CheckEditLog(t, kept), dropped
}

// checkFinalStates is testkit's CheckFinalState for a run with several
// instances, one of which may have been a frozen writer whose late records
// reached the edit log: every instance's state dir holds the state of a
// crash-free run and the journal id of the edit log (read as checkJournal
// reads it), a rebuild of the whole edit log (which drops the superseded
// records) and a restore from the latest checkpoint give the same state,
// every malformed record is on the DLQ, every input record committed. It
// returns the number of superseded records.
func checkFinalStates(t *testing.T, e *testkit.Env, cfg *config.Config, stateDirs []string, catalog, input []kafkaio.Message) int {
	t.Helper()
	tp := cfg.Kafka.Topics
	if err := e.CaughtUp(cfg); err != nil {
		t.Fatalf("committed offsets are not the high watermarks: %v", err)
	}
	want := testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), catalog, input)
	j, dropped := checkJournal(t, e, cfg)
	var live string
	for _, dir := range stateDirs {
		st := testkit.OpenStore(t, dir)
		got := testkit.ExportOf(t, st)
		testkit.SameText(t, "final state in "+dir+" vs a crash-free run", testkit.MVsOf(t, got), want)
		if st.JournalID() != j.Last() {
			t.Fatalf("%s: journal id %d, the edit log's last (superseded records dropped) %d", dir, st.JournalID(), j.Last())
		}
		if live == "" {
			live = got
		}
	}
	rebuilt, rep := e.RebuildFromKafka(cfg)
	if len(rep.Gaps) > 0 {
		t.Errorf("rebuild found gaps %v", rep.Gaps)
	}
	if len(rep.Fenced) != dropped {
		t.Errorf("rebuild fenced %d records, superseded by a newer epoch: %d", len(rep.Fenced), dropped)
	}
	testkit.SameText(t, "state rebuilt from the edit log vs the live state", testkit.ExportOf(t, rebuilt.State()), live)
	testkit.SameText(t, "state restored from the latest checkpoint and the edit log vs the live state",
		testkit.ExportOf(t, e.RestoreFromKafka(cfg, nil)), live)
	testkit.CheckDeadLettered(t, e.ReadTopic(tp.Input), e.ReadTopic(tp.DLQ))
	t.Logf("edit log: %d records, %d distinct journal ids, %d superseded by a newer writer", j.Total+dropped, len(j.Records), dropped)
	return dropped
}
