package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/embedded"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
)

// dlqLimit is the DLQ topic's max.message.bytes in these tests: a record
// above it is dead-lettered as record_too_large.
const dlqLimit = 2048

// bad is one bad input record the fixture sends.
type bad struct {
	name    string
	catalog bool
	key     string
	value   []byte
	headers []kafkaio.Header
	reason  string
	// where the original was written
	partition int
	offset    int64
}

// dlqFixture is an embedded broker whose DLQ holds the dead letters of the
// bad records, written by the real service (stopped again).
type dlqFixture struct {
	cfg   *config.Config
	admin *kafkaio.Admin
	bad   map[string]*bad
}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	ctx := context.Background()
	cfg := testConfig(t)
	b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", Topics: []embedded.Topic{
		{Name: cfg.Kafka.Topics.DLQ, Partitions: 3, Configs: map[string]string{"max.message.bytes": strconv.Itoa(dlqLimit)}},
		{Name: "other-topic", Partitions: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg.Kafka.Brokers = b.Addr()
	// The commands read the configuration from the environment.
	t.Setenv("MVREPAIR_KAFKA_BROKERS", b.Addr())
	t.Setenv("MVREPAIR_STATE_DIR", t.TempDir())

	svc, err := service.Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	f := &dlqFixture{cfg: cfg, bad: map[string]*bad{}}
	invalidEvent := `{"kind":"partition_version_changed","event_id":"bad-1","db_id":10001,"table_id":20003,"table_type":"olap",` +
		`"partitions":[{"partition_id":1,"partition_name":"p1","last_version":5,"new_version":5,"new_version_time":1}]}`
	large := `{"kind":"partition_version_changed","event_id":"big-1","pad":"` + strings.Repeat("x", 3000) + `"}`
	for _, r := range []*bad{
		{name: "not json", key: "10001:20001", value: []byte("not json"), reason: "invalid_json",
			// attempts is also a header the service adds: the original's stays.
			headers: []kafkaio.Header{{Key: "trace", Value: []byte("t-1")}, {Key: "attempts", Value: []byte("orig")}}},
		{name: "empty", key: "10001:20002", value: []byte{}, reason: "invalid_json"},
		{name: "invalid event", key: "10001:20003", value: []byte(invalidEvent), reason: "invalid_event",
			headers: []kafkaio.Header{{Key: pipeline.HeaderDLQReason, Value: []byte("an-earlier-failure")}}},
		{name: "unknown kind", catalog: true, key: "10001:50001", value: []byte(`{"kind":"nope","event_id":"cat-1"}`), reason: "unknown_kind"},
		{name: "too large", key: "10001:20004", value: []byte(large), reason: "record_too_large",
			headers: []kafkaio.Header{{Key: "trace", Value: []byte("t-big")}}},
	} {
		topic := cfg.Kafka.Topics.Input
		if r.catalog {
			topic = cfg.Kafka.Topics.Catalog
		}
		m := []kafkaio.Message{{Topic: topic, Key: []byte(r.key), Value: r.value, Headers: r.headers}}
		if err := svc.Producer().Publish(ctx, m...); err != nil {
			t.Fatal(err)
		}
		r.partition, r.offset = m[0].Partition, m[0].Offset
		f.bad[r.name] = r
	}
	stop := running(t, svc)
	waitFor(t, "every bad record dead-lettered", func() error {
		if n := hwm(t, svc, cfg.Kafka.Topics.DLQ); n != int64(len(f.bad)) {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})
	stop()
	f.admin, err = kafkaio.NewAdmin(kafkaio.AdminConfig{Brokers: []string{b.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.admin.Close() })
	return f
}

// list runs `dlq list --json` with args and returns the letters.
func (f *dlqFixture) list(t *testing.T, args ...string) []letterJSON {
	t.Helper()
	out, stderr, err := execute(t, append([]string{"dlq", "list", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("dlq list %v: %v\n%s", args, err, stderr)
	}
	var letters []letterJSON
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var l letterJSON
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		letters = append(letters, l)
	}
	return letters
}

// letter returns the dead letter of the bad record named name.
func (f *dlqFixture) letter(t *testing.T, name string) letterJSON {
	t.Helper()
	r := f.bad[name]
	for _, l := range f.list(t) {
		if l.SourcePartition != nil && *l.SourcePartition == r.partition && *l.SourceOffset == r.offset &&
			(l.SourceTopic == f.cfg.Kafka.Topics.Catalog) == r.catalog {
			return l
		}
	}
	t.Fatalf("no dead letter of %q", name)
	return letterJSON{}
}

func pos(l letterJSON) string { return fmt.Sprintf("%d:%d", l.Partition, l.Offset) }

// ends returns the high watermark of every partition of topic.
func (f *dlqFixture) ends(t *testing.T, topic string) map[int]int64 {
	t.Helper()
	offs, err := f.admin.ListOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for p, o := range offs {
		out[p] = o.Last
	}
	return out
}

// since returns the records of topic written after the offsets in from.
func (f *dlqFixture) since(t *testing.T, topic string, from map[int]int64) []kafkaio.Message {
	t.Helper()
	var out []kafkaio.Message
	for p, end := range f.ends(t, topic) {
		if end <= from[p] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		fe, err := kafkaio.NewFetcher(ctx, kafkaio.FetcherConfig{Brokers: f.cfg.BrokerList()},
			map[string][]kafkaio.Assignment{topic: {{Partition: p, Offset: from[p]}}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Fetch(ctx)
			if err != nil {
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			if !m.Skip {
				out = append(out, m)
			}
			if m.Offset >= end-1 {
				break
			}
		}
		fe.Close()
		cancel()
	}
	return out
}

func TestDLQList_printsEveryDeadLetterAndFiltersByReasonSourceTopicPartitionLimitAndOffset(t *testing.T) {
	f := newDLQFixture(t)
	all := f.list(t)
	if len(all) != len(f.bad) {
		t.Fatalf("listed %d dead letters, want %d: %+v", len(all), len(f.bad), all)
	}
	for name, r := range f.bad {
		l := f.letter(t, name)
		wantTopic := f.cfg.Kafka.Topics.Input
		if r.catalog {
			wantTopic = f.cfg.Kafka.Topics.Catalog
		}
		if l.Reason != r.reason || l.SourceTopic != wantTopic || l.Key != r.key || l.Attempts < 1 || l.Error == "" {
			t.Errorf("%s: letter %+v", name, l)
		}
		if _, err := time.Parse(time.RFC3339, l.FailedAt); err != nil {
			t.Errorf("%s: failed_at %q: %v", name, l.FailedAt, err)
		}
		switch name {
		case "too large":
			if l.Size != 0 || l.SourceSize == nil || *l.SourceSize != int64(len(r.value)) {
				t.Errorf("too large: size %d, source size %v, want 0 and %d", l.Size, l.SourceSize, len(r.value))
			}
		default:
			if l.Size != len(r.value) || l.SourceSize != nil {
				t.Errorf("%s: size %d (source %v), want %d", name, l.Size, l.SourceSize, len(r.value))
			}
		}
	}
	if l := f.letter(t, "invalid event"); l.EventID != "bad-1" || !strings.Contains(l.Error, "new_version") {
		t.Errorf("invalid event: event_id %q, error %q", l.EventID, l.Error)
	}
	if l := f.letter(t, "unknown kind"); l.EventID != "cat-1" {
		t.Errorf("unknown kind: event_id %q", l.EventID)
	}

	count := func(pred func(letterJSON) bool) int {
		n := 0
		for _, l := range all {
			if pred(l) {
				n++
			}
		}
		return n
	}
	if got := f.list(t, "--reason", "invalid_json"); len(got) != 2 || got[0].Reason != "invalid_json" || got[1].Reason != "invalid_json" {
		t.Errorf("--reason invalid_json: %+v", got)
	}
	if got := f.list(t, "--source-topic", f.cfg.Kafka.Topics.Catalog); len(got) != 1 || got[0].Reason != "unknown_kind" {
		t.Errorf("--source-topic %s: %+v", f.cfg.Kafka.Topics.Catalog, got)
	}
	if got := f.list(t, "--limit", "2"); len(got) != 2 || pos(got[0]) != pos(all[0]) || pos(got[1]) != pos(all[1]) {
		t.Errorf("--limit 2: %+v", got)
	}
	if got, want := f.list(t, "--from-offset", "1"), count(func(l letterJSON) bool { return l.Offset >= 1 }); len(got) != want || slices.ContainsFunc(got, func(l letterJSON) bool { return l.Offset < 1 }) {
		t.Errorf("--from-offset 1: %d letters, want %d: %+v", len(got), want, got)
	}
	p := all[0].Partition
	if got, want := f.list(t, "--partition", strconv.Itoa(p)), count(func(l letterJSON) bool { return l.Partition == p }); len(got) != want || slices.ContainsFunc(got, func(l letterJSON) bool { return l.Partition != p }) {
		t.Errorf("--partition %d: %d letters, want %d", p, len(got), want)
	}

	_, _, err := execute(t, "dlq", "list", "--partition", "9")
	wantExit(t, err, 2, "mv-repair-dlq has no partition 9")

	// The text form: a header and one line per letter.
	out, stderr, err := execute(t, "dlq", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(f.bad)+1 || !strings.HasPrefix(lines[0], "DLQ ") || !strings.Contains(stderr, "5 dead letter(s) listed of 5 read") {
		t.Fatalf("dlq list:\n%s\nstderr: %s", out, stderr)
	}
	ie, big := f.letter(t, "invalid event"), f.letter(t, "too large")
	src := fmt.Sprintf("%s/%d/%d", f.cfg.Kafka.Topics.Input, f.bad["invalid event"].partition, f.bad["invalid event"].offset)
	for _, want := range [][]string{{pos(ie) + " ", "invalid_event", src, "bad-1", "new_version"}, {pos(big) + " ", "record_too_large", "(not copied)"}} {
		if !slices.ContainsFunc(lines, func(line string) bool {
			return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) })
		}) {
			t.Errorf("no line of dlq list holds %q:\n%s", want, out)
		}
	}
}

func TestDLQRedrive_republishesTheOriginalKeyValueAndHeadersToTheSourceTopic(t *testing.T) {
	f := newDLQFixture(t)
	input := f.cfg.Kafka.Topics.Input

	// By offset: the original headers come back, without the service's
	// (an original header named like one of them stays).
	before := f.ends(t, input)
	nj := f.letter(t, "not json")
	out, _, err := execute(t, "dlq", "redrive", "--offsets", pos(nj))
	if err != nil {
		t.Fatalf("redrive: %v\n%s", err, out)
	}
	if !strings.Contains(out, "re-drove "+pos(nj)+" (invalid_json) to "+input) {
		t.Errorf("output:\n%s", out)
	}
	got := f.since(t, input, before)
	orig := f.bad["not json"]
	if len(got) != 1 || string(got[0].Key) != orig.key || string(got[0].Value) != "not json" || got[0].Partition != orig.partition ||
		!slices.EqualFunc(got[0].Headers, orig.headers, func(a, b kafkaio.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
		t.Fatalf("re-driven records %+v, want the original %+v on partition %d", got, orig, orig.partition)
	}

	// By reason, and an empty value stays empty.
	before = f.ends(t, input)
	if out, _, err := execute(t, "dlq", "redrive", "--reason", "invalid_event"); err != nil {
		t.Fatalf("redrive: %v\n%s", err, out)
	}
	got = f.since(t, input, before)
	ie := f.bad["invalid event"]
	if len(got) != 1 || !bytes.Equal(got[0].Value, ie.value) || len(got[0].Headers) != 1 || string(got[0].Headers[0].Value) != "an-earlier-failure" {
		t.Fatalf("re-driven by reason: %+v", got)
	}
	before = f.ends(t, input)
	if out, _, err := execute(t, "dlq", "redrive", "--offsets", pos(f.letter(t, "empty"))); err != nil {
		t.Fatalf("redrive: %v\n%s", err, out)
	}
	if got = f.since(t, input, before); len(got) != 1 || got[0].Value == nil || len(got[0].Value) != 0 || string(got[0].Key) != "10001:20002" {
		t.Fatalf("re-driven empty value: %+v", got)
	}

	// Selections that name no letter are refused, and nothing is published.
	before = f.ends(t, input)
	for args, want := range map[string]string{
		"--offsets 0:999":             "does not hold 0:999-999",
		"--offsets 0":                 "the DLQ topic has 3 partitions: write offsets as P:O",
		"--offsets 7 --partition 9":   "has no partition 9",
		"--reason nope --partition 9": "has no partition 9",
	} {
		_, _, err := execute(t, append([]string{"dlq", "redrive"}, strings.Fields(args)...)...)
		wantExit(t, err, 2, want)
	}
	if out, _, err := execute(t, "dlq", "redrive", "--reason", "nope"); err != nil || !strings.Contains(out, "no dead letter matches") {
		t.Errorf("--reason nope: %v\n%s", err, out)
	}
	if got := f.since(t, input, before); len(got) != 0 {
		t.Fatalf("refused selections published %d records", len(got))
	}
}

func TestDLQRedrive_recordTooLargeIsRefusedUnlessFetchOriginalWhichPublishesTheOriginal(t *testing.T) {
	f := newDLQFixture(t)
	input := f.cfg.Kafka.Topics.Input
	big := f.letter(t, "too large")
	before := f.ends(t, input)
	out, _, err := execute(t, "dlq", "redrive", "--reason", "record_too_large")
	wantExit(t, err, 2, "refused 1 of 1", "nothing published")
	if !strings.Contains(out, "refused "+pos(big)+" (record_too_large)") || !strings.Contains(out, "--fetch-original") {
		t.Errorf("output:\n%s", out)
	}
	// In a mixed selection, one refused letter stops them all.
	_, _, err = execute(t, "dlq", "redrive", "--all")
	wantExit(t, err, 2, "refused 1 of 5")
	if got := f.since(t, input, before); len(got) != 0 {
		t.Fatalf("a refused redrive published %d records", len(got))
	}

	out, _, err = execute(t, "dlq", "redrive", "--offsets", pos(big), "--fetch-original")
	if err != nil {
		t.Fatalf("redrive --fetch-original: %v\n%s", err, out)
	}
	orig := f.bad["too large"]
	got := f.since(t, input, before)
	if len(got) != 1 || !bytes.Equal(got[0].Value, orig.value) || string(got[0].Key) != orig.key || got[0].Partition != orig.partition ||
		len(got[0].Headers) != 1 || string(got[0].Headers[0].Value) != "t-big" {
		t.Fatalf("re-driven original: %d records, first %d bytes", len(got), len(got[0].Value))
	}

	// Once the original is gone (retention), --fetch-original says so.
	if _, err := f.admin.DeleteRecords(context.Background(), input, orig.partition, orig.offset+1); err != nil {
		t.Fatal(err)
	}
	_, _, err = execute(t, "dlq", "redrive", "--offsets", pos(big), "--fetch-original")
	wantExit(t, err, 2, "refused 1 of 1")
	out, _, _ = execute(t, "dlq", "redrive", "--offsets", pos(big), "--fetch-original", "--dry-run")
	if !strings.Contains(out, "is gone: the partition starts at offset") {
		t.Errorf("output:\n%s", out)
	}
}

func TestDLQRedrive_dryRunPrintsThePlanAndPublishesNothing(t *testing.T) {
	f := newDLQFixture(t)
	k := f.cfg.Kafka.Topics
	before := map[string]map[int]int64{k.Input: f.ends(t, k.Input), k.Catalog: f.ends(t, k.Catalog)}
	out, _, err := execute(t, "dlq", "redrive", "--all", "--fetch-original", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if strings.Count(out, "would re-drive ") != len(f.bad) || !strings.Contains(out, "dry run: 5 dead letter(s) would be re-driven; nothing published") ||
		!strings.Contains(out, "the original, read from "+k.Input) || !strings.Contains(out, `key "10001:50001"`) {
		t.Errorf("dry run output:\n%s", out)
	}
	for topic, ends := range before {
		if got := f.since(t, topic, ends); len(got) != 0 {
			t.Errorf("the dry run published %d records to %s", len(got), topic)
		}
	}
}

func TestDLQRedrive_refusesASourceTopicOtherThanInputOrCatalogUnlessForce(t *testing.T) {
	f := newDLQFixture(t)
	ctx := context.Background()
	p, err := kafkaio.NewProducer(kafkaio.ProducerConfig{Brokers: f.cfg.BrokerList()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	h := func(k, v string) kafkaio.Header { return kafkaio.Header{Key: k, Value: []byte(v)} }
	foreign := []kafkaio.Message{{Topic: f.cfg.Kafka.Topics.DLQ, Key: []byte("k"), Value: []byte("v"), Headers: []kafkaio.Header{
		h("mine", "1"), h(pipeline.HeaderDLQReason, "invalid_json"), h(pipeline.HeaderDLQError, "x"), h(pipeline.HeaderSourceTopic, "other-topic"),
		h(pipeline.HeaderSourcePartition, "0"), h(pipeline.HeaderSourceOffset, "0"), h(pipeline.HeaderAttempts, "1"), h(pipeline.HeaderFailedAt, "1"),
	}}}
	if err := p.Publish(ctx, foreign...); err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprintf("%d:%d", foreign[0].Partition, foreign[0].Offset)
	out, _, err := execute(t, "dlq", "redrive", "--offsets", at)
	wantExit(t, err, 2, "refused 1 of 1")
	if !strings.Contains(out, `source topic "other-topic" is neither kafka.topics.input`) || !strings.Contains(out, "--force") {
		t.Errorf("output:\n%s", out)
	}
	before := f.ends(t, "other-topic")
	if out, _, err := execute(t, "dlq", "redrive", "--offsets", at, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, out)
	}
	got := f.since(t, "other-topic", before)
	if len(got) != 1 || string(got[0].Value) != "v" || len(got[0].Headers) != 1 || got[0].Headers[0].Key != "mine" {
		t.Fatalf("re-driven to other-topic: %+v", got)
	}

	// A record without source headers is not a dead letter of mvrepair;
	// one whose source topic does not exist (any more) fails to publish.
	odd := []kafkaio.Message{
		{Topic: f.cfg.Kafka.Topics.DLQ, Key: []byte("k"), Value: []byte("v")},
		{Topic: f.cfg.Kafka.Topics.DLQ, Key: []byte("k"), Value: []byte("v"), Headers: []kafkaio.Header{
			h(pipeline.HeaderDLQReason, "invalid_json"), h(pipeline.HeaderSourceTopic, "no-such-topic"),
			h(pipeline.HeaderSourcePartition, "0"), h(pipeline.HeaderSourceOffset, "0")}},
	}
	if err := p.Publish(ctx, odd...); err != nil {
		t.Fatal(err)
	}
	out, _, err = execute(t, "dlq", "redrive", "--offsets", fmt.Sprintf("%d:%d", odd[0].Partition, odd[0].Offset), "--force")
	wantExit(t, err, 2, "refused 1 of 1")
	if !strings.Contains(out, "not a dead letter of mvrepair") {
		t.Errorf("output:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := newRoot()
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	cmd.SetArgs([]string{"dlq", "redrive", "--offsets", fmt.Sprintf("%d:%d", odd[1].Partition, odd[1].Offset), "--force"})
	err = cmd.ExecuteContext(ctx)
	if err == nil || !strings.Contains(err.Error(), "0 dead letter(s) re-driven") || !strings.Contains(err.Error(), "the rest were not published") {
		t.Fatalf("redrive to a missing topic: %v\n%s", err, buf.String())
	}
}

func TestDLQRedrive_selectionFlagsAreCheckedBeforeConnecting(t *testing.T) {
	t.Setenv("MVREPAIR_KAFKA_BROKERS", "127.0.0.1:1") // never reached
	for args, want := range map[string]string{
		"":                            "give exactly one of --offsets, --reason and --all",
		"--all --reason x":            "give exactly one of",
		"--offsets 3:x":               `--offsets "3:x": "x": want an offset O or a range A-B`,
		"--offsets 5-3":               "want an offset O or a range A-B with A <= B",
		"--offsets x:1":               "the partition must be a number",
		"--offsets 1:2,":              "an empty item",
		"--offsets 1:2 --partition 2": "names partition 1, but --partition is 2",
	} {
		_, _, err := execute(t, append([]string{"dlq", "redrive"}, strings.Fields(args)...)...)
		wantExit(t, err, 2, want)
	}
	_, _, err := execute(t, "dlq", "list", "--limit", "-1")
	wantExit(t, err, 2, "--limit must be 0")
}

func TestDLQ_unreachableBrokersFailWithAHint(t *testing.T) {
	t.Setenv("MVREPAIR_KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("MVREPAIR_STATE_DIR", t.TempDir())
	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "redrive", "--all"}} {
		_, _, err := execute(t, args...)
		var ee *cli.ExitError
		if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "check kafka.brokers") {
			t.Errorf("%v: %v, want a run-time error naming kafka.brokers", args, err)
		}
	}
}

func TestParseOffsets_readsPartitionsOffsetsAndRanges(t *testing.T) {
	sel, err := parseOffsets("0:3, 0:7-12,2:5", -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []struct {
		p   int
		off int64
	}{{0, 3}, {0, 7}, {0, 12}, {2, 5}} {
		if !sel.has(in.p, in.off) {
			t.Errorf("%d:%d not selected", in.p, in.off)
		}
	}
	for _, out := range []struct {
		p   int
		off int64
	}{{0, 4}, {0, 13}, {1, 3}, {2, 6}} {
		if sel.has(out.p, out.off) {
			t.Errorf("%d:%d selected", out.p, out.off)
		}
	}
	sel, err = parseOffsets("3,7-9", 4)
	if err != nil || !sel.has(4, 8) || sel.has(4, 5) {
		t.Errorf("with --partition 4: %v %v", sel, err)
	}
	sel, err = parseOffsets("3", -1)
	if err != nil || sel.resolve([]int{0, 1}) == nil {
		t.Errorf("offsets without a partition on a 2-partition topic must be refused")
	}
	if err := sel.resolve([]int{0}); err != nil || !sel.has(0, 3) {
		t.Errorf("resolve on one partition: %v", err)
	}
}

func TestOriginalHeaders_dropsTheLastOccurrenceOfEachHeaderTheServiceAdded(t *testing.T) {
	h := func(k, v string) kafkaio.Header { return kafkaio.Header{Key: k, Value: []byte(v)} }
	in := []kafkaio.Header{h("trace", "1"), h("dlq-reason", "earlier"), h("attempts", "orig"),
		h("dlq-reason", "invalid_json"), h("dlq-error", "e"), h("source-topic", "t"), h("source-partition", "0"),
		h("source-offset", "1"), h("attempts", "1"), h("failed-at", "2")}
	got := originalHeaders(in)
	want := in[:3]
	if !slices.EqualFunc(got, want, func(a, b kafkaio.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
		t.Errorf("got %v, want %v", got, want)
	}
	d := parseDeadLetter(kafkaio.Message{Headers: in, Value: []byte(`{"event_id":"e-1"}`)})
	if d.reason != "invalid_json" || d.attempts != 1 || !d.source.ok || d.source.topic != "t" || d.source.offset != 1 || d.eventID != "e-1" {
		t.Errorf("parsed %+v", d)
	}
	if d := parseDeadLetter(kafkaio.Message{Headers: in[:3]}); d.source.ok || d.sourceText() != "-" {
		t.Errorf("a record without source headers parsed as %+v", d)
	}
}

func TestDLQList_failsNamingThePartitionWhenItsEndCannotBeReached(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(t)
	b, err := embedded.Start(ctx, embedded.Config{Addr: "127.0.0.1:0", Topics: []embedded.Topic{{Name: cfg.Kafka.Topics.DLQ, Partitions: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg.Kafka.Brokers = b.Addr()
	// An open transaction on the DLQ: the high watermark is past a record
	// that read_committed does not deliver until the transaction ends.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("dlq-test-open"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Kafka.Topics.DLQ, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	defer cl.EndTransaction(context.Background(), kgo.TryAbort)

	admin, err := kafkaio.NewAdmin(service.AdminConfig(cfg, cfg.BrokerList()))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var stderr bytes.Buffer
	dt := &dlqTopic{cfg: cfg, brokers: cfg.BrokerList(), admin: admin, log: zerolog.Nop(), stderr: &stderr, idle: 500 * time.Millisecond}
	err = dlqList(ctx, &bytes.Buffer{}, dt, &dlqListOptions{partition: -1})
	if err == nil || !strings.Contains(err.Error(), "no record from mv-repair-dlq/0 for 500ms before its end at offset 1") {
		t.Fatalf("dlq list over an open transaction: %v", err)
	}
}
