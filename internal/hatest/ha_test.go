package hatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/handler"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/mvstate"
)

const (
	dbID  = 10001
	parts = 20
	t0    = int64(1_700_000_000_000)
)

var tables = []int64{20001, 20002}

func catalog() []*events.MVUpserted {
	var out []*events.MVUpserted
	for i := int64(1); i <= 4; i++ {
		m := &mvstate.MV{DBID: dbID, MVID: 50000 + i, DBName: "sales", MVName: fmt.Sprintf("mv%d", i), Active: true,
			LastRefreshTime: t0, VersionMap: mvstate.VersionMap{}}
		for _, tbl := range tables[:1+i%2] {
			m.BaseTables = append(m.BaseTables, mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: tbl, DBName: "sales", TableName: fmt.Sprint("t", tbl)})
			pm := mvstate.PartitionMap{}
			for p := 0; p < parts; p++ {
				pm[fmt.Sprintf("p%02d", p)] = mvstate.NewBasePartitionInfo(tbl*100+int64(p), 1, t0)
			}
			m.VersionMap[tbl] = pm
		}
		out = append(out, &events.MVUpserted{EventID: fmt.Sprint("cat-", i), MV: m})
	}
	return out
}

// round returns the events moving every partition of every table from
// version r to r+1.
func round(r int) []*events.PartitionVersionChanged {
	var out []*events.PartitionVersionChanged
	for _, tbl := range tables {
		for p := 0; p < parts; p++ {
			ts := t0 + int64(r)*1000 + int64(p)
			out = append(out, &events.PartitionVersionChanged{EventID: fmt.Sprintf("c-%d-%d-%d", tbl, p, r),
				DBID: dbID, TableID: tbl, TableType: "cloud_native",
				Partitions: []events.PartitionRepair{{PartitionID: tbl*100 + int64(p), PartitionName: fmt.Sprintf("p%02d", p),
					LastVersion: int64(r), NewVersion: int64(r + 1), NewVersionTime: ts}}})
		}
	}
	return out
}

