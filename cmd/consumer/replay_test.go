package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/demo"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
)

func testConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.State.Dir = t.TempDir()
	cfg.Kafka.EmbeddedAddr = "127.0.0.1:0"
	cfg.Kafka.Partitions = 3
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Kafka.HeartbeatInterval = 200 * time.Millisecond
	cfg.Batch.MaxWait = 5 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	return &cfg
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running starts svc.Run and returns a function that stops it.
func running(t *testing.T, svc *service.Service) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
}

func hwm(t *testing.T, svc *service.Service, topic string) int64 {
	offs, err := svc.Admin().ListOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, o := range offs {
		n += o.Last
	}
	return n
}

func applied(svc *service.Service, topic string) error {
	offs, err := svc.Admin().ListOffsets(context.Background(), topic)
	if err != nil {
		return err
	}
	for p, o := range offs {
		if o.Last > 0 && svc.Store().State().AppliedOffset(topic, p) < o.Last {
			return fmt.Errorf("%s/%d applied %d of %d", topic, p, svc.Store().State().AppliedOffset(topic, p), o.Last)
		}
	}
	return nil
}

func TestReplay_fromZeroReconsumesAndJournalsNothingNew(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	svc, err := service.Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	recs, err := demo.Stream()
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, svc)
	var cat, in []kafkaio.Message
	for _, r := range recs {
		if r.Catalog {
			cat = append(cat, kafkaio.Message{Topic: cfg.Kafka.Topics.Catalog, Key: []byte(r.Key), Value: r.Value})
		} else {
			in = append(in, kafkaio.Message{Topic: cfg.Kafka.Topics.Input, Key: []byte(r.Key), Value: r.Value})
		}
	}
	if err := svc.Producer().Publish(ctx, cat...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "catalog applied", func() error { return applied(svc, cfg.Kafka.Topics.Catalog) })
	if err := svc.Producer().Publish(ctx, in...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "input applied and journaled", func() error {
		if err := applied(svc, cfg.Kafka.Topics.Input); err != nil {
			return err
		}
		if h := hwm(t, svc, cfg.Kafka.Topics.EditLog); h < svc.Store().State().JournalID() {
			return fmt.Errorf("edit log holds %d of %d records", h, svc.Store().State().JournalID())
		}
		return nil
	})

	// While the group has a member, replay refuses.
	var out bytes.Buffer
	err = replay(ctx, &out, svc, cfg.Kafka.GroupID, &replayOptions{topic: cfg.Kafka.Topics.Input, partition: -1})
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || !strings.Contains(err.Error(), "stop every instance") {
		t.Fatalf("replay with an active group: %v", err)
	}
	stop()
	var before bytes.Buffer
	if err := svc.Store().State().Export(ctx, &before); err != nil {
		t.Fatal(err)
	}
	journal := hwm(t, svc, cfg.Kafka.Topics.EditLog)
	waitFor(t, "group empty", func() error {
		info, err := svc.Admin().DescribeGroup(ctx, cfg.Kafka.GroupID)
		if err == nil && len(info.Members) > 0 {
			return fmt.Errorf("%d members", len(info.Members))
		}
		return err
	})

	// A dry run prints the plan and changes nothing.
	out.Reset()
	if err := replay(ctx, &out, svc, cfg.Kafka.GroupID, &replayOptions{topic: cfg.Kafka.Topics.Input, partition: -1, dryRun: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "dry run: nothing changed") || applied(svc, cfg.Kafka.Topics.Input) != nil {
		t.Fatalf("dry run output or state wrong:\n%s", out.String())
	}
	out.Reset()
	if err := replay(ctx, &out, svc, cfg.Kafka.GroupID, &replayOptions{topic: cfg.Kafka.Topics.Input, partition: -1}); err != nil {
		t.Fatal(err)
	}
	committed, err := svc.Admin().CommittedOffsets(ctx, cfg.Kafka.GroupID, []string{cfg.Kafka.Topics.Input})
	if err != nil {
		t.Fatal(err)
	}
	st := svc.Store().State()
	for p, off := range committed[cfg.Kafka.Topics.Input] {
		mark := st.AppliedOffset(pipeline.GroupMarkTopic(cfg.Kafka.Topics.Input), p)
		if off > 0 || st.AppliedOffset(cfg.Kafka.Topics.Input, p) > 0 || mark > 0 {
			t.Fatalf("partition %d not rewound: group %d, store %d, store's mark of the group's offset %d",
				p, off, st.AppliedOffset(cfg.Kafka.Topics.Input, p), mark)
		}
	}

	// Replaying every event again changes nothing and journals nothing.
	stop = running(t, svc)
	waitFor(t, "replayed input applied", func() error { return applied(svc, cfg.Kafka.Topics.Input) })
	stop()
	var after bytes.Buffer
	if err := svc.Store().State().Export(ctx, &after); err != nil {
		t.Fatal(err)
	}
	if before.String() != after.String() {
		t.Fatalf("replay changed the state")
	}
	if j := hwm(t, svc, cfg.Kafka.Topics.EditLog); j != journal {
		t.Fatalf("replay journaled %d new records", j-journal)
	}
}

func TestReplay_refusesTheCatalogTopicWithoutForce(t *testing.T) {
	cmd := newRoot()
	t.Setenv("MVREPAIR_STATE_DIR", t.TempDir())
	cmd.SetArgs([]string{"replay", "--topic", "mv-catalog", "--from-offset", "0"})
	cmd.SetOut(&bytes.Buffer{})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("want a refusal naming --force, got %v", err)
	}
}
