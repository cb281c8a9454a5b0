package itest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/httpserver"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Transactional producers feeding the running service (docs/design.md §4.5):
// a franz-go (kgo) transactional producer, a test-only client, writes to the
// input and catalog topics; the service reads them with read_committed
// through kafkaio's fetcher. Whatever the producers do, the state and the
// edit log must be those of the committed records alone, no record of an
// aborted transaction and no control record (commit/abort marker) may reach
// the decoders (the DLQ stays empty although the aborted transactions hold
// records that are not JSON), the committed offsets must reach the high
// watermarks, markers included, and /readyz must stay ready throughout.
// The aborted events are valid compactions of the same partitions from the
// same versions as the committed ones, so one applied would change the state
// and make the committed events that follow it mismatch.

// position is a record's place in a topic.
type position struct {
	topic     string
	partition int
	offset    int64
}

func (p position) String() string { return fmt.Sprintf("%s/%d@%d", p.topic, p.partition, p.offset) }

func positionOf(m kafkaio.Message) position { return position{m.Topic, m.Partition, m.Offset} }

// tpart is a topic partition.
type tpart struct {
	topic     string
	partition int
}

// txnRig is a service on its own topics and what the test wrote to them.
type txnRig struct {
	t   *testing.T
	e   *testkit.Env
	cfg *config.Config
	tp  config.Topics
	in  *testkit.Instance
	rz  *readyzWatch

	plainCl *kgo.Client // non-transactional producer (see plain)

	catalog, input []kafkaio.Message // committed records, in the order written
	committed      map[position]bool // the committed records (plain ones included)
	aborted        map[position]bool // the records of aborted transactions
	abortedIDs     map[string]bool   // their event ids
	// end counts the records and markers written to each partition of the
	// (new) topics: the high watermark the test expects. A count, not the
	// offset after the last record written: the transaction coordinator
	// writes a marker after EndTxn returns, possibly behind records written
	// meanwhile.
	end map[tpart]int64
}

func newTxnRig(t *testing.T, name string) *txnRig {
	e := testkit.NewEnv(t)
	cfg := e.Config(name)
	e.EnsureTopics(cfg)
	return &txnRig{t: t, e: e, cfg: cfg, tp: cfg.Kafka.Topics, committed: map[position]bool{},
		aborted: map[position]bool{}, abortedIDs: map[string]bool{}, end: map[tpart]int64{}}
}

// start runs the service, waits until it is ready and
// applied the catalog written so far, and starts watching /readyz.
func (r *txnRig) start() {
	r.t.Helper()
	r.in = r.e.StartService(r.cfg, "service")
	r.e.Eventually(testkit.WaitLong, r.in.Svc.Ready)
	r.rz = watchReadyz(r.t, r.in)
	if len(r.catalog) > 0 {
		r.e.WaitApplied(r.in.State, r.tp.Catalog)
	}
}

// plain writes msgs outside any transaction, with an idempotent kgo
// producer rather than the Env's: the test counts every offset, and the
// Env's Publish may write a set twice when a first attempt fails in part
// (a real broker refuses records for a topic it has just created until its
// metadata has spread).
func (r *txnRig) plain(msgs ...kafkaio.Message) {
	r.t.Helper()
	if r.plainCl == nil {
		cl, err := kgo.NewClient(append(r.e.KgoOpts(), kgo.ClientID("itest-plain"))...)
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(cl.Close)
		r.plainCl = cl
	}
	for _, m := range produce(r.t, r.plainCl, msgs) {
		r.commit(m)
		r.wrote(m)
	}
}

