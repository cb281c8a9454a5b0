package loadtest

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/mvstate"
)

// workload is the synthetic catalog and event stream.
//
// MV j reads one native table, tables[j % T], and recorded P partitions of it
// at version baseVersion. Event k is a partition_version_changed of table
// k % T, partition (k / T) % P, from version baseVersion + k/(T·P) to the next
// one: every event continues its (table, partition) chain, so each one is a
// real repair of every MV on its table as long as events of one table are
// applied in order (they are keyed by table, hence on one Kafka partition).
type workload struct {
	dbID   int64
	tables []int64 // table ids, chosen so their keys spread evenly over the topic partitions
	mvs    int
	parts  int
	// mvsOn[t] is the number of MVs reading table index t.
	mvsOn []int
}

const (
	loadDBID    = 10001
	baseVersion = 1
	// t0 is the recorded refresh time of the seeded catalog; event k's new
	// version time is t0 + 1 + k.
	t0 = int64(1732300000000)
)

func newWorkload(tables, mvs, parts, topicPartitions int) *workload {
	w := &workload{dbID: loadDBID, mvs: mvs, parts: parts, mvsOn: make([]int, tables)}
	w.tables = spreadTableIDs(loadDBID, tables, topicPartitions)
	for j := 0; j < mvs; j++ {
		w.mvsOn[j%tables]++
	}
	return w
}

// spreadTableIDs picks n table ids from 20001 upwards whose record keys
// "<db_id>:<table_id>" hash (kafka-go's Hash balancer: FNV-1a, Sarama
// compatible) to partitions round-robin, so that every input partition gets
// the same share of the events.
func spreadTableIDs(dbID int64, n, partitions int) []int64 {
	out := make([]int64, 0, n)
	want := 0
	used := map[int64]bool{}
	for len(out) < n {
		found := false
		for id := int64(20001); id < 20001+int64(200*n*max(partitions, 1)); id++ {
			if used[id] {
				continue
			}
			if keyPartition(tableKey(dbID, id), partitions) == want {
				out, used[id], found = append(out, id), true, true
				break
			}
		}
		if !found { // cannot happen with a sane partition count; fall back to any id
			id := int64(20001)
			for used[id] {
				id++
			}
			out, used[id] = append(out, id), true
		}
		want = (want + 1) % max(partitions, 1)
	}
	return out
}

func tableKey(dbID, tableID int64) string {
	return strconv.FormatInt(dbID, 10) + ":" + strconv.FormatInt(tableID, 10)
}

// keyPartition is kafka-go's Hash balancer.
func keyPartition(key string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % int32(partitions)
	if p < 0 {
		p = -p
	}
	return int(p)
}

func partName(p int) string { return fmt.Sprintf("p%05d", p) }

func partID(p int) int64 { return int64(30000 + p) }

// catalog returns the MVs to seed.
func (w *workload) catalog() []*mvstate.MV {
	out := make([]*mvstate.MV, w.mvs)
	T := len(w.tables)
	for j := range out {
		t := j % T
		pm := make(mvstate.PartitionMap, w.parts)
		for p := 0; p < w.parts; p++ {
			pm[partName(p)] = mvstate.NewBasePartitionInfo(partID(p), baseVersion, t0)
		}
		out[j] = &mvstate.MV{DBID: w.dbID, DBName: "load", MVID: int64(50001 + j), MVName: fmt.Sprintf("mv_load_%d", j),
			Active: true, LastRefreshTime: t0,
			BaseTables: []mvstate.BaseTableInfo{{Catalog: mvstate.DefaultCatalog, DBID: w.dbID, TableID: w.tables[t],
				DBName: "load", TableName: fmt.Sprintf("t%d", t)}},
			VersionMap: mvstate.VersionMap{w.tables[t]: pm}}
	}
	return out
}

// catalogMessages are the mv_upserted records of the catalog.
func (w *workload) catalogMessages(topic string) ([]kafkaio.Message, error) {
	var out []kafkaio.Message
	for _, m := range w.catalog() {
		e := &events.MVUpserted{EventID: fmt.Sprintf("load-catalog-%d", m.MVID), MV: m}
		b, err := events.Encode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, kafkaio.Message{Topic: topic, Key: []byte(events.Key(e)), Value: b})
	}
	return out, nil
}

// tableOf returns event k's table index.
func (w *workload) tableOf(k int64) int { return int(k % int64(len(w.tables))) }

// event returns event k of the stream with the given event id.
func (w *workload) event(k int64, id string) *events.PartitionVersionChanged {
	T := int64(len(w.tables))
	t := int(k % T)
	p := int((k / T) % int64(w.parts))
	last := baseVersion + k/(T*int64(w.parts))
	ts := t0 + 1 + k
	return &events.PartitionVersionChanged{EventID: id, Source: "compaction", DBID: w.dbID, TableID: w.tables[t],
		TableName: fmt.Sprintf("t%d", t), TableType: "cloud_native",
		Partitions: []events.PartitionRepair{{PartitionID: partID(p), PartitionName: partName(p),
			LastVersion: last, NewVersion: last + 1, NewVersionTime: ts}},
		EmittedAt: ts}
}

// message encodes event k for topic.
func (w *workload) message(topic string, k int64, id string) (kafkaio.Message, error) {
	e := w.event(k, id)
	b, err := events.Encode(e)
	if err != nil {
		return kafkaio.Message{}, err
	}
	return kafkaio.Message{Topic: topic, Key: []byte(events.Key(e)), Value: b}, nil
}

// expectedRepairs is the number of partition entries events [from, to) repair.
func (w *workload) expectedRepairs(from, to int64) int64 {
	var n int64
	for k := from; k < to; k++ {
		n += int64(w.mvsOn[w.tableOf(k)])
	}
	return n
}

// finalVersion is the version every MV on table t records for partition p
// after events [0, n) were applied.
func (w *workload) finalVersion(t, p int, n int64) int64 {
	T, P := int64(len(w.tables)), int64(w.parts)
	first := int64(t) + T*int64(p) // the first k of the chain
	if n <= first {
		return baseVersion
	}
	return baseVersion + (n-1-first)/(T*P) + 1
}

// verify checks that the store holds the versions events [0, n) lead to. It
// returns the number of entries that differ and a sample description.
func (w *workload) verify(get func(mvstate.MVKey) *mvstate.MV, n int64) (bad int, sample string) {
	T := len(w.tables)
	for j := 0; j < w.mvs; j++ {
		t := j % T
		m := get(mvstate.MVKey{DBID: w.dbID, MVID: int64(50001 + j)})
		if m == nil {
			bad += w.parts
			if sample == "" {
				sample = fmt.Sprintf("mv %d missing", 50001+j)
			}
			continue
		}
		pm := m.VersionMap[w.tables[t]]
		for p := 0; p < w.parts; p++ {
			want := w.finalVersion(t, p, n)
			if got := pm[partName(p)].Version; got != want {
				bad++
				if sample == "" {
					sample = fmt.Sprintf("mv %d table %d %s: version %d, want %d", 50001+j, w.tables[t], partName(p), got, want)
				}
			}
		}
	}
	return bad, sample
}
