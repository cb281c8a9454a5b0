package checkpoint

import (
	"context"
	"fmt"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/recovery"
)

// Latest returns the latest checkpoint marker of the snapshot topic, or nil
// when it holds none. Markers are written last, so it reads the topic's
// tail first and goes further back only when the tail holds none (MV
// records of a checkpoint cut short follow the latest marker).
func Latest(ctx context.Context, src recovery.Source) (*editlog.Checkpoint, error) {
	hwm, err := src.HWM(ctx)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: snapshot topic high watermark: %w", err)
	}
	end := hwm[0]
	for back := int64(64); ; back *= 8 {
		from := max(end-back, 0)
		c, err := markerIn(ctx, src, from, end)
		if err != nil || c != nil || from == 0 {
			return c, err
		}
	}
}

// markerIn returns the last marker between offsets from and end.
func markerIn(ctx context.Context, src recovery.Source, from, end int64) (*editlog.Checkpoint, error) {
	if end <= from {
		return nil, nil
	}
	tail, err := src.Open(ctx, map[int]int64{0: from})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read %s: %w", src.Topic, err)
	}
	defer tail.Close()
	var last *editlog.Checkpoint
	for {
		m, err := tail.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: read %s: %w", src.Topic, err)
		}
		if m.Offset >= end {
			return last, nil
		}
		if !m.Skip && string(m.Key) == editlog.CheckpointKey {
			if c, err := editlog.DecodeCheckpoint(m.Value); err == nil {
				last = &c
			}
		}
		if m.Offset+1 >= end {
			return last, nil
		}
	}
}