// produce writes msgs in one request (one batch per partition), keyed and
// partitioned by kgo's default partitioner (murmur2 of the key, as the Java
// client and kafkaio's producer do), and returns them placed.
func produce(t *testing.T, cl *kgo.Client, msgs []kafkaio.Message) []kafkaio.Message {
	t.Helper()
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = &kgo.Record{Topic: m.Topic, Key: m.Key, Value: m.Value}
	}
	if err := cl.ProduceSync(testkit.Ctx(t, testkit.WaitLong), recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(msgs), err)
	}
	// ProduceSync's results come in the order the partitions completed:
	// the records themselves carry their placement.
	out := make([]kafkaio.Message, len(msgs))
	for i, rec := range recs {
		out[i] = msgs[i]
		out[i].Partition, out[i].Offset = int(rec.Partition), rec.Offset
	}
	return out
}

// commit records m as committed.
func (r *txnRig) commit(m kafkaio.Message) {
	r.committed[positionOf(m)] = true
	if m.Topic == r.tp.Catalog {
		r.catalog = append(r.catalog, m)
	} else {
		r.input = append(r.input, m)
	}
}

// wrote counts m on its partition.
func (r *txnRig) wrote(m kafkaio.Message) { r.end[tpart{m.Topic, m.Partition}]++ }

// txnProducer is a transactional kgo producer writing for the rig.
type txnProducer struct {
	r       *txnRig
	cl      *kgo.Client
	open    []kafkaio.Message // written in the open transaction, placed
	touched map[tpart]bool    // partitions of the open transaction
}

