package hatest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mvrepair/mvrepair/editlog"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/recovery"
	"github.com/mvrepair/mvrepair/internal/service"
	"github.com/mvrepair/mvrepair/internal/store"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// benchKafka returns the service's Kafka side (topics created) on the
// KAFKA_BROKERS cluster or on an embedded broker of the benchmark's own, with
// topics of the benchmark's own.
func benchKafka(b *testing.B) (*config.Config, *service.Kafka) {
	b.Helper()
	ctx := context.Background()
	brokers := testkit.ExternalBrokers()
	if len(brokers) == 0 {
		br, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(br.Close)
		brokers = []string{br.Addr()}
	}
	cfg := config.Default()
	cfg.Kafka.Brokers = strings.Join(brokers, ",")
	cfg.State.Dir = b.TempDir()
	id := "bench-" + testkit.RandomID()
	cfg.Kafka.Topics = config.Topics{Input: id + "-input", Catalog: id + "-catalog", EditLog: id + "-edit-log",
		DLQ: id + "-dlq", Snapshots: id + "-snapshots"}
	cfg.Kafka.ReplicationFactor = 1
	k, err := service.OpenKafka(ctx, &cfg, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	return &cfg, k
}

// BenchmarkRebuild_1MPartitionEntries times `rebuild --from-edit-log --full`
// of an edit log holding 1,000 MVs of 1,000 recorded partitions each (1M
// entries, about 100 MB of journal): a new store built beside the live one
// (store.Dir.Build), recovery.Rebuild streaming the log through the real
// broker path (the kafkaio fetcher reading the embedded broker over TCP),
// and the store installed (its snapshot written and synced). Run with
// -benchtime=1x.
func BenchmarkRebuild_1MPartitionEntries(b *testing.B) {
	const mvs, perMV = 1000, 1000
	ctx := context.Background()
	cfg, k := benchKafka(b)
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
			msgs = append(msgs, kafkaio.Message{Topic: cfg.Kafka.Topics.EditLog, Key: []byte(r.Key()), Value: v,
				Headers: []kafkaio.Header{{Key: editlog.HeaderJournalID, Value: []byte(r.JournalHeader())}}})
		}
		if err := k.Producer.Publish(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	src := k.EditLogSource(zerolog.Nop())
	for b.Loop() {
		d, err := store.LockDir(b.TempDir(), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		nw, err := d.Build(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := recovery.Rebuild(ctx, nw, src, recovery.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Install(ctx, nw); err != nil {
			b.Fatal(err)
		}
		if n := nw.State().Len(); rep.Applied != mvs || n != mvs || nw.State().Entries() != mvs*perMV {
			b.Fatalf("rebuilt %d MVs of %d entries from %d records", n, nw.State().Entries(), rep.Applied)
		}
		if err := nw.Close(ctx, false); err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
	b.ReportMetric(float64(mvs*perMV)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
