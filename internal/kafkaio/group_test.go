package kafkaio

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestGroup_single_active_failover(t *testing.T) {
	addr := startBroker(t, "in-a:3", "in-b:2")
	admin := newTestAdmin(t, addr)

	a := newTestGroup(t, fastGroupConfig(addr, "g-failover", "a", "in-a", "in-b"))
	genA1 := nextGen(t, a, 10*time.Second)
	if !genA1.Active() || countPartitions(genA1.Assignments()) != 5 {
		t.Fatalf("first member: active=%v assignments=%v, want all 5 partitions", genA1.Active(), genA1.Assignments())
	}
	for topic, as := range genA1.Assignments() {
		for _, x := range as {
			if x.Offset != OffsetFirst {
				t.Errorf("%s/%d starts at %d, want OffsetFirst (nothing committed)", topic, x.Partition, x.Offset)
			}
		}
	}
	if st := a.Balancer().State(); !st.Active || st.Gen != genA1.ID() || st.Name != "a" {
		t.Errorf("advertised state after gen %d = %+v", genA1.ID(), st)
	}

	// A second member joins: A keeps everything, B is a standby.
	b := newTestGroup(t, fastGroupConfig(addr, "g-failover", "b", "in-a", "in-b"))
	genB2 := nextGen(t, b, 10*time.Second)
	if genB2.Active() || len(genB2.Assignments()) != 0 {
		t.Fatalf("second member got %v, want nothing", genB2.Assignments())
	}
	genA2 := nextGen(t, a, 10*time.Second)
	if !genA2.Active() || countPartitions(genA2.Assignments()) != 5 {
		t.Fatalf("first member after join: %v, want all 5 partitions", genA2.Assignments())
	}
	if genA2.ID() != genB2.ID() || genA2.ID() <= genA1.ID() {
		t.Errorf("generation ids: A %d then %d, B %d", genA1.ID(), genA2.ID(), genB2.ID())
	}
	if genA2.MemberID() == genB2.MemberID() || genA2.MemberID() == "" {
		t.Errorf("member ids %q and %q", genA2.MemberID(), genB2.MemberID())
	}

	// The broker sees one member with all partitions and one with none.
	ctx := testCtx(t, 10*time.Second)
	waitFor(t, 5*time.Second, "group Stable with 2 members", func() bool {
		info, err := admin.DescribeGroup(ctx, "g-failover")
		return err == nil && info.State == "Stable" && len(info.Members) == 2
	})
	info, err := admin.DescribeGroup(ctx, "g-failover")
	if err != nil {
		t.Fatal(err)
	}
	holders := 0
	for _, m := range info.Members {
		n := 0
		for _, ps := range m.Partitions {
			n += len(ps)
		}
		if n > 0 {
			holders++
			if n != 5 || m.ID != genA2.MemberID() {
				t.Errorf("member %s holds %d partitions", m.ID, n)
			}
		}
		if m.Instance == nil || (m.Instance.Name != "a" && m.Instance.Name != "b") {
			t.Errorf("member %s advertises %+v", m.ID, m.Instance)
		}
	}
	if holders != 1 {
		t.Errorf("%d members hold partitions, want 1: %+v", holders, info.Members)
	}

	// Close the active member: the standby takes over everything.
	closed := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	genB3 := nextActiveGen(t, b, 10*time.Second)
	t.Logf("failover after clean close took %v", time.Since(closed))
	if countPartitions(genB3.Assignments()) != 5 {
		t.Fatalf("standby after failover: %v, want all 5 partitions", genB3.Assignments())
	}
	if genB3.ID() <= genB2.ID() {
		t.Errorf("generation id did not increase: %d then %d", genB2.ID(), genB3.ID())
	}
	if _, err := a.Next(ctx); !errors.Is(err, ErrGroupClosed) {
		t.Errorf("Next after Close = %v, want ErrGroupClosed", err)
	}
}