func (r *txnRig) txnProducer(name string) *txnProducer {
	r.t.Helper()
	opts := append(r.e.KgoOpts(),
		kgo.ClientID("itest-txn-"+name),
		kgo.TransactionalID(fmt.Sprintf("itest-%s-%s-%s", r.cfg.Kafka.GroupID, name, testkit.RandomID())),
		kgo.TransactionTimeout(2*testkit.WaitLong),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(cl.Close)
	return &txnProducer{r: r, cl: cl}
}

func (p *txnProducer) begin() {
	p.r.t.Helper()
	if err := p.cl.BeginTransaction(); err != nil {
		p.r.t.Fatalf("begin transaction: %v", err)
	}
	p.open, p.touched = nil, map[tpart]bool{}
}

// write produces msgs in the open transaction (see produce).
func (p *txnProducer) write(msgs ...kafkaio.Message) {
	p.r.t.Helper()
	for _, m := range produce(p.r.t, p.cl, msgs) {
		p.open = append(p.open, m)
		p.touched[tpart{m.Topic, m.Partition}] = true
		p.r.wrote(m)
	}
}

// end commits or aborts the open transaction; each partition it wrote to
// gets a marker, which takes an offset.
func (p *txnProducer) end(commit bool) {
	r := p.r
	r.t.Helper()
	how := kgo.TryAbort
	if commit {
		how = kgo.TryCommit
	}
	if err := p.cl.EndTransaction(testkit.Ctx(r.t, testkit.WaitLong), how); err != nil {
		r.t.Fatalf("end transaction (commit=%v): %v", commit, err)
	}
	for _, m := range p.open {
		if commit {
			r.commit(m)
			continue
		}
		r.aborted[positionOf(m)] = true
		if ev, err := events.Decode(m.Value); err == nil {
			r.abortedIDs[ev.ID()] = true
		}
	}
	for tp := range p.touched {
		r.end[tp]++ // the marker
	}
	p.open, p.touched = nil, nil
}

// waitMarkers waits until every partition's high watermark is the offset
// after the last record or marker the test wrote: the brokers write the
// markers after EndTxn returns.
func (r *txnRig) waitMarkers() {
	r.t.Helper()
	r.e.Eventually(testkit.WaitLong, func() error {
		for _, topic := range []string{r.tp.Input, r.tp.Catalog} {
			offs, err := r.e.Admin.ListOffsets(context.Background(), topic)
			if err != nil {
				return err
			}
			for p, o := range offs {
				if want := r.end[tpart{topic, p}]; o.Last != want {
					return fmt.Errorf("%s/%d: high watermark %d, want %d (records and markers written)", topic, p, o.Last, want)
				}
			}
		}
		return nil
	})
}

// check waits until the service committed everything and verifies the
// state, the edit log, what reached the decoders, the DLQ and /readyz.
func (r *txnRig) check() {
	t, e := r.t, r.e
	t.Helper()
	r.waitMarkers()
	e.WaitCaughtUp(r.cfg)
	// Offsets not taken by a record the test wrote are markers.
	records := map[tpart]int64{}
	for pos := range r.committed {
		records[tpart{pos.topic, pos.partition}]++
	}
	for pos := range r.aborted {
		records[tpart{pos.topic, pos.partition}]++
	}
	markers := int64(0)
	for _, topic := range []string{r.tp.Input, r.tp.Catalog} {
		for p, c := range e.Committed(r.cfg.Kafka.GroupID, topic) {
			tp := tpart{topic, p}
			if want := r.end[tp]; want > 0 && c != want {
				t.Errorf("%s/%d: committed offset %d, want %d (past every record and marker)", topic, p, c, want)
			}
			markers += r.end[tp] - records[tp]
		}
	}
	if markers == 0 {
		t.Fatal("no marker on the topics: the committed offsets prove nothing about markers")
	}

	// Only committed records reached the decoders, each of them once.
	seen := map[position]int{}
	for _, rep := range r.in.Reports.All() {
		for _, ev := range rep.Events {
			seen[position{ev.Source.Topic, ev.Source.Partition, ev.Source.Offset}]++
		}
	}
	var leaked, unknown, twice, missing []string
	for pos, n := range seen {
		switch {
		case r.aborted[pos]:
			leaked = append(leaked, pos.String())
		case !r.committed[pos]:
			unknown = append(unknown, pos.String())
		case n > 1:
			twice = append(twice, pos.String())
		}
	}
	for pos := range r.committed {
		if seen[pos] == 0 {
			missing = append(missing, pos.String())
		}
	}
	for _, c := range []struct {
		what string
		list []string
	}{
		{"records of aborted transactions reached the decoders", leaked},
		{"positions that hold no record the test committed (markers?) reached the decoders", unknown},
		{"committed records reached the decoders more than once", twice},
		{"committed records never reached the decoders", missing},
	} {
		if len(c.list) > 0 {
			slices.Sort(c.list)
			t.Errorf("%d %s: %s", len(c.list), c.what, strings.Join(c.list[:min(len(c.list), 8)], " "))
		}
	}

	// Nothing was dead-lettered.
	if dl := r.in.Reports.DeadLetters(); len(dl) > 0 {
		t.Errorf("dead letters %v, want none", dl)
	}
	for p, hw := range e.HWM(r.tp.DLQ) {
		if hw != 0 {
			t.Errorf("DLQ partition %d holds %d records, want none", p, hw)
		}
	}

	// The state is that of the committed records alone.
	st := r.in.State()
	live := testkit.ExportOf(t, st)
	testkit.SameText(t, "state vs the committed records applied alone", testkit.MVsOf(t, live),
		testkit.ExpectedMVs(t, testkit.TopicsOf(r.cfg), inLogOrder(r.catalog), inLogOrder(r.input)))

	// The edit log has no gap, names committed events only, and rebuilds the
	// live state.
	j := testkit.CheckEditLog(t, e.ReadTopic(r.tp.EditLog))
	if j.Last() != st.JournalID() {
		t.Errorf("edit log has journal ids up to %d, the store %d", j.Last(), st.JournalID())
	}
	var foreign []string
	for _, rec := range j.Records {
		for _, c := range rec.Causes {
			if pos := (position{c.Topic, c.Partition, c.Offset}); r.abortedIDs[c.EventID] || !r.committed[pos] {
				foreign = append(foreign, fmt.Sprintf("journal id %d by %s (%s)", rec.JournalID, pos, c.EventID))
			}
		}
	}
	if len(foreign) > 0 {
		t.Errorf("%d edit-log causes are no committed record: %s", len(foreign), strings.Join(foreign[:min(len(foreign), 5)], "; "))
	}
	if len(j.Records) > 0 && j.Records[0].JournalID == 1 {
		testkit.SameText(t, "state rebuilt from the edit log vs live", testkit.ExportOf(t, testkit.Rebuild(t, j)), live)
	}

	// /readyz said ready every time it was asked.
	samples, bad := r.rz.stop()
	if len(bad) > 0 {
		t.Errorf("/readyz was not ready %d times of %d; first: %s", len(bad), samples, bad[0])
	}
	t.Logf("%d committed and %d aborted records, %d markers; %d journal records; /readyz ready in %d samples",
		len(r.committed), len(r.aborted), markers, len(j.Records), samples)
}

// inLogOrder returns msgs by partition and offset: the order a reader sees
// them in, which is not the order they were written in when a transaction
// commits after records written behind it.
func inLogOrder(msgs []kafkaio.Message) []kafkaio.Message {
	out := slices.Clone(msgs)
	slices.SortStableFunc(out, func(a, b kafkaio.Message) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return int(a.Offset - b.Offset)
	})
	return out
}

