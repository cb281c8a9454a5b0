package kafkaio

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/segmentio/kafka-go"
)

func member(t *testing.T, id string, st MemberState) kafka.GroupMember {
	t.Helper()
	ud, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return kafka.GroupMember{ID: id, Topics: []string{"a", "b"}, UserData: ud}
}

func testPartitions() []kafka.Partition {
	// Deliberately unsorted, with a duplicate.
	return []kafka.Partition{
		{Topic: "b", ID: 1}, {Topic: "a", ID: 2}, {Topic: "a", ID: 0},
		{Topic: "b", ID: 0}, {Topic: "a", ID: 1}, {Topic: "a", ID: 1},
	}
}

func TestSingleActiveBalancer_protocol_and_user_data(t *testing.T) {
	b := NewSingleActiveBalancer("node-1")
	if b.ProtocolName() != "mvrepair-single-active-v1" {
		t.Errorf("protocol = %q", b.ProtocolName())
	}
	b.Observe(true, 7)
	ud, err := b.UserData()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(ud, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "active", "gen", "started"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("user data %s lacks %q", ud, k)
		}
	}
	if raw["name"] != "node-1" || raw["active"] != true || raw["gen"] != float64(7) {
		t.Errorf("user data = %s", ud)
	}
}

func TestSingleActiveBalancer_assigns_everything_to_one_member(t *testing.T) {
	all := map[string][]int{"a": {0, 1, 2}, "b": {0, 1}}
	cases := []struct {
		name    string
		members []MemberState
		ids     []string
		want    string
	}{
		{
			name:    "no one active: oldest wins",
			members: []MemberState{{Name: "x", Started: 300}, {Name: "y", Started: 100}, {Name: "z", Started: 200}},
			ids:     []string{"m1", "m2", "m3"},
			want:    "m2",
		},
		{
			name:    "active member keeps the role when an older one joins",
			members: []MemberState{{Started: 100}, {Active: true, Gen: 4, Started: 500}},
			ids:     []string{"old", "active"},
			want:    "active",
		},
		{
			name:    "zombie with an older generation loses",
			members: []MemberState{{Active: true, Gen: 6, Started: 100}, {Active: true, Gen: 7, Started: 900}},
			ids:     []string{"zombie", "current"},
			want:    "current",
		},
		{
			name:    "tie broken by member id",
			members: []MemberState{{Started: 100}, {Started: 100}},
			ids:     []string{"m-b", "m-a"},
			want:    "m-a",
		},
		{
			name:    "standby generations do not matter",
			members: []MemberState{{Gen: 9, Started: 200}, {Gen: 1, Started: 100}},
			ids:     []string{"g9", "g1"},
			want:    "g1",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ms []kafka.GroupMember
			for i, st := range c.members {
				ms = append(ms, member(t, c.ids[i], st))
			}
			b := NewSingleActiveBalancer("leader")
			got := b.AssignGroups(ms, testPartitions())
			// Deterministic whoever leads, whatever the order of members.
			rev := make([]kafka.GroupMember, len(ms))
			for i := range ms {
				rev[len(ms)-1-i] = ms[i]
			}
			if got2 := NewSingleActiveBalancer("other").AssignGroups(rev, testPartitions()); !reflect.DeepEqual(got, got2) {
				t.Fatalf("not deterministic: %v vs %v", got, got2)
			}
			if len(got) != len(ms) {
				t.Fatalf("assignments for %d members, want %d", len(got), len(ms))
			}
			for id, as := range got {
				if id == c.want {
					if !reflect.DeepEqual(as, all) {
						t.Errorf("active %s got %v, want %v", id, as, all)
					}
					continue
				}
				if as == nil || len(as) != 0 {
					t.Errorf("standby %s got %#v, want an empty non-nil map", id, as)
				}
			}
		})
	}
}

func TestSingleActiveBalancer_unreadable_user_data_goes_last(t *testing.T) {
	ms := []kafka.GroupMember{
		{ID: "a-garbage", UserData: []byte("not json")},
		member(t, "b-good", MemberState{Started: 999}),
	}
	got := NewSingleActiveBalancer("x").AssignGroups(ms, testPartitions())
	if len(got["b-good"]) == 0 || len(got["a-garbage"]) != 0 {
		t.Errorf("assignments = %v", got)
	}
	if got := NewSingleActiveBalancer("x").AssignGroups(nil, testPartitions()); len(got) != 0 {
		t.Errorf("no members: %v", got)
	}
}

func TestNewGroup_validates_config(t *testing.T) {
	base := GroupConfig{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Topics: []string{"t"}}
	bad := []func(c *GroupConfig){
		func(c *GroupConfig) { c.Brokers = nil },
		func(c *GroupConfig) { c.GroupID = "" },
		func(c *GroupConfig) { c.Topics = nil },
		func(c *GroupConfig) { c.Balancer = "sticky" },
		func(c *GroupConfig) { c.StartOffset = "middle" },
		func(c *GroupConfig) { c.HeartbeatInterval, c.SessionTimeout = 5e9, 5e9 },
	}
	for i, mut := range bad {
		c := base
		mut(&c)
		if g, err := NewGroup(c); err == nil {
			_ = g.Close()
			t.Errorf("case %d: invalid config accepted", i)
		}
	}
	for _, bal := range []string{"", BalancerSingleActive, BalancerRange} {
		c := base
		c.Balancer = bal
		g, err := NewGroup(c)
		if err != nil {
			t.Errorf("balancer %q: %v", bal, err)
			continue
		}
		if (g.Balancer() == nil) != (bal == BalancerRange) {
			t.Errorf("balancer %q: Balancer() = %v", bal, g.Balancer())
		}
		_ = g.Close()
	}
}