func (c *cluster) produce(t *testing.T, topic string, evs ...events.Event) {
	t.Helper()
	msgs := make([]kafkaio.Message, len(evs))
	for i, e := range evs {
		b, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafkaio.Message{Topic: topic, Key: []byte(events.Key(e)), Value: b}
	}
	if err := c.prod.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// expected runs the events through the engine in memory, in order.
func expected(t *testing.T, evs []events.Event) string {
	t.Helper()
	st := mvstate.NewMemory()
	for i, e := range evs {
		res := handler.Process(st, []handler.Input{{Event: e, Source: editlog.Cause{Topic: "x", Offset: int64(i)}}},
			handler.Options{NextJournalID: st.JournalID() + 1, Epoch: 1, Now: 1})
		keys, structural := editlog.Touches(res.Records)
		if err := st.Commit(context.Background(), mvstate.Batch{Touched: keys, Structural: structural, Apply: func(tx *mvstate.Tx) error {
			for _, r := range res.Records {
				if _, err := editlog.Apply(tx, r); err != nil {
					return err
				}
			}
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
	}
	return mvsOf(t, st)
}

// mvsOf exports a store without its journal id (two writers number the same
// changes differently).
func mvsOf(t *testing.T, st *mvstate.Store) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.Export(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	return s[bytes.IndexByte(b.Bytes(), '['):]
}

// journal reads the whole edit log and checks it: deduplicated by journal
// id it has no gap, and a repeated id carries identical bytes.
func (c *cluster) journal(t *testing.T) (max int64, epochs map[int64]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hw, err := c.hwm(ctx, c.cfg.Kafka.Topics.EditLog)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := kafkaio.NewTopicTail(ctx, kafkaio.FetcherConfig{Brokers: c.brokers, MaxWait: 50 * time.Millisecond}, c.cfg.Kafka.Topics.EditLog, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	seen := map[int64][]byte{}
	epochs = map[int64]bool{}
	for n := int64(0); n < hw; n++ {
		m, err := tail.Fetch(ctx)
		if err != nil {
			t.Fatalf("read edit log: %v", err)
		}
		r, err := editlog.Decode(m.Value)
		if err != nil {
			t.Fatalf("edit log offset %d: %v", m.Offset, err)
		}
		if h, _ := kafkaio.HeaderValue(m.Headers, editlog.HeaderJournalID); h != fmt.Sprint(r.JournalID) {
			t.Fatalf("journal-id header %q on record %d", h, r.JournalID)
		}
		if prev, ok := seen[r.JournalID]; ok && !bytes.Equal(prev, m.Value) {
			t.Fatalf("journal id %d published with two different records", r.JournalID)
		}
		seen[r.JournalID] = m.Value
		epochs[r.Epoch] = true
		max = maxI(max, r.JournalID)
	}
	for j := int64(1); j <= max; j++ {
		if _, ok := seen[j]; !ok {
			t.Fatalf("edit log has a gap: journal id %d missing (max %d)", j, max)
		}
	}
	return max, epochs
}

func maxI(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func getMV(addr string, key mvstate.MVKey) (*mvstate.MV, error) {
	resp, err := http.Get(fmt.Sprintf("http://%s/v1/mvs/%d/%d", addr, key.DBID, key.MVID))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var m mvstate.MV
	return &m, json.Unmarshal(b, &m)
}

func TestFailover_standbyTakesOverAfterKill9AndNothingIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	c := newCluster(t)
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	a := c.start(t, "a", dirA)
	c.waitRole(t, a, "a", 1)
	b := c.start(t, "b", dirB)
	c.waitRole(t, b, "a", 2) // b is a standby

	const rounds = 20
	var all []events.Event
	for _, e := range catalog() {
		all = append(all, e)
		c.produce(t, c.cfg.Kafka.Topics.Catalog, e)
	}
	for r := 1; r < rounds; r++ {
		for _, e := range round(r) {
			all = append(all, e)
		}
	}
	send := func(from, to int) error {
		for r := from; r < to; r++ {
			msgs := make([]kafkaio.Message, 0, len(tables)*parts)
			for _, e := range round(r) {
				b, err := events.Encode(e)
				if err != nil {
					return err
				}
				msgs = append(msgs, kafkaio.Message{Topic: c.cfg.Kafka.Topics.Input, Key: []byte(events.Key(e)), Value: b})
			}
			if err := c.prod.Publish(context.Background(), msgs...); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond) // a stream, not a burst: the kill lands mid-stream
		}
		return nil
	}
	if err := send(1, 8); err != nil {
		t.Fatal(err)
	}
	// The standby follows the edit log and serves what it applied.
	key := mvstate.MVKey{DBID: dbID, MVID: 50001}
	eventually(t, 30*time.Second, "standby b serves repaired versions", func() error {
		m, err := getMV(b.http, key)
		if err != nil {
			return err
		}
		if v := m.VersionMap[tables[0]]["p00"].Version; v < 4 {
			return fmt.Errorf("b sees version %d", v)
		}
		return nil
	})
	if err := send(8, 12); err != nil {
		t.Fatal(err)
	}
	// Kill the active member while the group is Stable (kfake never expires
	// a member killed during a JoinGroup), under the stream.
	eventually(t, 30*time.Second, "group stable before the kill", func() error {
		_, _, err := c.activeMember(ctx)
		return err
	})
	a.kill()
	killed := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- send(12, rounds) }()
	var takeover time.Duration
	eventually(t, 60*time.Second, "b took over", func() error {
		name, _, err := c.activeMember(ctx)
		if err != nil {
			return err
		}
		if name != "b" {
			return fmt.Errorf("active is %q", name)
		}
		takeover = time.Since(killed)
		return nil
	})
	t.Logf("takeover after kill -9: %s (session timeout %s, heartbeat %s)", takeover.Round(time.Millisecond),
		c.cfg.Kafka.SessionTimeout, c.cfg.Kafka.HeartbeatInterval)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every input record committed", func() error { return c.allCommitted(ctx) })
	maxJ, epochs := c.journal(t)
	if len(epochs) < 2 {
		t.Fatalf("the edit log carries epochs %v; want the old and the new writer's", epochs)
	}
	b.stop(t, 20*time.Second)

	stB, err := mvstate.Open(ctx, dirB, mvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer stB.Close()
	if stB.JournalID() != maxJ {
		t.Fatalf("b's journal id %d, edit log max %d", stB.JournalID(), maxJ)
	}
	want := expected(t, all)
	if got := mvsOf(t, stB); got != want {
		t.Fatalf("state after failover differs from a crash-free run:\n%.600s\nwant\n%.600s", got, want)
	}
	// Rebuild equivalence: the edit log alone gives the same state.
	rebuilt := mvstate.NewMemory()
	k := c.source()
	rep, err := recovery.Rebuild(ctx, rebuilt, k, false)
	if err != nil {
		t.Fatal(err)
	}
	var x, y bytes.Buffer
	_ = stB.Export(ctx, &x)
	_ = rebuilt.Export(ctx, &y)
	if x.String() != y.String() {
		t.Fatalf("rebuilt state differs from the live one (report %+v)", rep)
	}
}

func (c *cluster) source() recovery.Source {
	topic := c.cfg.Kafka.Topics.EditLog
	return recovery.Source{Topic: topic,
		Open: func(ctx context.Context, start map[int]int64) (recovery.Tail, error) {
			return kafkaio.NewTopicTail(ctx, kafkaio.FetcherConfig{Brokers: c.brokers, MaxWait: 50 * time.Millisecond}, topic, start)
		},
		HWM: func(ctx context.Context) (map[int]int64, error) {
			offs, err := c.admin.ListOffsets(ctx, topic)
			if err != nil {
				return nil, err
			}
			out := map[int]int64{}
			for p, o := range offs {
				out[p] = o.Last
			}
			return out, nil
		}}
}

func TestZombie_lateRecordOfOlderEpochIsIgnoredByFollowersAndFencedByRebuild(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	c := newCluster(t)
	a := c.start(t, "a", filepath.Join(t.TempDir(), "a"))
	c.waitRole(t, a, "a", 1)
	f := c.start(t, "f", filepath.Join(t.TempDir(), "f"))
	c.waitRole(t, f, "a", 2) // f is a standby
	var all []events.Event
	for _, e := range catalog() {
		all = append(all, e)
		c.produce(t, c.cfg.Kafka.Topics.Catalog, e)
	}
	for _, e := range round(1) {
		all = append(all, e)
		c.produce(t, c.cfg.Kafka.Topics.Input, e)
	}
	eventually(t, 30*time.Second, "round 1 committed", func() error { return c.allCommitted(ctx) })
	maxJ, epochs := c.journal(t)
	var epoch int64
	for e := range epochs {
		epoch = maxI(epoch, e)
	}
	if epoch < 2 {
		t.Skipf("writer epoch %d leaves no older epoch to forge", epoch)
	}
	// A zombie of an older epoch publishes a destructive record late.
	victim := mvstate.MVKey{DBID: dbID, MVID: 50001}
	zombie := &editlog.Record{JournalID: maxJ + 1, Epoch: epoch - 1, Op: editlog.OpDropped, At: 1,
		MV: editlog.MVRef{DBID: victim.DBID, MVID: victim.MVID}}
	zb, _ := editlog.Encode(zombie)
	if err := c.prod.Publish(ctx, kafkaio.Message{Topic: c.cfg.Kafka.Topics.EditLog, Key: []byte(zombie.Key()), Value: zb,
		Headers: []kafkaio.Header{{Key: editlog.HeaderJournalID, Value: []byte(zombie.JournalHeader())}}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range round(2) {
		all = append(all, e)
		c.produce(t, c.cfg.Kafka.Topics.Input, e)
	}
	eventually(t, 30*time.Second, "round 2 committed", func() error { return c.allCommitted(ctx) })
	eventually(t, 30*time.Second, "the follower applied round 2 and kept the victim", func() error {
		m, err := getMV(f.http, victim)
		if err != nil {
			return err
		}
		if v := m.VersionMap[tables[0]]["p00"].Version; v != 3 {
			return fmt.Errorf("follower sees version %d", v)
		}
		return nil
	})
	a.stop(t, 20*time.Second)
	f.stop(t, 20*time.Second)
	want := expected(t, all)
	for _, in := range []*instance{a, f} {
		st, err := mvstate.Open(ctx, in.dir, mvstate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := mvsOf(t, st); got != want {
			t.Errorf("instance %s: state differs from the expected one", in.name)
		}
		st.Close()
	}
	rebuilt := mvstate.NewMemory()
	rep, err := recovery.Rebuild(ctx, rebuilt, c.source(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fenced) != 1 || rep.Fenced[0].JournalID != zombie.JournalID || rep.Fenced[0].Epoch != zombie.Epoch {
		t.Fatalf("rebuild report fenced %+v, want the zombie record", rep.Fenced)
	}
	if got := mvsOf(t, rebuilt); got != want {
		t.Fatal("rebuild applied the zombie record")
	}
}

func TestFailover_cleanShutdownHandsOverWithinAHeartbeat(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	c := newCluster(t)
	a := c.start(t, "a", filepath.Join(t.TempDir(), "a"))
	c.waitRole(t, a, "a", 1)
	b := c.start(t, "b", filepath.Join(t.TempDir(), "b"))
	c.waitRole(t, b, "a", 2) // b is a standby
	for _, e := range catalog() {
		c.produce(t, c.cfg.Kafka.Topics.Catalog, e)
	}
	eventually(t, 30*time.Second, "catalog committed", func() error { return c.allCommitted(ctx) })
	start := time.Now()
	a.stop(t, 20*time.Second)
	stopped := time.Since(start)
	eventually(t, 30*time.Second, "b took over", func() error {
		name, _, err := c.activeMember(ctx)
		if err == nil && name != "b" {
			return fmt.Errorf("active is %q", name)
		}
		return err
	})
	took := time.Since(start)
	t.Logf("clean handover: active stopped in %s, standby active after %s (heartbeat %s)", stopped.Round(time.Millisecond),
		took.Round(time.Millisecond), c.cfg.Kafka.HeartbeatInterval)
	// The new writer serves input at once.
	for _, e := range round(1) {
		c.produce(t, c.cfg.Kafka.Topics.Input, e)
	}
	eventually(t, 30*time.Second, "b repairs", func() error {
		m, err := getMV(b.http, mvstate.MVKey{DBID: dbID, MVID: 50001})
		if err != nil {
			return err
		}
		if v := m.VersionMap[tables[0]]["p00"].Version; v != 2 {
			return fmt.Errorf("version %d", v)
		}
		return nil
	})
	c.journal(t)
}
