package itest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/logging"
	"github.com/mvrepair/mvrepair/internal/metrics"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Deadlines. A correct run meets each condition in well under a second or
// two; the margins are for -race on a loaded 2-core machine and for a real
// broker (whose minimum session timeout is 6s).
const (
	waitLong  = 60 * time.Second
	waitShort = 20 * time.Second
)

// eventually polls cond every 20ms until it returns nil, and fails the test
// with cond's last error once timeout has passed.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testCtx is a context bounded by d and cancelled when the test ends.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// externalBrokers returns KAFKA_BROKERS split on commas (nil when unset).
func externalBrokers() []string {
	var out []string
	for _, b := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// env is one test's broker and clients.
type env struct {
	t        *testing.T
	id       string
	brokers  []string
	external bool

	// The embedded broker (nil when external), its address and data dir so
	// that it can be restarted in place.
	broker     *embedded.Broker
	brokerAddr string
	brokerDir  string

	admin    *kafkaio.Admin
	producer *kafkaio.Producer
	logDir   string
}

// newEnv returns the brokers of one test: a fresh embedded broker with a data
// dir, or the KAFKA_BROKERS cluster.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, id: randomID(), logDir: t.TempDir()}
	t.Cleanup(e.dumpLogsOnFailure)
	if ext := externalBrokers(); len(ext) > 0 {
		e.brokers, e.external = ext, true
	} else {
		e.brokerDir = t.TempDir()
		ctx := testCtx(t, 10*time.Second)
		b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", DataDir: e.brokerDir})
		if err != nil {
			t.Fatalf("start embedded broker: %v", err)
		}
		e.broker, e.brokerAddr = b, b.Addr()
		e.brokers = []string{b.Addr()}
		t.Cleanup(func() { e.broker.Close() })
	}
	var err error
	if e.admin, err = kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: e.brokers, ClientID: "itest-admin"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.admin.Close() })
	return e
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// restartBroker closes the embedded broker, keeps it down for downtime and
// starts it again on the same address and data dir.
func (e *env) restartBroker(downtime time.Duration) {
	t := e.t
	t.Helper()
	if e.broker == nil {
		t.Fatal("restartBroker needs the embedded broker")
	}
	e.broker.Close()
	time.Sleep(downtime) // the outage itself, not a wait for a condition
	eventually(t, waitShort, func() error {
		b, err := embedded.Start(context.Background(), embedded.Config{Addr: e.brokerAddr, DataDir: e.brokerDir})
		if err != nil {
			return err
		}
		e.broker = b
		return nil
	})
}

// config returns a service configuration of its own topics and group on the
// test's brokers, tuned for fast tests.
func (e *env) config(name string) *config.Config {
	t := e.t
	t.Helper()
	c := config.Default()
	id := name + "-" + e.id
	c.Log.Level = logLevel()
	c.State.Dir = filepath.Join(t.TempDir(), "state")
	c.Kafka.Brokers = strings.Join(e.brokers, ",")
	c.Kafka.ClientID = "itest"
	c.Kafka.GroupID = "itest-" + id
	c.Kafka.InstanceName = "itest-" + id
	c.Kafka.Partitions = 3
	c.Kafka.ReplicationFactor = 1
	c.Kafka.Topics = config.Topics{
		Input:   "itest-" + id + "-input",
		Catalog: "itest-" + id + "-catalog",
		EditLog: "itest-" + id + "-edit-log",
		DLQ:     "itest-" + id + "-dlq",
	}
	if e.external {
		// Apache Kafka's group.min.session.timeout.ms defaults to 6s.
		c.Kafka.SessionTimeout = 6 * time.Second
		c.Kafka.HeartbeatInterval = 500 * time.Millisecond
		c.Kafka.RebalanceTimeout = 10 * time.Second
	} else {
		// The embedded broker accepts session timeouts from 1s.
		c.Kafka.SessionTimeout = 2 * time.Second
		c.Kafka.HeartbeatInterval = 200 * time.Millisecond
		c.Kafka.RebalanceTimeout = 5 * time.Second
	}
	c.Kafka.Reader.MaxWait = 50 * time.Millisecond
	c.Batch.MaxEvents = 500
	c.Batch.MaxWait = 5 * time.Millisecond
	c.Retry = config.Retry{InitialInterval: 20 * time.Millisecond, MaxInterval: 500 * time.Millisecond,
		Multiplier: 2, MaxElapsedTime: 4 * time.Second}
	c.HTTP.Addr = "127.0.0.1:0"
	c.ShutdownTimeout = 10 * time.Second
	c.Metrics.LagInterval = time.Second
	if err := c.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return &c
}

