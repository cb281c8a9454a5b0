package events

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/mvrepair/mvrepair/mvstate"
)

// Topic roles returned by TopicRoleOf.
const (
	// TopicRoleInput is the partition-version-changed topic.
	TopicRoleInput = "input"
	// TopicRoleCatalog is the mv-catalog topic.
	TopicRoleCatalog = "catalog"
)

// TopicRoleOf returns the topic a kind travels on (docs/design.md §4):
// TopicRoleInput for partition_version_changed and external_table_recreated,
// TopicRoleCatalog for mv_upserted, mv_refreshed and mv_dropped, and "" for
// any other kind.
func TopicRoleOf(k Kind) string {
	switch k {
	case KindPartitionVersionChanged, KindExternalTableRecreated:
		return TopicRoleInput
	case KindMVUpserted, KindMVRefreshed, KindMVDropped:
		return TopicRoleCatalog
	default:
		return ""
	}
}

// Key returns the Kafka message key of an event (docs/design.md §4):
// "<db_id>:<table_id>" for partition_version_changed,
// "<catalog>.<db_name>.<table_name>" for external_table_recreated and
// "<db_id>:<mv_id>" for the catalog kinds. It returns "" for a nil event, an
// mv_upserted without mv, or a type this package does not define.
func Key(e Event) string {
	switch e := e.(type) {
	case *PartitionVersionChanged:
		if e != nil {
			return strconv.FormatInt(e.DBID, 10) + ":" + strconv.FormatInt(e.TableID, 10)
		}
	case *ExternalTableRecreated:
		if e != nil {
			return e.Catalog + "." + e.DBName + "." + e.TableName
		}
	case *MVUpserted:
		if e != nil && e.MV != nil {
			return e.MV.Key().String()
		}
	case *MVRefreshed:
		if e != nil {
			return e.Key().String()
		}
	case *MVDropped:
		if e != nil {
			return e.Key().String()
		}
	}
	return ""
}

// Encode renders an event as its docs/design.md §4 JSON document: "kind" first,
// then the kind's fields. Optional fields at their zero value (source,
// table_name, emitted_at, an absent last_version_time) are omitted; nil
// collections are written empty; the mv object and the version maps use the
// canonical mvstate encoding (sorted keys, external_version_map as a list
// sorted by base table). The output is deterministic, and for every event
// Decode returns, Decode(Encode(e)) equals e.
//
// Encode does not validate: an invalid event encodes to a document Decode
// rejects (useful to produce bad records on purpose). It fails only for a nil
// event or a type this package does not define.
func Encode(e Event) ([]byte, error) {
	switch e := e.(type) {
	case *PartitionVersionChanged:
		if e == nil {
			return nil, fmt.Errorf("events: cannot encode a nil %T", e)
		}
		c := *e
		if c.Partitions == nil {
			c.Partitions = []PartitionRepair{}
		}
		return json.Marshal(struct {
			Kind Kind `json:"kind"`
			*PartitionVersionChanged
		}{c.Kind(), &c})
	case *ExternalTableRecreated:
		if e == nil {
			return nil, fmt.Errorf("events: cannot encode a nil %T", e)
		}
		c := *e
		if c.Partitions == nil {
			c.Partitions = map[string]ExternalPartition{}
		}
		if c.UpdatedPartitions == nil {
			c.UpdatedPartitions = []string{}
		}
		return json.Marshal(struct {
			Kind Kind `json:"kind"`
			*ExternalTableRecreated
		}{c.Kind(), &c})
	case *MVUpserted:
		if e == nil {
			return nil, fmt.Errorf("events: cannot encode a nil %T", e)
		}
		return json.Marshal(struct {
			Kind    Kind        `json:"kind"`
			EventID string      `json:"event_id"`
			MV      *mvstate.MV `json:"mv"`
		}{e.Kind(), e.EventID, e.MV})
	case *MVRefreshed:
		if e == nil {
			return nil, fmt.Errorf("events: cannot encode a nil %T", e)
		}
		removed := make(map[string][]string, len(e.Removed))
		for id, names := range e.Removed {
			if names == nil {
				names = []string{}
			}
			removed[strconv.FormatInt(id, 10)] = names
		}
		return json.Marshal(struct {
			Kind               Kind                            `json:"kind"`
			EventID            string                          `json:"event_id"`
			DBID               int64                           `json:"db_id"`
			MVID               int64                           `json:"mv_id"`
			LastRefreshTime    int64                           `json:"last_refresh_time"`
			VersionMap         map[string]mvstate.PartitionMap `json:"version_map"`
			ExternalVersionMap []mvstate.ExternalPartitions    `json:"external_version_map"`
			Removed            map[string][]string             `json:"removed"`
		}{e.Kind(), e.EventID, e.DBID, e.MVID, e.LastRefreshTime,
			mvstate.EncodeVersionMap(e.VersionMap), mvstate.EncodeExternal(e.ExternalVersionMap), removed})
	case *MVDropped:
		if e == nil {
			return nil, fmt.Errorf("events: cannot encode a nil %T", e)
		}
		return json.Marshal(struct {
			Kind Kind `json:"kind"`
			*MVDropped
		}{e.Kind(), e})
	}
	if e == nil {
		return nil, fmt.Errorf("events: cannot encode a nil Event")
	}
	return nil, fmt.Errorf("events: cannot encode %T: not an event type of this package", e)
}
