package hatest

import (
	"context"
	"fmt"
	"testing"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/mvstate"
)

// BenchmarkRebuild_1MPartitionEntries times `rebuild --from-edit-log` of an
// edit log holding 1,000 MVs of 1,000 recorded partitions each (1M entries,
// about 100 MB of journal) into a durable store, through the real broker
// path (kafka-go reading the embedded broker over TCP). Run with
// -benchtime=1x.
func BenchmarkRebuild_1MPartitionEntries(b *testing.B) {
	const mvs, perMV = 1000, 1000
	c := newCluster(b)
	ctx := context.Background()
	for i := int64(1); i <= mvs; i += 10 {
		var msgs []kafkaio.Message
		for j := i; j < i+10; j++ {
			m := &mvstate.MV{DBID: 1, MVID: j, DBName: "d", MVName: fmt.Sprint("mv", j), Active: true,
				BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: 1, TableID: 7}},
				VersionMap: mvstate.VersionMap{7: {}}}
			for p := 0; p < perMV; p++ {
				m.VersionMap[7][fmt.Sprintf("p%06d", p)] = mvstate.NewBasePartitionInfo(int64(p+1), 5, 1_700_000_000_000)
			}
			r := &editlog.Record{JournalID: j, Epoch: 1, Op: editlog.OpUpserted, At: 1, MV: editlog.MVRef{DBID: 1, MVID: j}, Definition: m}
			v, err := editlog.Encode(r)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, kafkaio.Message{Topic: c.cfg.Kafka.Topics.EditLog, Key: []byte(r.Key()), Value: v})
		}
		if err := c.prod.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := mvstate.Open(ctx, b.TempDir(), mvstate.Options{})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := recovery.Rebuild(ctx, st, c.source(), false)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Applied != mvs || st.Len() != mvs {
			b.Fatalf("rebuilt %d MVs", st.Len())
		}
		st.Close()
	}
	b.ReportMetric(float64(mvs*perMV)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
