package kafkaio

import (
	"context"
	"fmt"
)

// Lag returns the consumer lag of group for every partition of topics: the
// high watermark minus the committed offset, or minus the first offset when
// the group has committed nothing for the partition (everything retained is
// still to be read). kafka-go's Reader cannot report it for groups.
func Lag(ctx context.Context, admin *Admin, group string, topics []string) (map[string]map[int]int64, error) {
	committed, err := admin.CommittedOffsets(ctx, group, topics)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: lag of group %q: %w", group, err)
	}
	out := make(map[string]map[int]int64, len(topics))
	for _, t := range topics {
		offs, err := admin.ListOffsets(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("kafkaio: lag of group %q: %w", group, err)
		}
		m := make(map[int]int64, len(offs))
		for p, po := range offs {
			from := po.First
			if c, ok := committed[t][p]; ok && c >= 0 {
				from = c
			}
			m[p] = max(po.Last-from, 0)
		}
		out[t] = m
	}
	return out, nil
}