func logLevel() string {
	if l := os.Getenv("ITEST_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// ensureTopics creates the configuration's topics (as the service would) and
// the producer the test publishes with.
func (e *env) ensureTopics(cfg *config.Config) {
	t := e.t
	t.Helper()
	ctx := testCtx(t, waitLong)
	if err := e.admin.EnsureTopics(ctx, service.TopicSpecs(cfg)); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	if e.producer == nil {
		p, err := kafkaio.NewProducer(kafkaio.ProducerConfig{Brokers: e.brokers, ClientID: "itest-producer"})
		if err != nil {
			t.Fatal(err)
		}
		e.producer = p
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.Close(ctx)
		})
	}
}

// publish writes msgs in order, retrying the whole set while the broker is
// not ready (a retry can duplicate records, which the tests tolerate).
func (e *env) publish(msgs ...kafkaio.Message) {
	e.t.Helper()
	if err := e.tryPublish(msgs...); err != nil {
		e.t.Fatalf("publish %d messages: %v", len(msgs), err)
	}
}

// tryPublish is publish for goroutines: it reports instead of failing.
func (e *env) tryPublish(msgs ...kafkaio.Message) error {
	deadline := time.Now().Add(waitLong)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := e.producer.Publish(ctx, msgs...)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishPaced publishes msgs in chunks with a pause between them: a stream
// arriving while the service works.
func (e *env) publishPaced(msgs []kafkaio.Message, chunk int, pause time.Duration) error {
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := e.tryPublish(msgs[:n]...); err != nil {
			return err
		}
		msgs = msgs[n:]
		time.Sleep(pause)
	}
	return nil
}

// hwm returns the high watermark of every partition of topic.
func (e *env) hwm(topic string) map[int]int64 {
	t := e.t
	t.Helper()
	var out map[int]int64
	eventually(t, waitShort, func() error {
		offs, err := e.admin.ListOffsets(context.Background(), topic)
		if err != nil {
			return err
		}
		out = map[int]int64{}
		for p, o := range offs {
			out[p] = o.Last
		}
		return nil
	})
	return out
}

// committed returns the group's committed offsets of topic (-1: none).
func (e *env) committed(group, topic string) map[int]int64 {
	t := e.t
	t.Helper()
	var out map[int]int64
	eventually(t, waitShort, func() error {
		c, err := e.admin.CommittedOffsets(context.Background(), group, []string{topic})
		if err != nil {
			return err
		}
		out = c[topic]
		return nil
	})
	return out
}

// caughtUp reports nil once the group committed every record of the input
// and catalog topics. The writer commits input offsets only after the batch
// is durable locally and its edit-log and DLQ records are acknowledged, so
// this also means every journal record is on the edit-log topic.
func (e *env) caughtUp(cfg *config.Config) error {
	ctx := context.Background()
	topics := []string{cfg.Kafka.Topics.Input, cfg.Kafka.Topics.Catalog}
	committed, err := e.admin.CommittedOffsets(ctx, cfg.Kafka.GroupID, topics)
	if err != nil {
		return err
	}
	for _, topic := range topics {
		offs, err := e.admin.ListOffsets(ctx, topic)
		if err != nil {
			return err
		}
		for p, o := range offs {
			if o.Last > 0 && committed[topic][p] != o.Last {
				return fmt.Errorf("%s/%d: committed %d, high watermark %d", topic, p, committed[topic][p], o.Last)
			}
		}
	}
	return nil
}

