package loadgen

import (
	"context"
	"testing"

	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/store"
)

// BenchmarkProcess measures the writer's per-batch work without Kafka:
// pipeline.Processor.Process (decode, decide, encode, one local commit) on
// the cases' workloads, batches of 1000 events, with the durable store (one
// fdatasync per commit, on the disk of the temp dir) and with the memory
// one. ns/op is per batch; the metrics are per batch too.
//
//	go test -run='^$' -bench=BenchmarkProcess ./internal/loadgen/
func BenchmarkProcess(b *testing.B) {
	for _, c := range DefaultCases() {
		if c.Name == CaseOnePartition {
			continue // the same work as spread: Process does not see partitions
		}
		for _, durable := range []bool{true, false} {
			name := c.Name + "/store=memory"
			if durable {
				name = c.Name + "/store=durable"
			}
			b.Run(name, func(b *testing.B) { benchProcess(b, c, durable, 1000) })
		}
	}
}

func benchProcess(b *testing.B, c Case, durable bool, size int) {
	ctx := context.Background()
	wl := newWorkload(c.Tables, c.MVs, c.Partitions, c.TopicPartitions)
	st := store.NewMemory()
	if durable {
		dir, err := store.LockDir(b.TempDir(), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer dir.Close()
		if st, err = dir.Open(ctx); err != nil {
			b.Fatal(err)
		}
		defer st.Close(ctx, false)
	}
	topics := pipeline.Topics{Input: "in", Catalog: "catalog", EditLog: "edit-log", DLQ: "dlq"}
	p := &pipeline.Processor{Store: st, Topics: topics}
	cat, err := wl.catalogMessages(topics.Catalog)
	if err != nil {
		b.Fatal(err)
	}
	for i := range cat {
		cat[i].Offset = int64(i)
	}
	out, err := p.Process(ctx, cat, 1, pipeline.Extra{})
	if err != nil {
		b.Fatal(err)
	}
	acked := out.LastSeq()
	next := make([]int64, c.TopicPartitions)
	var k int64
	batch := make([]kafkaio.Message, size)
	var records, logBytes int64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range batch {
			m, err := wl.message(topics.Input, k, "b-"+itoa(k))
			if err != nil {
				b.Fatal(err)
			}
			part := keyPartition(string(m.Key), c.TopicPartitions)
			m.Partition, m.Offset = part, next[part]
			next[part]++
			batch[i] = m
			k++
		}
		b.StartTimer()
		out, err := p.Process(ctx, batch, 1, pipeline.Extra{Ack: acked})
		if err != nil {
			b.Fatal(err)
		}
		acked = out.LastSeq() // as if the publish was acknowledged
		records += int64(len(out.Report.Records))
		logBytes += out.Report.Bytes
		if out.Report.Repaired() != size*wl.mvsOn[0] {
			b.Fatalf("%d entries repaired, want %d", out.Report.Repaired(), size*wl.mvsOn[0])
		}
	}
	b.ReportMetric(float64(records)/float64(b.N), "records/op")
	b.ReportMetric(float64(logBytes)/float64(b.N), "logbytes/op")
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
