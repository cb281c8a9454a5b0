package testkit

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
)

// Source returns a topic of the test's brokers as a recovery source (a
// rebuild or a restore reads it whole: a position below the log start is
// reported, not skipped), read with the clients' security settings.
func (e *Env) Source(topic string) recovery.Source {
	fc := service.FetcherConfig(&e.base, e.Brokers, zerolog.Nop())
	fc.ClientID, fc.MaxWait = "itest-source", 50*time.Millisecond
	fc.ResetBelowLogStart = false
	return recovery.Source{Topic: topic,
		Open: func(ctx context.Context, start map[int]int64) (pipeline.Tail, error) {
			return kafkaio.NewTopicTail(ctx, fc, topic, start)
		},
		HWM: func(ctx context.Context) (map[int]int64, error) { return e.Admin.HighWatermarks(ctx, topic) }}
}

// RebuildFromKafka rebuilds the edit log of cfg, whole (recovery.Rebuild,
// what `rebuild --from-edit-log --full` does), into a new memory store and
// returns it with the rebuild's report.
func (e *Env) RebuildFromKafka(cfg *config.Config) (*store.Store, *recovery.Report) {
	t := e.T
	t.Helper()
	st := store.NewMemory()
	rep, err := recovery.Rebuild(Ctx(t, WaitLong), st, e.Source(cfg.Kafka.Topics.EditLog), recovery.Options{})
	if err != nil {
		t.Fatalf("rebuild from the edit log %s: %v (report %+v)", cfg.Kafka.Topics.EditLog, err, rep)
	}
	return st, rep
}

// ActiveMember returns the client id of the group's member that holds the
// input partitions, and the number of members, once the group of cfg is
// Stable.
func (e *Env) ActiveMember(cfg *config.Config) (string, int, error) {
	info, err := e.Admin.DescribeGroup(context.Background(), cfg.Kafka.GroupID)
	if err != nil {
		return "", 0, err
	}
	if info.State != "Stable" {
		return "", len(info.Members), fmt.Errorf("group %s is %s", cfg.Kafka.GroupID, info.State)
	}
	for _, m := range info.Members {
		if len(m.Partitions[cfg.Kafka.Topics.Input]) > 0 {
			return m.ClientID, len(info.Members), nil
		}
	}
	return "", len(info.Members), fmt.Errorf("no member of %s holds %s", cfg.Kafka.GroupID, cfg.Kafka.Topics.Input)
}

// WaitActive waits until the group of cfg is Stable with members members
// and the child named active holds the input (the writer); the others are
// standbys. It fails at once if a child of the test exited.
func (e *Env) WaitActive(cfg *config.Config, active string, members int, children ...*Child) {
	e.T.Helper()
	Eventually(e.T, WaitLong, func() error {
		for _, c := range children {
			if err := c.Exited(); err != nil {
				e.T.Fatal(err)
			}
		}
		name, n, err := e.ActiveMember(cfg)
		if err == nil && (name != active || n != members) {
			err = fmt.Errorf("%d member(s), active %q; want %d with %q active", n, name, members, active)
		}
		return err
	})
}
