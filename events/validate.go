package events

import (
	"strconv"

	"github.com/mvrepair/mvrepair/mvstate"
)

// The validation rules of Decode (documented there). Each validator returns
// the first rule broken, with the JSON path of the value at fault. Paths are
// built only on failure: valid events allocate nothing here.

func validatePartitionVersionChanged(e *PartitionVersionChanged) *DecodeError {
	if e.DBID <= 0 {
		return notPositive("db_id", e.DBID)
	}
	if e.TableID <= 0 {
		return notPositive("table_id", e.TableID)
	}
	if e.TableType == "" {
		return empty("table_type")
	}
	if e.EmittedAt < 0 {
		return invalid("emitted_at", "must not be negative, got %d", e.EmittedAt)
	}
	if len(e.Partitions) == 0 {
		return invalid("partitions", "at least one partition is required")
	}
	for i := range e.Partitions {
		p := &e.Partitions[i]
		at := func(name string) string { return join(index("partitions", i), name) }
		switch {
		case p.PartitionID <= 0:
			return notPositive(at("partition_id"), p.PartitionID)
		case p.PartitionName == "":
			return empty(at("partition_name"))
		case p.LastVersion < 1:
			return invalid(at("last_version"), "must be at least 1, got %d", p.LastVersion)
		case p.NewVersion <= p.LastVersion:
			return invalid(at("new_version"), "must be above last_version (%d), got %d", p.LastVersion, p.NewVersion)
		case p.NewVersionTime <= 0:
			return notPositive(at("new_version_time"), p.NewVersionTime)
		case p.LastVersionTime != nil && *p.LastVersionTime <= 0:
			return invalid(at("last_version_time"), "must be positive when given, got %d", *p.LastVersionTime)
		}
	}
	return nil
}

func validateExternalTableRecreated(e *ExternalTableRecreated) *DecodeError {
	if e.Catalog == "" {
		return empty("catalog")
	}
	if e.Catalog == mvstate.DefaultCatalog {
		return &DecodeError{Reason: ReasonInternalCatalog, Field: "catalog",
			Msg: mvstate.DefaultCatalog + " is the internal catalog: external_table_recreated applies to external catalogs only"}
	}
	switch {
	case e.DBName == "":
		return empty("db_name")
	case e.TableName == "":
		return empty("table_name")
	case e.OldTableIdentifier == "":
		return empty("old_table_identifier")
	case e.NewTableIdentifier == "":
		return empty("new_table_identifier")
	case e.NewTableIdentifier == e.OldTableIdentifier:
		return invalid("new_table_identifier", "must differ from old_table_identifier (both %s)", clip(e.OldTableIdentifier))
	}
	if _, ok := e.Partitions[""]; ok {
		return emptyName(mapKey("partitions", ""))
	}
	for _, name := range sortedKeys(e.Partitions) {
		if t := e.Partitions[name].ModifiedTime; t <= 0 {
			return notPositive(join(mapKey("partitions", name), "modified_time"), t)
		}
	}
	for i, name := range e.UpdatedPartitions {
		if name == "" {
			return empty(index("updated_partitions", i))
		}
	}
	return nil
}

// validateMV checks the mv object of mv_upserted; path is its position ("mv").
func validateMV(m *mvWire, path string) *DecodeError {
	switch {
	case m.DBID <= 0:
		return notPositive(join(path, "db_id"), m.DBID)
	case m.MVID <= 0:
		return notPositive(join(path, "mv_id"), m.MVID)
	case m.DBName == "":
		return empty(join(path, "db_name"))
	case m.MVName == "":
		return empty(join(path, "mv_name"))
	case m.LastRefreshTime < 0:
		return invalid(join(path, "last_refresh_time"), "must not be negative, got %d", m.LastRefreshTime)
	}
	seen := make(map[tableIdentity]int, len(m.BaseTables))
	for i, bt := range m.BaseTables {
		at := index(join(path, "base_tables"), i)
		if de := validateBaseTable(bt, at, false); de != nil {
			return de
		}
		id := identityOf(bt)
		if j, dup := seen[id]; dup {
			return invalid(at, "same table as base_tables[%d]", j)
		}
		seen[id] = i
	}
	if de := validateVersionMap(m.VersionMap, join(path, "version_map")); de != nil {
		return de
	}
	return validateExternalList(m.ExternalVersionMap, join(path, "external_version_map"))
}

