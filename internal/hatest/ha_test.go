package hatest

import (
	"fmt"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

const (
	dbID  = 10001
	parts = 20
	t0    = int64(1_700_000_000_000)
)

var tables = []int64{20001, 20002}

// victim is the MV whose version the tests watch (p00 of its first table).
var victim = mvstate.MVKey{DBID: dbID, MVID: 50001}

func catalog() []events.Event {
	var out []events.Event
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
func round(r int) []events.Event {
	var out []events.Event
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

func TestFailover_standbyTakesOverAfterKill9AndNothingIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	e := testkit.NewEnv(t)
	cfg := haConfig(e, "failover")
	tp := cfg.Kafka.Topics
	a := start(e, cfg, "a")
	e.WaitActive(cfg, "a", 1, a.Child)
	b := start(e, cfg, "b")
	e.WaitActive(cfg, "a", 2, a.Child, b.Child) // b is a standby

	const rounds = 20
	cat := messages(t, tp.Catalog, catalog()...)
	var input []kafkaio.Message
	for r := 1; r < rounds; r++ {
		input = append(input, messages(t, tp.Input, round(r)...)...)
	}
	perRound := len(tables) * parts
	send := func(from, to int) error {
		// A stream, not a burst: the kill lands mid-stream.
		return e.PublishPaced(input[(from-1)*perRound:(to-1)*perRound], perRound, 50*time.Millisecond)
	}
	e.Publish(cat...)
	// The MVs exist before the first repair is decided: the catalog and the
	// input are two topics, with no order between them, and a repair of an
	// MV whose catalog record comes later is skipped for good (rule §3.1:
	// no related MV), and the MV then misses every later link of its
	// version chain.
	e.WaitCommitted(cfg, tp.Catalog)
	if err := send(1, 8); err != nil {
		t.Fatal(err)
	}
	// The standby follows the edit log and serves what it applied.
	addrB := b.HTTP()
	e.Eventually(testkit.WaitLong, func() error {
		v, err := b.versionOf(t, addrB, victim)
		if err == nil && v < 4 {
			err = fmt.Errorf("standby b serves version %d, want at least 4", v)
		}
		return err
	})
	if err := send(8, 12); err != nil {
		t.Fatal(err)
	}
	// Kill the active member while the group is Stable (kfake never expires
	// a member killed during a JoinGroup), under the stream.
	e.WaitActive(cfg, "a", 2, a.Child, b.Child)
	a.Kill()
	killed := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- send(12, rounds) }()
	var takeover time.Duration
	testkit.Eventually(t, testkit.WaitLong, func() error {
		if err := b.Exited(); err != nil {
			t.Fatal(err)
		}
		name, _, err := e.ActiveMember(cfg)
		if err == nil && name != "b" {
			err = fmt.Errorf("active is %q", name)
		}
		takeover = time.Since(killed)
		return err
	})
	t.Logf("takeover after kill -9: %s (session timeout %s, heartbeat %s)", takeover.Round(time.Millisecond),
		cfg.Kafka.SessionTimeout, cfg.Kafka.HeartbeatInterval)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	e.WaitCaughtUp(cfg)
	j, epochs := journal(e, cfg)
	if len(epochs) < 2 {
		t.Fatalf("the edit log carries epochs %v; want the old and the new writer's", epochs)
	}
	b.Terminate(cfg.ShutdownTimeout + 10*time.Second)

	stB := testkit.OpenStore(t, b.cfg.State.Dir)
	if stB.JournalID() != j.Last() {
		t.Fatalf("b's journal id %d, edit log up to %d", stB.JournalID(), j.Last())
	}
	live := testkit.ExportOf(t, stB)
	testkit.SameText(t, "state after failover vs a crash-free run", testkit.MVsOf(t, live),
		testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), cat, input))
	// Rebuild equivalence: the edit log alone gives the same state.
	rebuilt, rep := e.RebuildFromKafka(cfg)
	if len(rep.Fenced) > 0 || len(rep.Gaps) > 0 {
		t.Errorf("rebuild fenced %v, found gaps %v: the old writer died, it was not a zombie", rep.Fenced, rep.Gaps)
	}
	testkit.SameText(t, "state rebuilt from the edit log vs b's", testkit.ExportOf(t, rebuilt.State()), live)
}

