package pipeline

import (
	"context"
	"errors"
	"fmt"
)

// fenceMark is one offset the group holds from this writer's generation.
type fenceMark struct {
	topic     string
	partition int
	offset    int64
}

// ErrNoFence means the writer has committed no offset yet, so it cannot
// prove that it still holds its generation.
var ErrNoFence = errors.New("pipeline: no offset committed yet to prove the generation with")

// Fence proves that this writer still holds its generation, for writes
// outside the edit log that a zombie must not make (checkpoints): it commits
// again an offset the group already holds from this generation (no change
// for the group), which the coordinator refuses once a newer generation
// exists. Safe to call from another goroutine than Run's.
func (w *Writer) Fence(ctx context.Context, c Committer) error {
	w.fenceMu.Lock()
	defer w.fenceMu.Unlock()
	m := w.fence.Load()
	if m == nil {
		return ErrNoFence
	}
	if err := c.Commit(ctx, map[string]map[int]int64{m.topic: {m.partition: m.offset}}); err != nil {
		return fmt.Errorf("pipeline: fence: %w", err)
	}
	return nil
}
