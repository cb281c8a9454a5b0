package mvstate

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Bucket names of the bbolt file.
var (
	bucketMeta    = []byte("meta")    // journal_id, epoch, outbox_seq, schema
	bucketMVs     = []byte("mvs")     // mvKey → MV header (JSON, no version maps)
	bucketParts   = []byte("parts")   // mvKey + table id + name → entry
	bucketExt     = []byte("ext")     // mvKey + len + BaseTableInfo JSON + name → entry
	bucketOffsets = []byte("offsets") // topic + 0x00 + partition → next offset
	bucketOutbox  = []byte("outbox")  // seq → OutboxMessage JSON
)

var (
	metaJournal   = []byte("journal_id")
	metaEpoch     = []byte("epoch")
	metaOutboxSeq = []byte("outbox_seq")
	metaSchema    = []byte("schema")
)

// schemaVersion is written at creation; Open refuses other versions.
const schemaVersion = 1

// errCorrupt marks a value that cannot be decoded.
var errCorrupt = errors.New("mvstate: corrupt store")

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func i64(v int64) []byte { return u64(uint64(v)) }

func readI64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: integer of %d bytes", errCorrupt, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// mvKeyBytes encodes a key so that byte order equals (db_id, mv_id) order for
// positive ids.
func mvKeyBytes(k MVKey) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(k.DBID))
	binary.BigEndian.PutUint64(b[8:], uint64(k.MVID))
	return b
}

func parseMVKey(b []byte) (MVKey, error) {
	if len(b) < 16 {
		return MVKey{}, fmt.Errorf("%w: key of %d bytes", errCorrupt, len(b))
	}
	return MVKey{DBID: int64(binary.BigEndian.Uint64(b)), MVID: int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

func partKey(k MVKey, tableID int64, name string) []byte {
	b := make([]byte, 0, 24+len(name))
	b = append(b, mvKeyBytes(k)...)
	b = binary.BigEndian.AppendUint64(b, uint64(tableID))
	return append(b, name...)
}

func parsePartKey(b []byte) (MVKey, int64, string, error) {
	k, err := parseMVKey(b)
	if err != nil || len(b) < 24 {
		return MVKey{}, 0, "", fmt.Errorf("%w: partition key of %d bytes", errCorrupt, len(b))
	}
	return k, int64(binary.BigEndian.Uint64(b[16:])), string(b[24:]), nil
}

func extPrefix(k MVKey, bt BaseTableInfo) []byte {
	j, _ := json.Marshal(bt) // a struct of strings and ints cannot fail
	b := make([]byte, 0, 16+binary.MaxVarintLen64+len(j))
	b = append(b, mvKeyBytes(k)...)
	b = binary.AppendUvarint(b, uint64(len(j)))
	return append(b, j...)
}

func extKey(k MVKey, bt BaseTableInfo, name string) []byte {
	return append(extPrefix(k, bt), name...)
}

func parseExtKey(b []byte) (MVKey, BaseTableInfo, string, error) {
	k, err := parseMVKey(b)
	if err != nil {
		return MVKey{}, BaseTableInfo{}, "", err
	}
	n, w := binary.Uvarint(b[16:])
	if w <= 0 || uint64(len(b)-16-w) < n {
		return MVKey{}, BaseTableInfo{}, "", fmt.Errorf("%w: external key", errCorrupt)
	}
	var bt BaseTableInfo
	start := 16 + w
	if err := json.Unmarshal(b[start:start+int(n)], &bt); err != nil {
		return MVKey{}, BaseTableInfo{}, "", fmt.Errorf("%w: external key: %v", errCorrupt, err)
	}
	return k, bt, string(b[start+int(n):]), nil
}

// entryBytes encodes an entry as five big-endian int64s (40 bytes).
func entryBytes(p BasePartitionInfo) []byte {
	b := make([]byte, 40)
	binary.BigEndian.PutUint64(b, uint64(p.ID))
	binary.BigEndian.PutUint64(b[8:], uint64(p.Version))
	binary.BigEndian.PutUint64(b[16:], uint64(p.LastRefreshTime))
	binary.BigEndian.PutUint64(b[24:], uint64(p.ExtLastFileModifiedTime))
	binary.BigEndian.PutUint64(b[32:], uint64(p.FileNumber))
	return b
}

func parseEntry(b []byte) (BasePartitionInfo, error) {
	if len(b) != 40 {
		return BasePartitionInfo{}, fmt.Errorf("%w: entry of %d bytes", errCorrupt, len(b))
	}
	return BasePartitionInfo{
		ID:                      int64(binary.BigEndian.Uint64(b)),
		Version:                 int64(binary.BigEndian.Uint64(b[8:])),
		LastRefreshTime:         int64(binary.BigEndian.Uint64(b[16:])),
		ExtLastFileModifiedTime: int64(binary.BigEndian.Uint64(b[24:])),
		FileNumber:              int64(binary.BigEndian.Uint64(b[32:])),
	}, nil
}

// mvHeader is an MV without its version maps: the value of the mvs bucket.
type mvHeader struct {
	Active          bool            `json:"active"`
	BaseTables      []BaseTableInfo `json:"base_tables"`
	DBID            int64           `json:"db_id"`
	DBName          string          `json:"db_name"`
	LastRefreshTime int64           `json:"last_refresh_time"`
	MVID            int64           `json:"mv_id"`
	MVName          string          `json:"mv_name"`
	// ExtTables lists the external version-map keys, so that an external
	// table with an empty partition map survives a reopen.
	ExtTables []BaseTableInfo `json:"ext_tables,omitempty"`
	// Tables lists the native version-map keys (same reason).
	Tables []int64 `json:"tables,omitempty"`
}

func headerOf(m *MV) []byte {
	h := mvHeader{Active: m.Active, BaseTables: m.BaseTables, DBID: m.DBID, DBName: m.DBName,
		LastRefreshTime: m.LastRefreshTime, MVID: m.MVID, MVName: m.MVName}
	for id := range m.VersionMap {
		h.Tables = append(h.Tables, id)
	}
	for bt := range m.ExternalVersionMap {
		h.ExtTables = append(h.ExtTables, bt)
	}
	sortInt64s(h.Tables)
	sortTables(h.ExtTables)
	b, _ := json.Marshal(h) // plain data cannot fail
	return b
}

func parseHeader(b []byte) (*MV, error) {
	var h mvHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: mv header: %v", errCorrupt, err)
	}
	m := &MV{Active: h.Active, BaseTables: h.BaseTables, DBID: h.DBID, DBName: h.DBName,
		LastRefreshTime: h.LastRefreshTime, MVID: h.MVID, MVName: h.MVName,
		VersionMap: VersionMap{}, ExternalVersionMap: ExternalVersionMap{}}
	if m.BaseTables == nil {
		m.BaseTables = []BaseTableInfo{}
	}
	for _, id := range h.Tables {
		m.VersionMap[id] = PartitionMap{}
	}
	for _, bt := range h.ExtTables {
		m.ExternalVersionMap[bt] = PartitionMap{}
	}
	return m, nil
}

func offsetKey(tp TopicPartition) []byte {
	b := make([]byte, 0, len(tp.Topic)+5)
	b = append(b, tp.Topic...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, uint32(tp.Partition))
}

func parseOffsetKey(b []byte) (TopicPartition, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 || len(b) != i+5 {
		return TopicPartition{}, fmt.Errorf("%w: offset key", errCorrupt)
	}
	return TopicPartition{Topic: string(b[:i]), Partition: int(binary.BigEndian.Uint32(b[i+1:]))}, nil
}
