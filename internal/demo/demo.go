// Package demo is the scenario behind `consumer demo`: a sample catalog of
// materialized views and a stream of compaction events that exercises every
// rule, including events that must be skipped and records that must be
// dead-lettered.
package demo

import (
	"fmt"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/mvstate"
)

// Record is one Kafka record to produce.
type Record struct {
	// Catalog selects the catalog topic (else the input topic).
	Catalog bool
	Key     string
	Value   []byte
	// Note says what the record demonstrates.
	Note string
}

const (
	dbID     = 10001
	orders   = 20001
	lineitem = 20002
	t0       = int64(1732300000000)
)

var hiveEvents = mvstate.BaseTableInfo{Catalog: "hive", DBName: "ods", TableName: "events", TableIdentifier: "events:1700000000"}

func native(table int64, name string) mvstate.BaseTableInfo {
	return mvstate.BaseTableInfo{Catalog: mvstate.DefaultCatalog, DBID: dbID, TableID: table, DBName: "sales", TableName: name}
}

func parts(first, n int, version int64) mvstate.PartitionMap {
	pm := mvstate.PartitionMap{}
	for i := 0; i < n; i++ {
		pm[fmt.Sprintf("p202401%02d", first+i)] = mvstate.NewBasePartitionInfo(int64(30000+first+i), version, t0)
	}
	return pm
}

// Catalog returns the sample MVs.
func Catalog() []*mvstate.MV {
	return []*mvstate.MV{
		{DBID: dbID, DBName: "sales", MVID: 50001, MVName: "mv_orders_daily", Active: true, LastRefreshTime: t0,
			BaseTables: []mvstate.BaseTableInfo{native(orders, "orders")},
			VersionMap: mvstate.VersionMap{orders: parts(1, 10, 5)}},
		{DBID: dbID, DBName: "sales", MVID: 50002, MVName: "mv_orders_lineitem", Active: false, LastRefreshTime: t0,
			BaseTables: []mvstate.BaseTableInfo{native(orders, "orders"), native(lineitem, "lineitem")},
			VersionMap: mvstate.VersionMap{orders: parts(1, 5, 5), lineitem: parts(1, 3, 9)}},
		{DBID: dbID, DBName: "sales", MVID: 50003, MVName: "mv_events_orders", Active: true, LastRefreshTime: t0,
			BaseTables: []mvstate.BaseTableInfo{native(orders, "orders"), hiveEvents},
			VersionMap: mvstate.VersionMap{orders: parts(1, 2, 5)},
			ExternalVersionMap: mvstate.ExternalVersionMap{hiveEvents: {
				"dt=2024-01-01": {ID: -1, Version: 1700000000000, LastRefreshTime: 1700000000000, ExtLastFileModifiedTime: 1700000000000, FileNumber: 3},
				"dt=2024-01-02": {ID: -1, Version: 1700000000000, LastRefreshTime: 1700000000000, ExtLastFileModifiedTime: 1700000000000, FileNumber: 2},
			}}},
	}
}

func compaction(table int64, name string, part int, last, next int64, lastTime *int64) *events.PartitionVersionChanged {
	ts := t0 + 100000 + int64(part)*1000 + next
	return &events.PartitionVersionChanged{
		EventID: fmt.Sprintf("COMPACTION_%d-%d-%d-%d", dbID, table, 30000+part, ts), Source: "compaction",
		DBID: dbID, TableID: table, TableName: name, TableType: "cloud_native",
		Partitions: []events.PartitionRepair{{PartitionID: int64(30000 + part), PartitionName: fmt.Sprintf("p202401%02d", part),
			LastVersion: last, NewVersion: next, NewVersionTime: ts, LastVersionTime: lastTime}},
		EmittedAt: ts + 5,
	}
}

// Stream returns the demo's records: the catalog first, then compaction
// events. Every record carries a note saying what it shows.
func Stream() ([]Record, error) {
	var out []Record
	add := func(catalog bool, e events.Event, note string) error {
		b, err := events.Encode(e)
		if err != nil {
			return err
		}
		out = append(out, Record{Catalog: catalog, Key: events.Key(e), Value: b, Note: note})
		return nil
	}
	for _, m := range Catalog() {
		if err := add(true, &events.MVUpserted{EventID: fmt.Sprintf("catalog-%d", m.MVID), MV: m}, "catalog: "+m.MVName); err != nil {
			return nil, err
		}
	}
	later := t0 + 1
	steps := []struct {
		e    events.Event
		note string
	}{}
	for p := 1; p <= 5; p++ {
		steps = append(steps, struct {
			e    events.Event
			note string
		}{compaction(orders, "orders", p, 5, 6, nil), "compaction of orders: repairs every MV recording the partition"})
	}
	more := []struct {
		e    events.Event
		note string
	}{
		{compaction(orders, "orders", 1, 6, 7, nil), "a second compaction of the same partition: v6 → v7"},
		{compaction(orders, "orders", 6, 4, 5, nil), "skipped: the MV recorded version 5, the event says the last was 4"},
		{compaction(orders, "orders", 11, 1, 2, nil), "skipped: no MV recorded partition p20240111"},
		{compaction(orders, "orders", 7, 5, 6, &later), "skipped: the partition changed after the MV's refresh (unconsumed change)"},
		{compaction(lineitem, "lineitem", 2, 9, 10, nil), "repairs the inactive MV too"},
		{compaction(20099, "audit", 1, 1, 2, nil), "skipped: no MV reads this table"},
		{&events.PartitionVersionChanged{EventID: "hive-1", DBID: dbID, TableID: 20005, TableType: "hive",
			Partitions: []events.PartitionRepair{{PartitionID: 1, PartitionName: "p1", LastVersion: 1, NewVersion: 2, NewVersionTime: t0}}},
			"skipped with a warning: not a native table"},
		{&events.ExternalTableRecreated{EventID: "recreate-events", Catalog: "hive", DBName: "ods", TableName: "events",
			OldTableIdentifier: "events:1700000000", NewTableIdentifier: "events:1732400000",
			Partitions:        map[string]events.ExternalPartition{"dt=2024-01-01": {ModifiedTime: 1732400000000}, "dt=2024-01-02": {ModifiedTime: 1732400000000}},
			UpdatedPartitions: []string{"dt=2024-01-02"}}, "external table dropped and recreated: identifier moved, journaled"},
	}
	steps = append(steps, more...)
	for _, s := range steps {
		if err := add(false, s.e, s.note); err != nil {
			return nil, err
		}
	}
	out = append(out,
		Record{Key: "10001:20001", Value: []byte(`{"kind":"partition_version_changed",`), Note: "dead-lettered: not JSON (invalid_json)"},
		Record{Key: "10001:20001", Value: []byte(`{"kind":"partition_version_changed","event_id":"bad-1","db_id":10001,"table_id":20001,"table_type":"cloud_native","partitions":[{"partition_id":30008,"partition_name":"p20240108","last_version":5,"new_version":5,"new_version_time":1732400000000}]}`),
			Note: "dead-lettered: new_version must be above last_version (invalid_event)"},
		Record{Key: "x", Value: []byte(`{"kind":"table_truncated","event_id":"bad-2"}`), Note: "dead-lettered: unknown kind (unknown_kind)"},
	)
	// Good records after the bad ones: the partition keeps flowing.
	if err := add(false, compaction(orders, "orders", 8, 5, 6, nil), "after the bad records: still repaired"); err != nil {
		return nil, err
	}
	return out, nil
}