// holds polls cond for d and fails at its first error: a condition that
// must stay true while something is pending.
func (r *txnRig) holds(d time.Duration, cond func() error) {
	r.t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := cond(); err != nil {
			r.t.Fatal(err)
		}
	}
}

// readyzWatch asks the service's /readyz (served by the operator HTTP
// server on a loopback port) every 20 ms and keeps every answer that was
// not 200.
type readyzWatch struct {
	done    chan struct{}
	quit    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	samples int
	bad     []string
}

func watchReadyz(t *testing.T, in *testkit.Instance) *readyzWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv := httpserver.New("127.0.0.1:0", httpserver.Deps{Health: in.Svc})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w := &readyzWatch{done: make(chan struct{}), quit: make(chan struct{})}
	url := "http://" + srv.Addr() + "/readyz"
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
			verdict := ""
			resp, err := client.Get(url)
			if err != nil {
				verdict = err.Error()
			} else {
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					verdict = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
				}
			}
			w.mu.Lock()
			w.samples++
			if verdict != "" {
				w.bad = append(w.bad, time.Now().Format("15:04:05.000")+" "+verdict)
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		w.stop()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
	})
	return w
}

// stop ends the sampling and returns the number of samples and the answers
// that were not ready.
func (w *readyzWatch) stop() (int, []string) {
	w.once.Do(func() { close(w.quit) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples, slices.Clone(w.bad)
}

// fork returns a copy of the workload at its current versions whose event
// ids and times differ from the original's: the events of a transaction that
// aborts, moving the same partitions from the same versions as the
// committed events that follow them.
func (w *workload) fork() *workload {
	f := *w
	f.cur = make(map[int64][]int64, len(w.cur))
	for table, vs := range w.cur {
		f.cur[table] = slices.Clone(vs)
	}
	f.seq += 1 << 20
	return &f
}

// over returns n input records of tables only (the workload's versions and
// sequence move on as with stream).
func (w *workload) over(t testing.TB, topic string, tables []int64, n int) []kafkaio.Message {
	all := w.tables
	w.tables = tables
	defer func() { w.tables = all }()
	return w.stream(t, topic, n, 0)
}

func TestTransactions_abortedEventsAreNeverApplied_committedOnesAre(t *testing.T) {
	r := newTxnRig(t, "txn-abort")
	w := newWorkload(newRand(t), 4, 6, 6)
	r.plain(w.catalog(t, r.tp.Catalog)...)
	r.start()
	p := r.txnProducer("p")

	p.begin()
	p.write(w.stream(t, r.tp.Input, 30, 0)...)
	p.end(true)
	p.begin()
	lost := w.fork()
	p.write(lost.stream(t, r.tp.Input, 20, 7)...) // with records that are not JSON
	p.write(lost.stream(t, r.tp.Input, 20, 0)...)
	p.end(false)
	r.plain(w.stream(t, r.tp.Input, 10, 0)...) // non-transactional records between transactions
	p.begin()
	p.write(w.stream(t, r.tp.Input, 30, 0)...)
	p.end(true)
	p.begin() // the last word on every partition: an abort marker
	p.write(w.fork().stream(t, r.tp.Input, 30, 5)...)
	p.end(false)
	r.check()
}

func TestTransactions_interleavedProducers_onlyTheCommittingOnesEventsApply(t *testing.T) {
	r := newTxnRig(t, "txn-interleaved")
	w := newWorkload(newRand(t), 4, 6, 6)
	r.plain(w.catalog(t, r.tp.Catalog)...)
	r.start()
	a, b := r.txnProducer("a"), r.txnProducer("b")

	// a aborts while b commits; their records alternate on the same
	// partitions (same tables, same keys), and b goes on after a's abort
	// marker.
	wa := w.fork()
	a.begin()
	b.begin()
	for range 8 {
		a.write(wa.stream(t, r.tp.Input, 3, 0)...)
		b.write(w.stream(t, r.tp.Input, 3, 0)...)
	}
	a.write(wa.stream(t, r.tp.Input, 4, 2)...)
	a.end(false)
	b.write(w.stream(t, r.tp.Input, 6, 0)...)
	b.end(true)

	// The other way round: b aborts in the middle of a's transaction.
	wb := w.fork()
	a.begin()
	b.begin()
	for range 8 {
		b.write(wb.stream(t, r.tp.Input, 3, 3)...)
		a.write(w.stream(t, r.tp.Input, 3, 0)...)
	}
	b.end(false)
	a.write(w.stream(t, r.tp.Input, 6, 0)...)
	a.end(true)
	r.check()
}

func TestTransactions_openTransactionIsAppliedOnlyOnceItCommits(t *testing.T) {
	r := newTxnRig(t, "txn-open")
	w := newWorkload(newRand(t), 6, 6, 6)
	r.plain(w.catalog(t, r.tp.Catalog)...)
	r.start()
	r.plain(w.stream(t, r.tp.Input, 20, 0)...)

	// A transaction on one table (so one partition) stays open; a
	// non-transactional record written after it on its partition is held
	// back with it (read_committed reads up to the last stable offset), the
	// other partitions flow.
	table := w.tables[0]
	p := r.txnProducer("open")
	p.begin()
	p.write(w.over(t, r.tp.Input, []int64{table}, 10)...)
	held, first := p.open[0].Partition, p.open[0].Offset
	r.plain(w.over(t, r.tp.Input, []int64{table}, 5)...)
	r.plain(w.over(t, r.tp.Input, w.tables[1:], 30)...)
	var readable []kafkaio.Message
	for _, m := range r.input {
		if m.Partition != held || m.Offset < first {
			readable = append(readable, m)
		}
	}
	if len(readable) == len(r.input) {
		t.Fatal("no non-transactional record behind the open transaction")
	}
	want := testkit.ExpectedMVs(t, testkit.TopicsOf(r.cfg), inLogOrder(r.catalog), inLogOrder(readable))
	stateIsWant := func() error {
		if got := testkit.MVsOf(t, testkit.ExportOf(t, r.in.State())); got != want {
			return fmt.Errorf("with the transaction open, the state is not that of the readable records: %s", testkit.FirstDiff(got, want))
		}
		if a := r.in.State().AppliedOffset(r.tp.Input, held); a > first {
			return fmt.Errorf("input/%d applied up to %d, past the open transaction's first record at %d", held, a, first)
		}
		return nil
	}
	r.e.Eventually(testkit.WaitLong, stateIsWant)
	// Longer than the stall timeout: an open transaction is no stall.
	r.holds(r.cfg.Health.StallTimeout+time.Second, func() error {
		if err := stateIsWant(); err != nil {
			return err
		}
		if c := r.e.Committed(r.cfg.Kafka.GroupID, r.tp.Input)[held]; c > first {
			return fmt.Errorf("input/%d committed up to %d, past the open transaction's first record at %d", held, c, first)
		}
		return nil
	})
	p.end(true)
	r.check()
}

func TestTransactions_longAbortedTransactionSpanningManyFetches_isSkippedWhole(t *testing.T) {
	r := newTxnRig(t, "txn-long")
	r.cfg.Kafka.Reader.MaxBytes = 1 // a fetch returns one batch: the transaction spans one fetch per batch
	w := newWorkload(newRand(t), 4, 6, 6)
	r.plain(w.catalog(t, r.tp.Catalog)...)
	r.start()
	p := r.txnProducer("long")

	p.begin()
	p.write(w.stream(t, r.tp.Input, 10, 0)...)
	p.end(true)
	lost := w.fork()
	p.begin()
	for i := range 60 {
		bad := 0
		if i%20 == 19 {
			bad = 3
		}
		p.write(lost.stream(t, r.tp.Input, 3, bad)...)
	}
	batches := map[int]int{}
	for _, m := range p.open {
		batches[m.Partition]++
	}
	p.end(false)
	p.begin()
	p.write(w.stream(t, r.tp.Input, 30, 0)...)
	p.end(true)
	r.plain(w.stream(t, r.tp.Input, 10, 0)...)
	t.Logf("aborted records per input partition (up to 3 per batch): %v", batches)
	r.check()
}

func TestTransactions_catalogTopic_abortedUpsertsAndDropsAreNeverApplied(t *testing.T) {
	r := newTxnRig(t, "txn-catalog")
	w := newWorkload(newRand(t), 4, 6, 6)
	r.start()
	p := r.txnProducer("catalog")
	cat := w.catalog(t, r.tp.Catalog)

	p.begin()
	p.write(cat[:3]...)
	p.end(true)

	// Aborted: a drop, an upsert that would move every recorded version of
	// an MV out of reach of the events, a new MV, a record that is not JSON.
	changed := w.mvs[1].Clone()
	for _, pm := range changed.VersionMap {
		for name, e := range pm {
			pm[name] = mvstate.NewBasePartitionInfo(e.ID, 50, t0)
		}
	}
	extra := w.mvs[4].Clone()
	extra.MVID, extra.MVName = 50099, "mv_aborted"
	p.begin()
	p.write(
		encode(t, r.tp.Catalog, &events.MVDropped{EventID: "drop-aborted", DBID: dbID, MVID: w.mvs[0].MVID}),
		encode(t, r.tp.Catalog, &events.MVUpserted{EventID: "upsert-aborted-1", MV: changed}),
		encode(t, r.tp.Catalog, &events.MVUpserted{EventID: "upsert-aborted-new", MV: extra}),
		kafkaio.Message{Topic: r.tp.Catalog, Key: []byte(fmt.Sprintf("%d:%d", dbID, w.mvs[2].MVID)), Value: []byte(`{"kind":"mv_dropped"`)},
	)
	p.end(false)
	p.begin()
	p.write(cat[3:]...)
	p.end(true)
	p.begin() // aborted again, the last word on its partitions
	p.write(encode(t, r.tp.Catalog, &events.MVDropped{EventID: "drop-aborted-2", DBID: dbID, MVID: w.mvs[3].MVID}))
	p.end(false)

	// The input follows once the catalog is applied (two topics have no
	// order between them).
	r.waitMarkers()
	r.e.WaitApplied(r.in.State, r.tp.Catalog)
	r.plain(w.stream(t, r.tp.Input, 60, 0)...)
	if got := r.in.State().Keys(); len(got) != len(w.mvs) {
		t.Errorf("MVs in the store: %v, want the %d committed ones", got, len(w.mvs))
	}
	r.check()
}