func (e *env) waitCaughtUp(cfg *config.Config) {
	e.t.Helper()
	eventually(e.t, waitLong, func() error { return e.caughtUp(cfg) })
}

// groupMember returns nil once group is Stable with clientID as its only
// member.
func (e *env) groupMember(group, clientID string) error {
	info, err := e.admin.DescribeGroup(context.Background(), group)
	if err != nil {
		return err
	}
	if info.State != "Stable" || len(info.Members) != 1 || info.Members[0].ClientID != clientID {
		ids := make([]string, len(info.Members))
		for i, m := range info.Members {
			ids[i] = m.ClientID
		}
		return fmt.Errorf("group %s is %s with members %v, want Stable with only %s", group, info.State, ids, clientID)
	}
	return nil
}

// waitGroupEmpty waits until the group has no member (so that its offsets
// can be rewritten).
func (e *env) waitGroupEmpty(group string) {
	e.t.Helper()
	eventually(e.t, waitLong, func() error {
		info, err := e.admin.DescribeGroup(context.Background(), group)
		if err != nil {
			return err
		}
		if info.State != "Empty" && info.State != "Dead" {
			return fmt.Errorf("group %s is %s with %d members", group, info.State, len(info.Members))
		}
		return nil
	})
}

// readTopic reads every record of topic up to the current high watermarks,
// in offset order per partition (partitions in ascending order).
func (e *env) readTopic(topic string) []kafkaio.Message {
	t := e.t
	t.Helper()
	hwm := e.hwm(topic)
	pending := 0
	for _, hw := range hwm {
		if hw > 0 {
			pending++
		}
	}
	byPart := map[int][]kafkaio.Message{}
	if pending > 0 {
		ctx := testCtx(t, waitLong)
		tail, err := kafkaio.NewTopicTail(ctx, kafkaio.FetcherConfig{Brokers: e.brokers, ClientID: "itest-reader",
			MaxWait: 50 * time.Millisecond}, topic, nil)
		if err != nil {
			t.Fatalf("tail %s: %v", topic, err)
		}
		defer tail.Close()
		for pending > 0 {
			m, err := tail.Fetch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("read %s: %v", topic, err)
				}
				continue // a transient read error is returned once; the partition keeps being read
			}
			if m.Offset >= hwm[m.Partition] {
				continue
			}
			byPart[m.Partition] = append(byPart[m.Partition], m)
			if m.Offset+1 == hwm[m.Partition] {
				pending--
			}
		}
	}
	var out []kafkaio.Message
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		out = append(out, byPart[p]...)
	}
	return out
}