func TestZombie_lateRecordOfOlderEpochIsIgnoredByFollowersAndFencedByRebuild(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	e := testkit.NewEnv(t)
	cfg := haConfig(e, "zombie")
	tp := cfg.Kafka.Topics
	a := start(e, cfg, "a")
	e.WaitActive(cfg, "a", 1, a.Child)
	f := start(e, cfg, "f")
	e.WaitActive(cfg, "a", 2, a.Child, f.Child) // f is a standby
	cat := messages(t, tp.Catalog, catalog()...)
	input := messages(t, tp.Input, round(1)...)
	e.Publish(cat...)
	e.WaitCommitted(cfg, tp.Catalog) // the MVs exist before the first repair is decided (see the failover test)
	e.Publish(input...)
	e.WaitCaughtUp(cfg)
	j, epochs := journal(e, cfg)
	var epoch int64
	for ep := range epochs {
		epoch = max(epoch, ep)
	}
	if epoch < 2 {
		t.Fatalf("writer epoch %d leaves no older epoch to forge (the standby's join must have started a new generation)", epoch)
	}
	// A zombie of an older epoch publishes a destructive record late.
	zombie := &editlog.Record{JournalID: j.Last() + 1, Epoch: epoch - 1, Op: editlog.OpDropped, At: 1,
		MV: editlog.MVRef{DBID: victim.DBID, MVID: victim.MVID}}
	zb, err := editlog.Encode(zombie)
	if err != nil {
		t.Fatal(err)
	}
	e.Publish(kafkaio.Message{Topic: tp.EditLog, Key: []byte(zombie.Key()), Value: zb,
		Headers: []kafkaio.Header{{Key: editlog.HeaderJournalID, Value: []byte(zombie.JournalHeader())}}})
	round2 := messages(t, tp.Input, round(2)...)
	input = append(input, round2...)
	e.Publish(round2...)
	e.WaitCaughtUp(cfg)
	addrF := f.HTTP()
	e.Eventually(testkit.WaitLong, func() error {
		v, err := f.versionOf(t, addrF, victim)
		if err == nil && v != 3 {
			err = fmt.Errorf("the follower serves version %d of the victim, want 3 (round 2 applied, the zombie's drop ignored)", v)
		}
		return err
	})
	a.Terminate(cfg.ShutdownTimeout + 10*time.Second)
	f.Terminate(cfg.ShutdownTimeout + 10*time.Second)
	want := testkit.ExpectedMVs(t, testkit.TopicsOf(cfg), cat, input)
	for _, in := range []*instance{a, f} {
		testkit.SameText(t, "state of "+in.Name+" vs the expected one", testkit.MVsOf(t, testkit.ExportOf(t, testkit.OpenStore(t, in.cfg.State.Dir))), want)
	}
	rebuilt, rep := e.RebuildFromKafka(cfg)
	if len(rep.Fenced) != 1 || rep.Fenced[0].JournalID != zombie.JournalID || rep.Fenced[0].Epoch != zombie.Epoch {
		t.Fatalf("rebuild report fenced %+v, want the zombie record (journal id %d, epoch %d)", rep.Fenced, zombie.JournalID, zombie.Epoch)
	}
	testkit.SameText(t, "state rebuilt from the edit log vs the expected one (the zombie's record fenced)",
		testkit.MVsOf(t, testkit.ExportOf(t, rebuilt.State())), want)
}

func TestFailover_cleanShutdownHandsOverWithinAHeartbeat(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	e := testkit.NewEnv(t)
	cfg := haConfig(e, "handover")
	tp := cfg.Kafka.Topics
	a := start(e, cfg, "a")
	e.WaitActive(cfg, "a", 1, a.Child)
	b := start(e, cfg, "b")
	e.WaitActive(cfg, "a", 2, a.Child, b.Child) // b is a standby
	e.Publish(messages(t, tp.Catalog, catalog()...)...)
	e.WaitCaughtUp(cfg)
	begin := time.Now()
	stopped := a.Terminate(cfg.ShutdownTimeout + 10*time.Second)
	e.WaitActive(cfg, "b", 1, b.Child)
	took := time.Since(begin)
	t.Logf("clean handover: active stopped in %s, standby active after %s (heartbeat %s)", stopped.Round(time.Millisecond),
		took.Round(time.Millisecond), cfg.Kafka.HeartbeatInterval)
	// A clean stop leaves the group at once: the standby takes over without
	// waiting for the session timeout of the member that left.
	if handover := took - stopped; handover >= cfg.Kafka.SessionTimeout {
		t.Errorf("standby active %s after the old writer exited; a member that leaves cleanly is not waited for (session timeout %s)",
			handover.Round(time.Millisecond), cfg.Kafka.SessionTimeout)
	}
	// The new writer serves input at once.
	e.Publish(messages(t, tp.Input, round(1)...)...)
	addrB := b.HTTP()
	e.Eventually(testkit.WaitLong, func() error {
		v, err := b.versionOf(t, addrB, victim)
		if err == nil && v != 2 {
			err = fmt.Errorf("b serves version %d, want 2", v)
		}
		return err
	})
	journal(e, cfg)
}
