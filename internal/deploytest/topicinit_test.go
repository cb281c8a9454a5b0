package deploytest

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/service"
)

// stubTopics stands in for kafka-topics.sh: it appends its arguments to
// $STUB_LOG (one per line, then <end>), keeps a copy of a --command-config
// file as $STUB_LOG.cc.<n>, fails when $STUB_FAIL is set, and answers
// --describe the way Kafka 3.9 does, with $STUB_PARTITIONS.
const stubTopics = `#!/bin/sh
n=$(grep -c '^<end>$' "$STUB_LOG" 2>/dev/null || true)
prev=
for a in "$@"; do
	[ "$prev" = --command-config ] && cp "$a" "$STUB_LOG.cc.${n:-0}"
	prev=$a
done
{ for a in "$@"; do printf '%s\n' "$a"; done; echo '<end>'; } >>"$STUB_LOG"
if [ -n "${STUB_FAIL:-}" ]; then
	echo "stub: broker unavailable" >&2
	exit 1
fi
topic= prev= describe=
for a in "$@"; do
	[ "$prev" = --topic ] && topic=$a
	[ "$a" = --describe ] && describe=1
	prev=$a
done
if [ -n "$describe" ]; then
	printf 'Topic: %s\tTopicId: bXZyZXBhaXItdG9waWMtMQ\tPartitionCount: %s\tReplicationFactor: 1\tConfigs: retention.ms=-1\n' "$topic" "${STUB_PARTITIONS:-1}"
	printf '\tTopic: %s\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n' "$topic"
fi
exit 0
`

// topicsCall is one parsed kafka-topics.sh invocation.
type topicsCall struct {
	create, describe, ifNotExists bool
	bootstrap, topic              string
	partitions, replicationFactor int
	configs                       map[string]string
	commandConfig                 string // the content of the --command-config file
}

// runTopicInit runs the topic-init script as the container does (/bin/sh
// <script>) with exactly env (plus PATH) and the stub as kafka-topics.sh.
func runTopicInit(t *testing.T, env map[string]string, stub ...string) (calls []topicsCall, stderr string, err error) {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh to run the topic-init script with")
	}
	script := topicInitScript(t, loadCompose(t))
	dir := t.TempDir()
	stubPath := filepath.Join(dir, "kafka-topics.sh")
	if err := os.WriteFile(stubPath, []byte(stubTopics), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "calls.log")

	cmd := exec.Command("/bin/sh", script)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"TOPICS_CMD=" + stubPath,
		"TOPICS_RETRY_SECONDS=0",
		"STUB_LOG=" + logPath,
	}, stub...)
	cmd.Env = append(cmd.Env, environ(env)...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	err = cmd.Run()

	raw, rerr := os.ReadFile(logPath)
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		t.Fatal(rerr)
	}
	var args []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "<end>" {
			c := parseTopicsCall(t, args)
			if c.commandConfig != "" {
				cc, err := os.ReadFile(logPath + ".cc." + strconv.Itoa(len(calls)))
				if err != nil {
					t.Fatalf("the stub kept no copy of the --command-config file: %v", err)
				}
				c.commandConfig = string(cc)
			}
			calls = append(calls, c)
			args = nil
		} else if line != "" {
			args = append(args, line)
		}
	}
	return calls, errBuf.String(), err
}

func parseTopicsCall(t *testing.T, args []string) topicsCall {
	t.Helper()
	c := topicsCall{configs: map[string]string{}}
	value := func(i int) string {
		if i+1 >= len(args) {
			t.Fatalf("kafka-topics.sh %q: %s has no value", args, args[i])
		}
		return args[i+1]
	}
	number := func(i int) int {
		n, err := strconv.Atoi(value(i))
		if err != nil {
			t.Fatalf("kafka-topics.sh %q: %s %q is not a number", args, args[i], value(i))
		}
		return n
	}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--create":
			c.create = true
		case "--describe":
			c.describe = true
		case "--if-not-exists":
			c.ifNotExists = true
		case "--bootstrap-server":
			c.bootstrap = value(i)
			i++
		case "--command-config":
			c.commandConfig = value(i) // the path; runTopicInit reads the copy
			i++
		case "--topic":
			c.topic = value(i)
			i++
		case "--partitions":
			c.partitions = number(i)
			i++
		case "--replication-factor":
			c.replicationFactor = number(i)
			i++
		case "--config":
			k, v, ok := strings.Cut(value(i), "=")
			if !ok {
				t.Fatalf("kafka-topics.sh %q: --config %q is not key=value", args, value(i))
			}
			c.configs[k] = v
			i++
		default:
			t.Fatalf("kafka-topics.sh %q: unexpected argument %q", args, args[i])
		}
	}
	return c
}

// created returns the topics the calls create, by name.
func created(t *testing.T, calls []topicsCall) map[string]topicsCall {
	t.Helper()
	out := make(map[string]topicsCall)
	for _, c := range calls {
		if !c.create {
			continue
		}
		if _, dup := out[c.topic]; dup {
			t.Errorf("topic %s is created twice", c.topic)
		}
		out[c.topic] = c
	}
	return out
}

