package hatest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/mvrepair/mvrepair/events"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/testkit"
	"github.com/mvrepair/mvrepair/mvstate"
)

// TestServiceChild is the service in a child process; it is skipped unless
// an HA test started it (testkit.StartChild).
func TestServiceChild(t *testing.T) { testkit.RunChild(t) }

// instance is one service process of an HA test: its child and its own
// state dir (the instances share the group and the topics).
type instance struct {
	*testkit.Child
	cfg *config.Config
}

// start runs an instance of cfg named name with a state dir of its own.
func start(e *testkit.Env, cfg *config.Config, name string) *instance {
	e.T.Helper()
	c := *cfg
	c.State.Dir = filepath.Join(e.T.TempDir(), name)
	return &instance{Child: e.StartChild(&c, name), cfg: &c}
}

// haConfig is the configuration shared by the instances of one HA test.
func haConfig(e *testkit.Env, name string) *config.Config {
	cfg := e.Config(name)
	e.EnsureTopics(cfg)
	return cfg
}

// messages encodes events for topic, keyed as producers key them.
func messages(t testing.TB, topic string, evs ...events.Event) []kafkaio.Message {
	t.Helper()
	msgs := make([]kafkaio.Message, len(evs))
	for i, ev := range evs {
		b, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafkaio.Message{Topic: topic, Key: []byte(events.Key(ev)), Value: b}
	}
	return msgs
}

// getMV reads one MV from an instance's HTTP API.
func getMV(addr string, key mvstate.MVKey) (*mvstate.MV, error) {
	resp, err := http.Get(fmt.Sprintf("http://%s/v1/mvs/%d/%d", addr, key.DBID, key.MVID))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s", resp.Request.URL.Path, resp.StatusCode, b)
	}
	var m mvstate.MV
	return &m, json.Unmarshal(b, &m)
}

// versionOf returns the version of partition p00 of the first table of key
// as the instance serves it; it fails the test at once if the instance
// exited.
func (in *instance) versionOf(t testing.TB, addr string, key mvstate.MVKey) (int64, error) {
	t.Helper()
	if err := in.Exited(); err != nil {
		t.Fatal(err)
	}
	m, err := getMV(addr, key)
	if err != nil {
		return 0, err
	}
	return m.VersionMap[tables[0]]["p00"].Version, nil
}

// journal reads the edit log of cfg and checks its contract
// (testkit.CheckEditLog: decodable, headers and keys right, redeliveries
// byte-identical, no gap); it returns the journal and the epochs it carries.
func journal(e *testkit.Env, cfg *config.Config) (testkit.Journal, map[int64]bool) {
	e.T.Helper()
	j := testkit.CheckEditLog(e.T, e.ReadTopic(cfg.Kafka.Topics.EditLog))
	if len(j.Records) > 0 && j.Records[0].JournalID != 1 {
		e.T.Fatalf("edit log starts at journal id %d, want 1 (no checkpoint truncates it here)", j.Records[0].JournalID)
	}
	epochs := map[int64]bool{}
	for _, r := range j.Records {
		epochs[r.Epoch] = true
	}
	return j, epochs
}