func TestGroup_commit_and_resume_offsets(t *testing.T) {
	addr := startBroker(t, "resume:2")
	admin := newTestAdmin(t, addr)
	ctx := testCtx(t, 15*time.Second)

	g := newTestGroup(t, fastGroupConfig(addr, "g-resume", "a", "resume"))
	gen := nextActiveGen(t, g, 10*time.Second)
	commitErr := make(chan error, 1)
	gen.Run(func(gctx context.Context) {
		commitErr <- gen.Commit(gctx, map[string]map[int]int64{"resume": {0: 7, 1: 3}})
		<-gctx.Done()
	})
	if err := <-commitErr; err != nil {
		t.Fatalf("commit: %v", err)
	}
	got, err := admin.CommittedOffsets(ctx, "g-resume", []string{"resume"})
	if err != nil {
		t.Fatal(err)
	}
	if got["resume"][0] != 7 || got["resume"][1] != 3 {
		t.Fatalf("committed = %v, want 0:7 1:3", got)
	}
	if err := gen.Commit(ctx, map[string]map[int]int64{"resume": {0: -5}}); err == nil {
		t.Error("negative offset accepted")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// A new member of the group starts at the committed offsets.
	g2 := newTestGroup(t, fastGroupConfig(addr, "g-resume", "b", "resume"))
	gen2 := nextActiveGen(t, g2, 10*time.Second)
	want := []Assignment{{Partition: 0, Offset: 7}, {Partition: 1, Offset: 3}}
	as := gen2.Assignments()["resume"]
	if len(as) != 2 || as[0] != want[0] || as[1] != want[1] {
		t.Fatalf("assignments = %v, want %v", as, want)
	}
}

// A member stuck in its batch past the rebalance timeout is evicted; the
// standby takes over; the zombie's late commit is refused with ErrFenced, and
// when it rejoins it stays a standby.
func TestGroup_commit_from_fenced_generation(t *testing.T) {
	addr := startBroker(t, "fence:2")
	ctx := testCtx(t, 30*time.Second)

	cfg := fastGroupConfig(addr, "g-fence", "a", "fence")
	cfg.RebalanceTimeout = time.Second
	a := newTestGroup(t, cfg)
	genA := nextActiveGen(t, a, 10*time.Second)

	ended := make(chan struct{})
	doCommit := make(chan struct{})
	commitErr := make(chan error, 1)
	genA.Run(func(gctx context.Context) {
		<-gctx.Done() // the generation ended (B joined)...
		close(ended)
		<-doCommit // ...but the member keeps working past the rebalance timeout
		commitErr <- genA.Commit(ctx, map[string]map[int]int64{"fence": {0: 1}})
	})

	cfg.InstanceName, cfg.ClientID = "b", "test-b"
	b := newTestGroup(t, cfg)
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("A's generation never ended")
	}
	genB := nextActiveGen(t, b, 15*time.Second) // after A is evicted
	if genB.ID() <= genA.ID() {
		t.Errorf("B active in generation %d, A was in %d", genB.ID(), genA.ID())
	}
	close(doCommit)
	err := <-commitErr
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("zombie commit: %v, want ErrFenced", err)
	}
	if IsTransient(err) {
		t.Errorf("fenced error classified transient")
	}
	t.Logf("zombie commit: %v", err)

	// The zombie rejoins (it still advertises active, but an older gen) and
	// must come back as a standby.
	deadline := time.Now().Add(15 * time.Second)
	for {
		gen, err := a.Next(ctx)
		if err != nil {
			t.Logf("zombie rejoin: %v", err)
			if time.Now().After(deadline) {
				t.Fatal("zombie never rejoined")
			}
			continue
		}
		if gen.Active() {
			t.Fatalf("zombie became active again in generation %d", gen.ID())
		}
		if gen.ID() <= genB.ID() {
			t.Errorf("zombie rejoined in generation %d, B was active in %d", gen.ID(), genB.ID())
		}
		break
	}
}

func TestGroup_range_balancer_splits_partitions(t *testing.T) {
	addr := startBroker(t, "ranged:4")
	ca := fastGroupConfig(addr, "g-range", "a", "ranged")
	ca.Balancer = BalancerRange
	cb := ca
	cb.InstanceName, cb.ClientID = "b", "test-b"
	a := newTestGroup(t, ca)
	_ = nextActiveGen(t, a, 10*time.Second)
	b := newTestGroup(t, cb)
	genB := nextActiveGen(t, b, 10*time.Second)
	genA := nextGen(t, a, 10*time.Second)
	if n, m := countPartitions(genA.Assignments()), countPartitions(genB.Assignments()); n != 2 || m != 2 {
		t.Errorf("range split %d/%d, want 2/2", n, m)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGroup_logs_through_zerolog_at_debug(t *testing.T) {
	addr := startBroker(t, "logged:1")
	var buf syncBuffer
	cfg := fastGroupConfig(addr, "g-log", "a", "logged")
	cfg.Logger = zerolog.New(&buf).Level(zerolog.DebugLevel)
	g := newTestGroup(t, cfg)
	_ = nextActiveGen(t, g, 10*time.Second)
	out := buf.String()
	if !strings.Contains(out, `"level":"debug"`) || !strings.Contains(out, `"component":"kafka-group"`) || !strings.Contains(out, "Joined group g-log") {
		t.Errorf("kafka-go logs not routed to zerolog at debug:\n%s", out)
	}
}
