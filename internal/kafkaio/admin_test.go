package kafkaio

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/mvrepair/mvrepair/internal/embedded"
)

func TestAdmin_EnsureTopics_is_idempotent(t *testing.T) {
	addr := startBroker(t, "seeded:2")
	admin := newTestAdmin(t, addr)
	ctx := testCtx(t, 10*time.Second)
	specs := []TopicSpec{
		{Name: "created", Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "3600000"}},
		{Name: "seeded", Partitions: 5}, // exists with 2: left alone
		{Name: "defaulted"},             // broker default partition count
	}
	for i := 0; i < 2; i++ {
		if err := admin.EnsureTopics(ctx, specs); err != nil {
			t.Fatalf("ensure #%d: %v", i+1, err)
		}
	}
	for topic, want := range map[string]int{"created": 3, "seeded": 2, "defaulted": 1} {
		ps, err := admin.Partitions(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != want {
			t.Errorf("%s has partitions %v, want %d", topic, ps, want)
		}
	}
	if _, err := admin.Partitions(ctx, "missing"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("partitions of a missing topic: %v, want ErrUnknownTopic", err)
	}
	if err := admin.EnsureTopics(ctx, []TopicSpec{{Name: "bad-rf", ReplicationFactor: 3}}); err == nil {
		t.Error("replication factor 3 on one broker accepted")
	}
	if err := admin.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}

