package loadgen

import (
	"encoding/binary"
	"fmt"
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
// "<db_id>:<table_id>" land on the input partitions round-robin (the
// producer partitions keys like the Java client: murmur2), so that every
// input partition gets the same share of the tables and of the events.
func spreadTableIDs(dbID int64, n, partitions int) []int64 {
	partitions = max(partitions, 1)
	out := make([]int64, 0, n)
	next := int64(20001)
	// Ids not taken yet, per partition, in ascending order.
	spare := make([][]int64, partitions)
	for want := 0; len(out) < n; want = (want + 1) % partitions {
		for len(spare[want]) == 0 {
			p := keyPartition(tableKey(dbID, next), partitions)
			spare[p] = append(spare[p], next)
			next++
		}
		out = append(out, spare[want][0])
		spare[want] = spare[want][1:]
	}
	return out
}

func tableKey(dbID, tableID int64) string {
	return strconv.FormatInt(dbID, 10) + ":" + strconv.FormatInt(tableID, 10)
}

// keyPartition is the partition the producer (kafkaio.Producer, like the
// Java client's default partitioner) gives key among n partitions:
// murmur2 of the key, the sign bit cleared, modulo n.
func keyPartition(key string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(murmur2([]byte(key))&0x7fffffff) % n
}

// murmur2 is Kafka's Utils.murmur2 (seed 0x9747b28c).
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
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
