package loadgen

import (
	"context"
	"fmt"
	"time"

	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
)

// svcRun is one in-process service with its recorder: Open, then Run in a
// goroutine.
type svcRun struct {
	svc    *service.Service
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
}

func (r *runner) openService(ctx context.Context) (*svcRun, error) {
	rec := newRecorder()
	svc, err := service.Open(ctx, r.cfg, r.log, service.Options{Hooks: pipeline.Hooks{rec}})
	if err != nil {
		return nil, err
	}
	return &svcRun{svc: svc, rec: rec, done: make(chan error, 1)}, nil
}

func (s *svcRun) start(ctx context.Context) {
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() { s.done <- s.svc.Run(runCtx) }()
}

// stop ends Run (a graceful shutdown) and closes the service.
func (s *svcRun) stop(timeout time.Duration) error {
	var err error
	if s.cancel != nil {
		s.cancel()
		select {
		case err = <-s.done:
		case <-time.After(timeout):
			err = fmt.Errorf("service did not stop within %s", timeout)
		}
	}
	s.svc.Close()
	return err
}

// drained waits until the service has committed batches of n input
// records, then until the group's committed offsets of topic reach hwm
// (each batch's offsets are committed after its edit-log records were
// published). It returns the time of the last offset commit.
func (r *runner) drained(ctx context.Context, s *svcRun, topic string, hwm map[int]int64, n int64, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	for s.rec.eventCount() < n {
		select {
		case <-s.rec.notify:
		case <-check.C:
			if err := s.svc.Live(); err != nil {
				return time.Time{}, err
			}
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%w: %d of %d records of %s committed within %s", ErrTimeout, s.rec.eventCount(), n, topic, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for {
		c, err := r.admin.CommittedOffsets(ctx, r.cfg.Kafka.GroupID, []string{topic})
		if err == nil && reached(c[topic], hwm) {
			break
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%w: the group's offsets of %s did not reach %v within %s (last: %v, %v)", ErrTimeout, topic, hwm, timeout, c[topic], err)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	// The offset commit hook runs just after the commit returns: wait for
	// the one that follows the last batch.
	last := s.rec.lastBatchAt()
	for wait := time.Now().Add(100 * time.Millisecond); time.Now().Before(wait); time.Sleep(100 * time.Microsecond) {
		if at := s.rec.lastCommitAt(); at.After(last) {
			return at, nil
		}
	}
	return time.Now(), nil
}

// seedCatalog publishes the catalog, runs the service until it is applied,
// journaled and committed, and stops it.
func (r *runner) seedCatalog(ctx context.Context) error {
	start := time.Now()
	topic := r.cfg.Kafka.Topics.Catalog
	msgs, err := r.wl.catalogMessages(topic)
	if err != nil {
		return err
	}
	s, err := r.openService(ctx)
	if err != nil {
		return err
	}
	seeded := func() error {
		if err := r.producer.Publish(ctx, msgs...); err != nil {
			return err
		}
		hwm, err := r.admin.HighWatermarks(ctx, topic)
		if err != nil {
			return err
		}
		s.start(ctx)
		if _, err := r.drained(ctx, s, topic, hwm, int64(len(msgs)), 2*time.Minute); err != nil {
			return err
		}
		if n := s.svc.Store().State().Len(); n != r.c.MVs {
			return fmt.Errorf("the store holds %d MVs after the catalog of %d", n, r.c.MVs)
		}
		return nil
	}()
	if err := s.stop(r.cfg.ShutdownTimeout + 5*time.Second); err != nil && seeded == nil {
		return err
	}
	if seeded != nil {
		return seeded
	}
	r.progress("seeded %d MVs over %d tables x %d partitions in %s (service start, apply, journal, stop)",
		r.c.MVs, r.c.Tables, r.c.Partitions, since(start))
	return nil
}