func TestAdmin_ListOffsets_HighWatermarks_and_OffsetsForTime(t *testing.T) {
	addr := startBroker(t, "times:2")
	admin := newTestAdmin(t, addr)
	ctx := testCtx(t, 10*time.Second)
	p := newTestProducer(t, addr)

	empty, err := admin.ListOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	if len(empty) != 2 || empty[0] != (PartitionOffsets{0, 0}) || empty[1] != (PartitionOffsets{0, 0}) {
		t.Fatalf("empty topic offsets = %v", empty)
	}

	t0 := time.UnixMilli(1_700_000_000_000)
	t1 := t0.Add(time.Hour)
	var msgs []Message
	for i := 0; i < 10; i++ { // 5 records per partition at t0, then 3 at t1
		msgs = append(msgs, Message{Topic: "times", Key: []byte{byte('a' + i%2)}, Value: []byte("old"), Time: t0})
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	msgs = msgs[:0]
	for i := 0; i < 6; i++ {
		msgs = append(msgs, Message{Topic: "times", Key: []byte{byte('a' + i%2)}, Value: []byte("new"), Time: t1})
	}
	if err := p.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	offs, err := admin.ListOffsets(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	// Keys 'a' and 'b' may hash to the same partition; count by totals.
	var total, oldBy = int64(0), map[int]int64{}
	for p, po := range offs {
		if po.First != 0 {
			t.Errorf("partition %d first = %d", p, po.First)
		}
		total += po.Last
	}
	if total != 16 {
		t.Fatalf("high watermarks %v sum to %d, want 16", offs, total)
	}
	hwm, err := admin.HighWatermarks(ctx, "times")
	if err != nil {
		t.Fatal(err)
	}
	if len(hwm) != len(offs) {
		t.Errorf("HighWatermarks = %v for offsets %v", hwm, offs)
	}
	for p, po := range offs {
		if hw, ok := hwm[p]; !ok || hw != po.Last {
			t.Errorf("partition %d: HighWatermarks says %d (%v), ListOffsets' high watermark is %d", p, hw, ok, po.Last)
		}
	}
	f, err := NewTopicTail(ctx, FetcherConfig{Brokers: []string{addr}}, "times", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i++ {
		m, err := f.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Value) == "old" {
			oldBy[m.Partition]++
		}
	}
	_ = f.Close()

	at1, err := admin.OffsetsForTime(ctx, "times", t1)
	if err != nil {
		t.Fatal(err)
	}
	atMid, err := admin.OffsetsForTime(ctx, "times", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	at0, err := admin.OffsetsForTime(ctx, "times", t0.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	future, err := admin.OffsetsForTime(ctx, "times", t1.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for p, po := range offs {
		if at1[p] != oldBy[p] || atMid[p] != oldBy[p] {
			t.Errorf("partition %d: offset for t1 = %d, for t0+1m = %d, want %d (first record at or after)", p, at1[p], atMid[p], oldBy[p])
		}
		if at0[p] != 0 {
			t.Errorf("partition %d: offset for a time before all records = %d, want 0", p, at0[p])
		}
		if future[p] != po.Last {
			t.Errorf("partition %d: offset for a future time = %d, want the high watermark %d", p, future[p], po.Last)
		}
	}
	if _, err := admin.ListOffsets(ctx, "missing"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("list offsets of a missing topic: %v", err)
	}
	if _, err := admin.HighWatermarks(ctx, "missing"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("high watermarks of a missing topic: %v", err)
	}
}

func TestAdmin_commit_offsets_of_empty_group_and_lag(t *testing.T) {
	addr := startBroker(t, "lagged:3")
	admin := newTestAdmin(t, addr)
	ctx := testCtx(t, 10*time.Second)
	p := newTestProducer(t, addr)
	publishN(t, ctx, p, "lagged", 60, 12)
	offs, err := admin.ListOffsets(ctx, "lagged")
	if err != nil {
		t.Fatal(err)
	}

	// Unknown group: nothing committed (kfake answers error 69), lag = all.
	none, err := admin.CommittedOffsets(ctx, "g-admin", []string{"lagged"})
	if err != nil {
		t.Fatal(err)
	}
	lag, err := Lag(ctx, admin, "g-admin", []string{"lagged"})
	if err != nil {
		t.Fatal(err)
	}
	for part, po := range offs {
		if none["lagged"][part] != -1 {
			t.Errorf("partition %d committed = %d before any commit, want -1", part, none["lagged"][part])
		}
		if lag["lagged"][part] != po.Last-po.First {
			t.Errorf("partition %d lag = %d, want %d", part, lag["lagged"][part], po.Last-po.First)
		}
	}
	info, err := admin.DescribeGroup(ctx, "g-admin")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "Dead" || len(info.Members) != 0 {
		t.Errorf("unknown group described as %+v", info)
	}

	// Commit (rewind) the stopped group, then read back.
	set := map[string]map[int]int64{"lagged": {0: 1, 2: offs[2].Last}}
	if err := admin.CommitGroupOffsets(ctx, "g-admin", set); err != nil {
		t.Fatal(err)
	}
	got, err := admin.CommittedOffsets(ctx, "g-admin", []string{"lagged"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]int64{0: 1, 1: -1, 2: offs[2].Last}
	for part, w := range want {
		if got["lagged"][part] != w {
			t.Errorf("partition %d committed = %d, want %d", part, got["lagged"][part], w)
		}
	}
	lag, err = Lag(ctx, admin, "g-admin", []string{"lagged"})
	if err != nil {
		t.Fatal(err)
	}
	wantLag := map[int]int64{0: offs[0].Last - 1, 1: offs[1].Last, 2: 0}
	for part, w := range wantLag {
		if lag["lagged"][part] != w {
			t.Errorf("partition %d lag = %d, want %d", part, lag["lagged"][part], w)
		}
	}
	info, err = admin.DescribeGroup(ctx, "g-admin")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "Empty" {
		t.Errorf("group with offsets and no members is %q, want Empty", info.State)
	}
	if err := admin.CommitGroupOffsets(ctx, "g-admin", map[string]map[int]int64{"lagged": {0: -1}}); err == nil {
		t.Error("negative offset accepted")
	}

	// A running group consumes from the rewound offsets.
	g := newTestGroup(t, fastGroupConfig(addr, "g-admin", "a", "lagged"))
	gen := nextActiveGen(t, g, 10*time.Second)
	for _, a := range gen.Assignments()["lagged"] {
		w := want[a.Partition]
		if w < 0 {
			w = OffsetFirst
		}
		if a.Offset != w {
			t.Errorf("partition %d assigned at %d, want %d", a.Partition, a.Offset, w)
		}
	}
	// ...and an active group cannot be rewound by the admin.
	err = admin.CommitGroupOffsets(ctx, "g-admin", set)
	if !errors.Is(err, ErrGroupNotEmpty) {
		t.Errorf("commit to an active group: %v, want ErrGroupNotEmpty", err)
	}
	t.Logf("commit to an active group: %v", err)
}

func TestAdmin_Ping_fails_without_broker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	admin := newTestAdmin(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = admin.Ping(ctx)
	if err == nil {
		t.Fatal("ping succeeded without a broker")
	}
	t.Logf("ping: %v", err)
	if !IsTransient(err) {
		t.Errorf("IsTransient(%v) = false", err)
	}
}

func TestAdmin_Ping_detects_broker_loss(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	admin := newTestAdmin(t, b.Addr())
	if err := admin.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	b.Close()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := admin.Ping(short); err == nil {
		t.Fatal("ping succeeded after the broker stopped")
	} else if !IsTransient(err) {
		t.Errorf("IsTransient(%v) = false", err)
	}
}

func TestAdmin_TopicConfigs_returnsEffectiveConfigs(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 1, map[string]string{"retention.ms": "3600000", "cleanup.policy": "compact"})
	admin := newTestAdmin(t, brokers[0])
	cfgs, err := admin.TopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if cfgs["retention.ms"] != "3600000" || cfgs["cleanup.policy"] != "compact" {
		t.Errorf("set configs: retention.ms=%q cleanup.policy=%q", cfgs["retention.ms"], cfgs["cleanup.policy"])
	}
	if v, err := strconv.Atoi(cfgs["max.message.bytes"]); err != nil || v <= 0 {
		t.Errorf("inherited max.message.bytes = %q, want the broker default", cfgs["max.message.bytes"])
	}
	t.Logf("%d configs, max.message.bytes=%s", len(cfgs), cfgs["max.message.bytes"])
	if _, err := admin.TopicConfigs(ctx, "no-such-topic-"+topic); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("configs of a missing topic: %v, want ErrUnknownTopic", err)
	}
}

func TestAdmin_DeleteRecords_movesTheLogStart(t *testing.T) {
	brokers, _ := testBrokers(t)
	ctx := testCtx(t, 30*time.Second)
	topic := newTopic(t, ctx, brokers, 2, nil)
	admin := newTestAdmin(t, brokers[0])
	p := newTestProducer(t, brokers[0])
	publishTo(t, ctx, p, topic, 1, 2, seq("v", 0, 10)...)

	low, err := admin.DeleteRecords(ctx, topic, 1, 4)
	if err != nil || low != 4 {
		t.Fatalf("delete below 4: %d, %v", low, err)
	}
	offs, err := admin.ListOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if offs[1] != (PartitionOffsets{First: 4, Last: 10}) || offs[0] != (PartitionOffsets{}) {
		t.Errorf("offsets after the delete: %v", offs)
	}
	// Below the log start: nothing to do.
	if low, err := admin.DeleteRecords(ctx, topic, 1, 2); err != nil || low != 4 {
		t.Errorf("delete below 2 after 4: %d, %v, want 4", low, err)
	}
	// -1: everything.
	if low, err := admin.DeleteRecords(ctx, topic, 1, -1); err != nil || low != 10 {
		t.Errorf("delete all: %d, %v, want 10", low, err)
	}
	// Above the high watermark.
	_, err = admin.DeleteRecords(ctx, topic, 1, 11)
	var oor *OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.HighWatermark != 10 || oor.Offset != 11 {
		t.Errorf("delete below 11 (high watermark 10): %v, want an *OffsetOutOfRangeError", err)
	}
	if _, err := admin.DeleteRecords(ctx, "no-such-topic-"+topic, 0, 1); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("delete records of a missing topic: %v, want ErrUnknownTopic", err)
	}
	if _, err := admin.DeleteRecords(ctx, topic, 7, 1); err == nil {
		t.Error("delete records of partition 7 of 2 succeeded")
	} else {
		t.Logf("partition 7: %v", err)
	}
	if _, err := admin.DeleteRecords(ctx, topic, 1, -5); err == nil {
		t.Error("offset -5 accepted")
	}
}

// The DeleteRecords messages are defined here with kafka-go's struct tags in
// their classic (v0-v1) and flexible (v2) encodings; a broker capped at v1
// exercises the classic one.
func TestAdmin_DeleteRecords_withTheClassicEncoding(t *testing.T) {
	v := kversion.Stable()
	v.SetMaxKeyVersion(21, 1)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "old"), kfake.MaxVersions(v))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	ctx := testCtx(t, 20*time.Second)
	p := newTestProducer(t, addr)
	publishN(t, ctx, p, "old", 5, 1)
	admin := newTestAdmin(t, addr)
	if low, err := admin.DeleteRecords(ctx, "old", 0, 3); err != nil || low != 3 {
		t.Fatalf("delete records (v1): %d, %v", low, err)
	}
}
