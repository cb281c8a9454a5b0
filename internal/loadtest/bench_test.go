package loadtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/mvstate"
)

// BenchmarkPipeline measures the writer's per-batch work without Kafka:
// pipeline.Processor.Process (decode, repair, encode, one local commit) on the
// load workload (48 MVs over 12 tables, each event repairing 4 MVs), with
// the durable bbolt store and with the in-memory one. ns/op is per batch;
// the events/s metric is what one core sustains on this step alone.
func BenchmarkPipeline(b *testing.B) {
	for _, durable := range []bool{true, false} {
		for _, size := range []int{1000, 5000} {
			name := fmt.Sprintf("store=memory/batch=%d", size)
			if durable {
				name = fmt.Sprintf("store=bbolt/batch=%d", size)
			}
			b.Run(name, func(b *testing.B) { benchProcess(b, durable, size) })
		}
	}
}

func benchProcess(b *testing.B, durable bool, size int) {
	ctx := context.Background()
	const topicPartitions = 6
	wl := newWorkload(DefaultTables, DefaultMVs, DefaultPartitions, topicPartitions)
	store := mvstate.NewMemory()
	if durable {
		var err error
		if store, err = mvstate.Open(ctx, b.TempDir(), mvstate.Options{}); err != nil {
			b.Fatal(err)
		}
		defer store.Close()
	}
	topics := pipeline.Topics{Input: "in", Catalog: "catalog", EditLog: "edit-log", DLQ: "dlq"}
	p := &pipeline.Processor{Store: store, Topics: topics, Log: zerolog.Nop()}
	cat, err := wl.catalogMessages(topics.Catalog)
	if err != nil {
		b.Fatal(err)
	}
	for i := range cat {
		cat[i].Offset = int64(i)
	}
	out, err := p.Process(ctx, cat, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	acked := out.LastSeq()
	next := make([]int64, topicPartitions)
	var k int64
	batch := make([]kafkaio.Message, size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			m, err := wl.message(topics.Input, k, "b-"+itoa(k))
			if err != nil {
				b.Fatal(err)
			}
			part := keyPartition(string(m.Key), topicPartitions)
			m.Partition, m.Offset = part, next[part]
			next[part]++
			batch[i] = m
			k++
		}
		b.StartTimer()
		out, err := p.Process(ctx, batch, 1, acked)
		if err != nil {
			b.Fatal(err)
		}
		acked = out.LastSeq() // as if the publish was acknowledged
		if len(out.Records) == 0 {
			b.Fatal("no records")
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