// checkCreates compares what topic-init created with what the consumer would
// have created itself (service.TopicSpecs) under cfg.
func checkCreates(t *testing.T, calls []topicsCall, cfg *config.Config) {
	t.Helper()
	want := service.TopicSpecs(cfg)
	got := created(t, calls)
	if len(got) != len(want) {
		t.Errorf("topic-init creates %d topics %v; service.TopicSpecs has %d", len(got), slices.Sorted(maps.Keys(got)), len(want))
	}
	bootstrap := strings.Join(cfg.BrokerList(), ",")
	for _, spec := range want {
		c, ok := got[spec.Name]
		if !ok {
			t.Errorf("topic-init does not create %s", spec.Name)
			continue
		}
		if !sameSpec(c, spec) {
			t.Errorf("topic %s: created with partitions=%d replication-factor=%d configs=%v; service.TopicSpecs: %d, %d, %v",
				spec.Name, c.partitions, c.replicationFactor, c.configs, spec.Partitions, spec.ReplicationFactor, spec.Configs)
		}
		if !c.ifNotExists {
			t.Errorf("topic %s is created without --if-not-exists (topic-init must be rerunnable)", spec.Name)
		}
		if c.bootstrap != bootstrap {
			t.Errorf("topic %s: --bootstrap-server %q, want the consumer's brokers %q", spec.Name, c.bootstrap, bootstrap)
		}
	}
}

func sameSpec(c topicsCall, spec kafkaio.TopicSpec) bool {
	configs := spec.Configs
	if configs == nil {
		configs = map[string]string{}
	}
	return c.partitions == spec.Partitions && c.replicationFactor == spec.ReplicationFactor && maps.Equal(c.configs, configs)
}

func TestTopicInit_creates_exactly_the_topics_each_consumer_would_create_itself(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		calls, stderr, err := runTopicInit(t, cf.service(t, topicInitService).env(t))
		if err != nil {
			t.Fatalf("topic-init: %v\n%s", err, stderr)
		}
		for _, name := range cf.consumerServices() {
			t.Run(name, func(t *testing.T) {
				checkCreates(t, calls, loadConfig(t, name, cf.Services[name].env(t)))
			})
		}
	})
}

func TestTopicInit_creates_the_edit_log_with_one_partition_kept_forever(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		env := cf.service(t, topicInitService).env(t)
		calls, stderr, err := runTopicInit(t, env)
		if err != nil {
			t.Fatalf("topic-init: %v\n%s", err, stderr)
		}
		editLog := loadConfig(t, topicInitService, env).Kafka.Topics.EditLog
		c, ok := created(t, calls)[editLog]
		if !ok {
			t.Fatalf("topic-init does not create the edit log %s", editLog)
		}
		if c.partitions != 1 {
			t.Errorf("edit log %s: %d partitions, want 1 (the journal is one total order)", editLog, c.partitions)
		}
		if c.configs["retention.ms"] != "-1" {
			t.Errorf("edit log %s: retention.ms=%q, want -1 (keep the journal)", editLog, c.configs["retention.ms"])
		}
		described := false
		for _, c := range calls {
			described = described || (c.describe && c.topic == editLog)
		}
		if !described {
			t.Error("topic-init does not check the partition count of an existing edit log")
		}
	})
}

func TestTopicInit_follows_the_consumer_settings_and_defaults(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"only brokers: the config defaults": {
			"MVREPAIR_KAFKA_BROKERS": "kafka:9092",
		},
		"every setting overridden": {
			"MVREPAIR_KAFKA_BROKERS":               "k1:9092, k2:9092",
			"MVREPAIR_KAFKA_PARTITIONS":            "3",
			"MVREPAIR_KAFKA_REPLICATION_FACTOR":    "2",
			"MVREPAIR_KAFKA_EDIT_LOG_RETENTION_MS": "604800000",
			"MVREPAIR_KAFKA_TOPICS_INPUT":          "in",
			"MVREPAIR_KAFKA_TOPICS_CATALOG":        "cat",
			"MVREPAIR_KAFKA_TOPICS_EDIT_LOG":       "journal",
			"MVREPAIR_KAFKA_TOPICS_DLQ":            "dead",
		},
	} {
		t.Run(name, func(t *testing.T) {
			calls, stderr, err := runTopicInit(t, env)
			if err != nil {
				t.Fatalf("topic-init: %v\n%s", err, stderr)
			}
			checkCreates(t, calls, loadConfig(t, name, env))
		})
	}
}

func TestTopicInit_fails_when_an_existing_edit_log_has_several_partitions(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		_, stderr, err := runTopicInit(t, cf.service(t, topicInitService).env(t), "STUB_PARTITIONS=6")
		if err == nil {
			t.Fatal("topic-init succeeded with a 6-partition edit log")
		}
		if !strings.Contains(stderr, "exactly 1") {
			t.Errorf("stderr does not say why:\n%s", stderr)
		}
	})
}

func TestTopicInit_gives_up_after_its_attempts_when_the_broker_keeps_failing(t *testing.T) {
	forEachStack(t, func(t *testing.T, cf *composeFile) {
		calls, stderr, err := runTopicInit(t, cf.service(t, topicInitService).env(t), "STUB_FAIL=1", "TOPICS_ATTEMPTS=3")
		if err == nil {
			t.Fatal("topic-init succeeded although every kafka-topics.sh call failed")
		}
		if len(calls) != 3 {
			t.Errorf("kafka-topics.sh ran %d times, want 3 attempts and then an exit\n%s", len(calls), stderr)
		}
	})
}

func TestTopicInit_refuses_a_missing_or_embedded_broker(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"MVREPAIR_KAFKA_BROKERS": config.EmbeddedBrokers},
	} {
		calls, _, err := runTopicInit(t, env)
		if err == nil || len(calls) != 0 {
			t.Errorf("env %v: err=%v after %d kafka-topics.sh calls; want an error before any", env, err, len(calls))
		}
	}
}
