package kafkaio

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// SingleActiveProtocol is the group protocol name of SingleActiveBalancer.
// Every member of a group must offer it.
const SingleActiveProtocol = "mvrepair-single-active-v1"

// Balancer names accepted by GroupConfig.Balancer.
const (
	BalancerSingleActive = "single-active"
	BalancerRange        = "range"
)

// MemberState is what a member advertises in its JoinGroup user data
// (JSON), and all the leader uses to choose the active member.
type MemberState struct {
	// Name is the instance name, for operators (DescribeGroup, logs).
	Name string `json:"name"`
	// Active reports whether the member held partitions in its last
	// generation.
	Active bool `json:"active"`
	// Gen is the last generation the member saw.
	Gen int64 `json:"gen"`
	// Started is the member's start time in Unix nanoseconds.
	Started int64 `json:"started"`
}

// SingleActiveBalancer is a kafka-go GroupBalancer that gives every partition
// of every subscribed topic to a single member, the active one, and nothing
// to the others (hot standbys). The group protocol is thereby the leader
// election (docs/design.md §7).
//
// The choice depends only on the members' advertised MemberState, so it is
// the same whichever member is the group leader: members advertising
// Active first, among them the highest Gen (a zombie that was active in an
// older generation loses to the current one), then the oldest Started, then
// the member id. The active member thus stays active when others join.
//
// Group updates the state after each generation; it is safe for concurrent
// use.
type SingleActiveBalancer struct {
	mu    sync.Mutex
	state MemberState
}

var _ kafka.GroupBalancer = (*SingleActiveBalancer)(nil)

// NewSingleActiveBalancer returns a balancer for an instance called name,
// started now and not active.
func NewSingleActiveBalancer(name string) *SingleActiveBalancer {
	return &SingleActiveBalancer{state: MemberState{Name: name, Started: time.Now().UnixNano()}}
}

// ProtocolName implements kafka.GroupBalancer.
func (b *SingleActiveBalancer) ProtocolName() string { return SingleActiveProtocol }

// UserData implements kafka.GroupBalancer: the JSON MemberState, sent on
// every JoinGroup.
func (b *SingleActiveBalancer) UserData() ([]byte, error) {
	st := b.State()
	data, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("kafkaio: encode member state: %w", err)
	}
	return data, nil
}

// State returns the state this member advertises.
func (b *SingleActiveBalancer) State() MemberState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// Observe records the outcome of a generation: whether this member got
// partitions, and the generation id.
func (b *SingleActiveBalancer) Observe(active bool, gen int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Active = active
	b.state.Gen = gen
}

// AssignGroups implements kafka.GroupBalancer (run by the group leader only).
// The first member in the order described on the type gets all partitions,
// every other member an empty (non-nil) assignment.
func (b *SingleActiveBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	if len(members) == 0 {
		return out
	}
	type ranked struct {
		id string
		st MemberState
		ok bool // user data decoded
	}
	rs := make([]ranked, len(members))
	for i, m := range members {
		rs[i].id = m.ID
		if err := json.Unmarshal(m.UserData, &rs[i].st); err == nil {
			rs[i].ok = true
		}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		// Members whose user data we cannot read go last.
		if a.ok != b.ok {
			if a.ok {
				return -1
			}
			return 1
		}
		if a.st.Active != b.st.Active {
			if a.st.Active {
				return -1
			}
			return 1
		}
		if a.st.Active && a.st.Gen != b.st.Gen {
			return cmp.Compare(b.st.Gen, a.st.Gen) // highest generation first
		}
		if a.st.Started != b.st.Started {
			return cmp.Compare(a.st.Started, b.st.Started) // oldest first
		}
		return cmp.Compare(a.id, b.id)
	})

	all := map[string][]int{}
	for _, p := range partitions {
		all[p.Topic] = append(all[p.Topic], p.ID)
	}
	for t := range all {
		slices.Sort(all[t])
		all[t] = slices.Compact(all[t])
	}
	out[rs[0].id] = all
	for _, r := range rs[1:] {
		out[r.id] = map[string][]int{}
	}
	return out
}

// newGroupBalancer maps GroupConfig.Balancer to a kafka-go balancer; the
// returned *SingleActiveBalancer is nil for the range balancer.
func newGroupBalancer(name, instance string) (kafka.GroupBalancer, *SingleActiveBalancer, error) {
	switch name {
	case "", BalancerSingleActive:
		b := NewSingleActiveBalancer(instance)
		return b, b, nil
	case BalancerRange:
		return kafka.RangeGroupBalancer{}, nil, nil
	default:
		return nil, nil, fmt.Errorf("kafkaio: unknown balancer %q (want %q or %q)", name, BalancerSingleActive, BalancerRange)
	}
}