func validateRefreshed(w *refreshedWire) *DecodeError {
	switch {
	case w.DBID <= 0:
		return notPositive("db_id", w.DBID)
	case w.MVID <= 0:
		return notPositive("mv_id", w.MVID)
	case w.LastRefreshTime < 0:
		return invalid("last_refresh_time", "must not be negative, got %d", w.LastRefreshTime)
	}
	if de := validateVersionMap(w.VersionMap, "version_map"); de != nil {
		return de
	}
	if de := validateExternalList(w.ExternalVersionMap, "external_version_map"); de != nil {
		return de
	}
	for _, k := range sortedKeys(w.Removed) {
		at := mapKey("removed", k)
		if _, ok := parseTableID(k); !ok {
			return badTableKey(at)
		}
		merged := w.VersionMap[k]
		for i, name := range w.Removed[k] {
			if name == "" {
				return empty(index(at, i))
			}
			if _, ok := merged[name]; ok {
				return invalid(index(at, i), "partition %s is both merged (in version_map) and removed", clip(name))
			}
		}
	}
	return nil
}

func validateMVDropped(e *MVDropped) *DecodeError {
	if e.DBID <= 0 {
		return notPositive("db_id", e.DBID)
	}
	if e.MVID <= 0 {
		return notPositive("mv_id", e.MVID)
	}
	return nil
}

// validateBaseTable checks one BaseTableInfo at path. externalOnly rejects
// native tables (external_version_map holds external tables only).
func validateBaseTable(bt mvstate.BaseTableInfo, path string, externalOnly bool) *DecodeError {
	if bt.Catalog == "" {
		return empty(join(path, "catalog"))
	}
	if bt.IsNative() {
		if externalOnly {
			return invalid(join(path, "catalog"), "must be an external catalog: %s tables belong in version_map", mvstate.DefaultCatalog)
		}
		if bt.DBID <= 0 {
			return notPositive(join(path, "db_id"), bt.DBID)
		}
		if bt.TableID <= 0 {
			return notPositive(join(path, "table_id"), bt.TableID)
		}
		return nil
	}
	switch {
	case bt.DBName == "":
		return empty(join(path, "db_name"))
	case bt.TableName == "":
		return empty(join(path, "table_name"))
	case bt.TableIdentifier == "":
		return empty(join(path, "table_identifier"))
	}
	return nil
}

// tableIdentity is what makes two base tables the same table: the table id
// for native tables, the name for external ones.
type tableIdentity struct {
	tableID                    int64
	catalog, dbName, tableName string
}

func identityOf(bt mvstate.BaseTableInfo) tableIdentity {
	if bt.IsNative() {
		return tableIdentity{tableID: bt.TableID}
	}
	return tableIdentity{catalog: bt.Catalog, dbName: bt.DBName, tableName: bt.TableName}
}

// validateVersionMap checks a native version map in wire form (decimal keys).
func validateVersionMap(vm map[string]mvstate.PartitionMap, path string) *DecodeError {
	for _, k := range sortedKeys(vm) {
		at := mapKey(path, k)
		if _, ok := parseTableID(k); !ok {
			return badTableKey(at)
		}
		if _, ok := vm[k][""]; ok {
			return emptyName(mapKey(at, ""))
		}
	}
	return nil
}

// validateExternalList checks an external version map in wire (list) form.
func validateExternalList(list []mvstate.ExternalPartitions, path string) *DecodeError {
	seen := make(map[tableIdentity]int, len(list))
	for i, e := range list {
		at := index(path, i)
		bt := join(at, "base_table")
		if de := validateBaseTable(e.BaseTable, bt, true); de != nil {
			return de
		}
		id := identityOf(e.BaseTable)
		if j, dup := seen[id]; dup {
			return invalid(bt, "same table as %s[%d].base_table", path, j)
		}
		seen[id] = i
		if _, ok := e.Partitions[""]; ok {
			return emptyName(mapKey(join(at, "partitions"), ""))
		}
	}
	return nil
}

// parseTableID parses a version-map key: a positive int64 in canonical
// decimal form.
func parseTableID(k string) (int64, bool) {
	id, err := strconv.ParseInt(k, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != k {
		return 0, false
	}
	return id, true
}

func notPositive(path string, v int64) *DecodeError {
	return invalid(path, "must be positive, got %d", v)
}

func empty(path string) *DecodeError { return invalid(path, "must not be empty") }

func emptyName(path string) *DecodeError { return invalid(path, "partition name must not be empty") }

func badTableKey(path string) *DecodeError {
	return invalid(path, "key must be a table id: a positive decimal integer without sign or leading zeros")
}