// logger returns a logger writing to a file of the test's log dir; the files
// are printed when the test fails.
func (e *env) logger(name, level string) zerolog.Logger {
	t := e.t
	t.Helper()
	f, err := os.Create(filepath.Join(e.logDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	log, err := logging.New(f, level, logging.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// dumpLogsOnFailure prints the tail of every log file of a failed test.
func (e *env) dumpLogsOnFailure() {
	if !e.t.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(e.logDir, "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		e.t.Logf("--- last %d lines of %s ---\n%s", len(lines), filepath.Base(f), strings.Join(lines, "\n"))
	}
}

// instance is an in-process service started with Run.
type instance struct {
	t      *testing.T
	svc    *service.Service
	cancel context.CancelFunc
	done   chan error
	closed bool
}

// startService opens a service on cfg and runs it in the background.
func (e *env) startService(cfg *config.Config, name string) *instance {
	t := e.t
	t.Helper()
	ctx := testCtx(t, waitLong)
	svc, err := service.Open(ctx, cfg, e.logger(name, cfg.Log.Level))
	if err != nil {
		t.Fatalf("open service: %v", err)
	}
	return e.run(svc)
}

// run starts Run on an opened service.
func (e *env) run(svc *service.Service) *instance {
	t := e.t
	rctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, svc: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- svc.Run(rctx) }()
	t.Cleanup(func() {
		if !in.closed {
			in.cancel()
			select {
			case <-in.done:
			case <-time.After(30 * time.Second):
			}
			in.svc.Close()
		}
	})
	return in
}

// stop cancels Run, which must return nil within the shutdown budget, and
// closes the service (its store stays readable in memory).
func (in *instance) stop() {
	t := in.t
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		in.closed = true
		in.svc.Close()
		if err != nil {
			t.Fatalf("Run returned %v after a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
}

// waitActive waits until the instance is the group's active writer.
func (in *instance) waitActive() {
	in.t.Helper()
	eventually(in.t, waitLong, func() error {
		if !in.svc.Active() {
			return errors.New("the service is not the active writer yet")
		}
		return nil
	})
}

// waitApplied waits until the instance's store applied every record of topic
// up to its current high watermarks.
func (e *env) waitApplied(st *mvstate.Store, topic string) {
	e.t.Helper()
	hwm := e.hwm(topic)
	eventually(e.t, waitLong, func() error {
		for p, hw := range hwm {
			if hw > 0 && st.AppliedOffset(topic, p) < hw {
				return fmt.Errorf("%s/%d: applied up to %d of %d", topic, p, st.AppliedOffset(topic, p), hw)
			}
		}
		return nil
	})
}

// ---- state and edit-log checks ----

// exportOf returns the store's canonical export.
func exportOf(t testing.TB, st *mvstate.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.Export(context.Background(), &b); err != nil {
		t.Fatalf("export: %v", err)
	}
	return b.String()
}

// mvsOf drops the journal id from an export: the number of journal records
// depends on how the input was batched (one repair record per MV and table
// per batch), the MVs do not.
func mvsOf(t testing.TB, export string) string {
	t.Helper()
	i := strings.Index(export, `,"mvs":[`)
	if !strings.HasPrefix(export, `{"journal_id":`) || i < 0 {
		t.Fatalf("unexpected export shape: %.80q", export)
	}
	return export[i:]
}

// expectedMVs applies the input to a fresh in-memory store through the same
// decoder, rules and edit-log code as the service (catalog first, then the
// input, each topic in order) and returns the MVs of the export: the state a
// crash-free run must reach.
func expectedMVs(t testing.TB, topics pipeline.Topics, catalog, input []kafkaio.Message) string {
	t.Helper()
	st := mvstate.NewMemory()
	p := &pipeline.Processor{Store: st, Topics: topics, Log: zerolog.Nop()}
	for _, part := range []struct {
		topic string
		msgs  []kafkaio.Message
	}{{topics.Catalog, catalog}, {topics.Input, input}} {
		batch := make([]kafkaio.Message, len(part.msgs))
		for i, m := range part.msgs {
			batch[i] = kafkaio.Message{Topic: part.topic, Partition: 0, Offset: int64(i), Key: m.Key, Value: m.Value}
		}
		if _, err := p.Process(context.Background(), batch, 1, 0); err != nil {
			t.Fatalf("expected state: %v", err)
		}
	}
	return mvsOf(t, exportOf(t, st))
}

// journal is the edit log deduplicated by journal id.
type journal struct {
	records []*editlog.Record // records[i] has journal id i+1
	values  [][]byte
	total   int // records read, duplicates included
}

// checkEditLog verifies the edit-log contract on msgs (the whole topic in
// offset order): each record decodes, its journal-id header and key match its
// body, journal ids first appear in increasing order, a repeated journal id
// is a byte-identical copy, and the ids are exactly 1..max with no gap.
func checkEditLog(t testing.TB, msgs []kafkaio.Message) journal {
	t.Helper()
	j := journal{total: len(msgs)}
	seen := map[int64]int{} // journal id → index in j
	for _, m := range msgs {
		r, err := editlog.Decode(m.Value)
		if err != nil {
			t.Fatalf("edit log offset %d: undecodable: %v", m.Offset, err)
		}
		if h, _ := kafkaio.HeaderValue(m.Headers, editlog.HeaderJournalID); h != strconv.FormatInt(r.JournalID, 10) {
			t.Fatalf("edit log offset %d: journal-id header %q, body journal_id %d", m.Offset, h, r.JournalID)
		}
		if want := fmt.Sprintf("%d:%d", r.MV.DBID, r.MV.MVID); string(m.Key) != want {
			t.Fatalf("edit log offset %d: key %q, want %q", m.Offset, m.Key, want)
		}
		if i, dup := seen[r.JournalID]; dup {
			if !bytes.Equal(j.values[i], m.Value) {
				t.Fatalf("edit log offset %d: journal id %d delivered twice with different content:\n%s\n%s",
					m.Offset, r.JournalID, j.values[i], m.Value)
			}
			continue
		}
		if n := len(j.records); n > 0 && r.JournalID < j.records[n-1].JournalID {
			t.Fatalf("edit log offset %d: journal id %d first appears after %d", m.Offset, r.JournalID, j.records[n-1].JournalID)
		}
		seen[r.JournalID] = len(j.records)
		j.records = append(j.records, r)
		j.values = append(j.values, m.Value)
	}
	for i, r := range j.records {
		if r.JournalID != int64(i+1) {
			t.Fatalf("edit log has a gap: journal id %d follows %d", r.JournalID, i)
		}
	}
	return j
}

// rebuild applies the journal to an empty store and returns it (DESIGN.md
// §5.5: a state rebuilt from the edit log alone equals the live state).
func rebuild(t testing.TB, j journal) *mvstate.Store {
	t.Helper()
	st := mvstate.NewMemory()
	keys, structural := editlog.Touches(j.records)
	err := st.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
		for _, r := range j.records {
			res, err := editlog.Apply(tx, r)
			if err != nil {
				return err
			}
			if res != editlog.Applied {
				return fmt.Errorf("journal id %d (epoch %d): %s", r.JournalID, r.Epoch, res)
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatalf("rebuild from the edit log: %v", err)
	}
	return st
}

// sameText fails with the first differing line of two documents.
func sameText(t testing.TB, what, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Fatalf("%s differs at line %d:\n got: %.600s\nwant: %.600s", what, i+1, gl, wl)
		}
	}
	t.Fatalf("%s differs", what)
}

// openStore opens a stopped service's state dir.
func openStore(t testing.TB, dir string) *mvstate.Store {
	t.Helper()
	st, err := mvstate.Open(context.Background(), dir, mvstate.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// metric sums a counter or gauge family over the series whose labels include
// match.
func metric(t testing.TB, m *metrics.Metrics, name string, match map[string]string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for k, v := range match {
				if labelValue(s, k) != v {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				sum += s.GetCounter().GetValue()
			case s.Gauge != nil:
				sum += s.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func labelValue(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// ---- events ----

const (
	dbID = 10001
	t0   = int64(1732300000000)
)

func nativeTable(id int64) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: id, DBName: "sales",
		TableName: fmt.Sprintf("t%d", id)}
}

func partName(p int) string { return fmt.Sprintf("p%03d", p) }

func partID(table int64, p int) int64 { return table*1000 + int64(p) }

// encode returns the record of an event on topic.
func encode(t testing.TB, topic string, ev events.Event) kafkaio.Message {
	t.Helper()
	b, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return kafkaio.Message{Topic: topic, Key: []byte(events.Key(ev)), Value: b}
}

func upsert(t testing.TB, topic string, m *mvstate.MV) kafkaio.Message {
	return encode(t, topic, &events.MVUpserted{EventID: fmt.Sprintf("upsert-%d-%d", m.DBID, m.MVID), MV: m})
}

// compaction is a partition_version_changed event of one native partition.
func compaction(table int64, p int, last, next, at int64) *events.PartitionVersionChanged {
	return &events.PartitionVersionChanged{
		EventID: fmt.Sprintf("COMPACTION_%d-%d-%d-%d", dbID, table, partID(table, p), next), Source: "compaction",
		DBID: dbID, TableID: table, TableName: fmt.Sprintf("t%d", table), TableType: "cloud_native",
		Partitions: []events.PartitionRepair{{PartitionID: partID(table, p), PartitionName: partName(p),
			LastVersion: last, NewVersion: next, NewVersionTime: at}},
		EmittedAt: at + 5,
	}
}

// workload is a catalog of MVs over native tables and a stream of compaction
// events chaining each partition's version v → v+1: losing one event leaves
// the partition behind for good (every later event then mismatches), so the
// final state shows it.
type workload struct {
	tables []int64
	parts  int
	mvs    []*mvstate.MV
	cur    map[int64][]int64 // table → partition → current version
	seq    int64
	rng    *mrand.Rand
}

// newWorkload builds nMVs MVs over nTables tables of nParts partitions; MV i
// reads tables i and i+1 (mod nTables), every partition at version 1.
func newWorkload(rng *mrand.Rand, nTables, nParts, nMVs int) *workload {
	w := &workload{parts: nParts, cur: map[int64][]int64{}, rng: rng}
	for i := range nTables {
		id := int64(20001 + i)
		w.tables = append(w.tables, id)
		w.cur[id] = slices.Repeat([]int64{1}, nParts)
	}
	for i := range nMVs {
		m := &mvstate.MV{DBID: dbID, DBName: "sales", MVID: int64(50001 + i), MVName: fmt.Sprintf("mv_%d", i),
			Active: i%2 == 0, LastRefreshTime: t0, VersionMap: mvstate.VersionMap{}}
		for _, ti := range []int{i % nTables, (i + 1) % nTables} {
			table := w.tables[ti]
			if _, dup := m.VersionMap[table]; dup {
				continue
			}
			m.BaseTables = append(m.BaseTables, nativeTable(table))
			pm := mvstate.PartitionMap{}
			for p := range nParts {
				pm[partName(p)] = mvstate.NewBasePartitionInfo(partID(table, p), 1, t0)
			}
			m.VersionMap[table] = pm
		}
		w.mvs = append(w.mvs, m)
	}
	return w
}

func (w *workload) catalog(t testing.TB, topic string) []kafkaio.Message {
	out := make([]kafkaio.Message, len(w.mvs))
	for i, m := range w.mvs {
		out[i] = upsert(t, topic, m)
	}
	return out
}

// next returns the next compaction: a random table, one or two random
// partitions, each moved from its current version to the next.
func (w *workload) next() *events.PartitionVersionChanged {
	table := w.tables[w.rng.IntN(len(w.tables))]
	n := 1 + w.rng.IntN(2)
	ps := w.rng.Perm(w.parts)[:n]
	w.seq++
	at := t0 + 1000 + w.seq
	ev := &events.PartitionVersionChanged{EventID: fmt.Sprintf("COMPACTION_%d-%d-%d", dbID, table, w.seq),
		Source: "compaction", DBID: dbID, TableID: table, TableName: fmt.Sprintf("t%d", table), TableType: "cloud_native",
		EmittedAt: at + 5}
	for _, p := range ps {
		v := w.cur[table][p]
		w.cur[table][p] = v + 1
		ev.Partitions = append(ev.Partitions, events.PartitionRepair{PartitionID: partID(table, p), PartitionName: partName(p),
			LastVersion: v, NewVersion: v + 1, NewVersionTime: at})
	}
	return ev
}

// stream returns n input records; every badEvery-th one (if > 0) is not JSON
// (dead-lettered with invalid_json, keyed like a real table's events).
func (w *workload) stream(t testing.TB, topic string, n, badEvery int) []kafkaio.Message {
	out := make([]kafkaio.Message, 0, n)
	for i := 1; i <= n; i++ {
		if badEvery > 0 && i%badEvery == 0 {
			key := fmt.Sprintf("%d:%d", dbID, w.tables[w.rng.IntN(len(w.tables))])
			out = append(out, kafkaio.Message{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprintf(`{"kind":"partition_version_changed","bad":%d`, i))})
			continue
		}
		out = append(out, encode(t, topic, w.next()))
	}
	return out
}

// newRand returns a seeded generator (ITEST_SEED or a fresh seed), logged so
// a failing run can be reproduced.
func newRand(t testing.TB) *mrand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ITEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ITEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (set ITEST_SEED=%d to repeat)", seed, seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// checkDeadLettered verifies that every undecodable input record reached the
// DLQ at least once, with its source position.
func checkDeadLettered(t testing.TB, input, dlq []kafkaio.Message) {
	t.Helper()
	got := map[string]bool{}
	for _, m := range dlq {
		p, _ := kafkaio.HeaderValue(m.Headers, pipeline.HeaderSourcePartition)
		o, _ := kafkaio.HeaderValue(m.Headers, pipeline.HeaderSourceOffset)
		got[p+"/"+o] = true
	}
	bad := 0
	for _, m := range input {
		if json.Valid(m.Value) {
			continue
		}
		bad++
		if pos := fmt.Sprintf("%d/%d", m.Partition, m.Offset); !got[pos] {
			t.Errorf("input record %s (%s) is not on the DLQ", pos, m.Value)
		}
	}
	if bad == 0 {
		t.Fatal("the input has no bad record to check")
	}
}

// ---- the service in a child process ----

// childConfigEnv carries the child's configuration (JSON) from the parent.
const childConfigEnv = "MVREPAIR_ITEST_CHILD_CONFIG"

// child is the service running in a child process.
type child struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // from Wait, once done is closed
}

// startChild runs the service on cfg in a child process whose client id and
// instance name are name (the group shows which child is a member).
func (e *env) startChild(cfg *config.Config, name string) *child {
	t := e.t
	t.Helper()
	c := *cfg
	c.Kafka.ClientID, c.Kafka.InstanceName = name, name
	raw, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, name: name, logPath: filepath.Join(e.logDir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(ch.logPath)
	if err != nil {
		t.Fatal(err)
	}
	ch.cmd = exec.Command(os.Args[0], "-test.run=^TestServiceChild$", "-test.count=1", "-test.timeout=10m")
	ch.cmd.Env = append(os.Environ(), childConfigEnv+"="+string(raw))
	ch.cmd.Stdout, ch.cmd.Stderr = logf, logf
	if err := ch.cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	go func() {
		ch.err = ch.cmd.Wait()
		_ = logf.Close()
		close(ch.done)
	}()
	t.Cleanup(func() {
		select {
		case <-ch.done:
		default:
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
		if b, err := os.ReadFile(ch.logPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("child %s reported a data race (see its log)", name)
		}
	})
	return ch
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.done
}

// terminate sends SIGTERM and returns how long the child took to exit; it
// fails the test unless the child exits with status 0 within limit.
func (c *child) terminate(limit time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM %s: %v", c.name, err)
	}
	select {
	case <-c.done:
	case <-time.After(limit):
		c.t.Fatalf("%s did not exit within %v of SIGTERM", c.name, limit)
	}
	took := time.Since(start)
	if c.err != nil {
		c.t.Fatalf("%s exited with %v after SIGTERM (want status 0)", c.name, c.err)
	}
	return took
}

// exited reports whether the child died on its own.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("child %s exited unexpectedly: %v", c.name, c.err)
	default:
		return nil
	}
}

// waitMember waits until the child is the group's only member and the group
// is Stable: the child is the active writer, and on kfake it is safe to kill.
func (e *env) waitMember(cfg *config.Config, c *child) {
	e.t.Helper()
	eventually(e.t, waitLong, func() error {
		if err := c.exited(); err != nil {
			return err
		}
		return e.groupMember(cfg.Kafka.GroupID, c.name)
	})
}

// runChild is the body of TestServiceChild: the service until SIGTERM.
func runChild(t *testing.T, raw string) {
	var cfg config.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("child config: %v", err)
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, logging.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signalContext()
	defer stop()
	svc, err := service.Open(ctx, &cfg, log)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer svc.Close()
	if err := svc.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	log.Info().Msg("child stopped cleanly")
}

// signalContext ends on SIGTERM or SIGINT (a graceful stop).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}
