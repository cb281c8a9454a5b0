package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mvrepair/mvrepair/internal/cli"
	"github.com/mvrepair/mvrepair/internal/config"
	"github.com/mvrepair/mvrepair/internal/kafkaio"
	"github.com/mvrepair/mvrepair/internal/pipeline"
	"github.com/mvrepair/mvrepair/internal/service"
)

// The `consumer dlq` commands read the dead-letter topic (docs/design.md
// §4.8) and re-drive dead letters to their source topics. They talk to the
// brokers only: they work beside a running service and never open the store.

// dlqIdleTimeout bounds the wait for the next record while a partition has
// not reached the end it had when the command started.
const dlqIdleTimeout = 30 * time.Second

// redriveChunk is the most records re-driven per publish.
const redriveChunk = 500

// deadLetter is one record of the dead-letter topic with the service's
// headers read.
type deadLetter struct {
	msg kafkaio.Message // the record on the DLQ topic

	reason, errText string
	// source is where the original is; ok is false when the record lacks
	// (or has unreadable) source headers: not a dead letter of mvrepair.
	source struct {
		topic     string
		partition int
		offset    int64
		ok        bool
	}
	attempts   int
	failedAt   time.Time // zero when absent
	sourceSize int64     // the original's size of a record_too_large letter; -1 when absent
	eventID    string
}

// lastHeader returns the value of the last header named key.
func lastHeader(hs []kafkaio.Header, key string) (string, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return string(hs[i].Value), true
		}
	}
	return "", false
}

// parseDeadLetter reads the service's headers of a DLQ record.
func parseDeadLetter(m kafkaio.Message) deadLetter {
	d := deadLetter{msg: m, sourceSize: -1}
	d.reason, _ = lastHeader(m.Headers, pipeline.HeaderDLQReason)
	d.errText, _ = lastHeader(m.Headers, pipeline.HeaderDLQError)
	topic, okT := lastHeader(m.Headers, pipeline.HeaderSourceTopic)
	ps, okP := lastHeader(m.Headers, pipeline.HeaderSourcePartition)
	ofs, okO := lastHeader(m.Headers, pipeline.HeaderSourceOffset)
	p, errP := strconv.Atoi(ps)
	o, errO := strconv.ParseInt(ofs, 10, 64)
	if okT && okP && okO && topic != "" && errP == nil && errO == nil && p >= 0 && o >= 0 {
		d.source.topic, d.source.partition, d.source.offset, d.source.ok = topic, p, o, true
	}
	if s, ok := lastHeader(m.Headers, pipeline.HeaderAttempts); ok {
		d.attempts, _ = strconv.Atoi(s)
	}
	if s, ok := lastHeader(m.Headers, pipeline.HeaderFailedAt); ok {
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			d.failedAt = time.UnixMilli(ms).UTC()
		}
	}
	if d.reason == string(pipeline.ReasonRecordTooLarge) {
		if s, ok := lastHeader(m.Headers, pipeline.HeaderSourceSize); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				d.sourceSize = n
			}
		}
	}
	var v struct {
		EventID string `json:"event_id"`
	}
	if len(m.Value) > 0 && m.Value[0] == '{' && json.Unmarshal(m.Value, &v) == nil {
		d.eventID = v.EventID
	}
	return d
}

// originalHeaders returns the headers of the source record: a dead letter's
// headers without the last occurrence of each header the service appended.
func originalHeaders(hs []kafkaio.Header) []kafkaio.Header {
	drop := make([]bool, len(hs))
	// If a name occurs twice, the last occurrence is the service's.
	for _, name := range pipeline.AddedHeaders() {
		for i := len(hs) - 1; i >= 0; i-- {
			if hs[i].Key == name {
				drop[i] = true
				break
			}
		}
	}
	var out []kafkaio.Header
	for i, h := range hs {
		if !drop[i] {
			out = append(out, h)
		}
	}
	return out
}

// pos names a DLQ record as "partition:offset", as list prints it and
// --offsets takes it.
func (d deadLetter) pos() string { return fmt.Sprintf("%d:%d", d.msg.Partition, d.msg.Offset) }

// sourceText is "topic/partition/offset", or "-".
func (d deadLetter) sourceText() string {
	if !d.source.ok {
		return "-"
	}
	return fmt.Sprintf("%s/%d/%d", d.source.topic, d.source.partition, d.source.offset)
}

// dlqTopic is the dead-letter topic and the clients that reach it.
type dlqTopic struct {
	cfg     *config.Config
	brokers []string
	admin   *kafkaio.Admin
	log     zerolog.Logger
	stderr  io.Writer
	// idle bounds the wait for the next record (dlqIdleTimeout).
	idle time.Duration
}

// openDLQ loads the configuration and builds the admin client.
func openDLQ(cmd *cobra.Command, g *globals) (*dlqTopic, error) {
	cfg, log, err := g.loadWithLogger(cmd)
	if err != nil {
		return nil, err
	}
	brokers := brokersOf(cfg)
	admin, err := kafkaio.NewAdmin(service.AdminConfig(cfg, brokers))
	if err != nil {
		return nil, err
	}
	return &dlqTopic{cfg: cfg, brokers: brokers, admin: admin, log: log.Level(errorLevel(cfg)), stderr: cmd.ErrOrStderr(),
		idle: dlqIdleTimeout}, nil
}

func (t *dlqTopic) Close() { _ = t.admin.Close() }

// brokerHint follows errors of reaching the brokers.
func (t *dlqTopic) brokerHint() string {
	if t.cfg.Embedded() {
		return fmt.Sprintf(" (kafka.brokers is embedded: the DLQ lives in the embedded broker of the running service, %s)", t.cfg.Kafka.EmbeddedAddr)
	}
	return " (check kafka.brokers / MVREPAIR_KAFKA_BROKERS and the kafka.tls.* and kafka.sasl.* settings)"
}

// offsetRange is a partition's records [from, to).
type offsetRange struct{ from, to int64 }

// bounds returns the first offset and the end of every partition of the
// DLQ topic.
func (t *dlqTopic) bounds(ctx context.Context) (map[int]kafkaio.PartitionOffsets, error) {
	offs, err := t.admin.ListOffsets(ctx, t.cfg.Kafka.Topics.DLQ)
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w%s", t.cfg.Kafka.Topics.DLQ, err, t.brokerHint())
	}
	return offs, nil
}

// scan reads the DLQ records of ranges, partition by partition in offset
// order, up to each range's end, and calls fn for each; fn returns false to
// stop. Records deleted by retention meanwhile are reported on stderr and
// skipped.
func (t *dlqTopic) scan(ctx context.Context, ranges map[int]offsetRange, fn func(kafkaio.Message) bool) error {
	topic := t.cfg.Kafka.Topics.DLQ
	fcfg := service.FetcherConfig(t.cfg, t.brokers, t.log)
	for _, p := range slices.Sorted(maps.Keys(ranges)) {
		r := ranges[p]
		if r.from >= r.to {
			continue
		}
		more, err := t.scanPartition(ctx, fcfg, topic, p, r, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (t *dlqTopic) scanPartition(ctx context.Context, fcfg kafkaio.FetcherConfig, topic string, p int, r offsetRange, fn func(kafkaio.Message) bool) (bool, error) {
	f, err := kafkaio.NewFetcher(ctx, fcfg, map[string][]kafkaio.Assignment{topic: {{Partition: p, Offset: r.from}}})
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		fctx, cancel := context.WithTimeout(ctx, t.idle)
		m, err := f.Fetch(fctx)
		cancel()
		var oor *kafkaio.OffsetOutOfRangeError
		switch {
		case errors.As(err, &oor) && oor.BelowLogStart():
			fmt.Fprintf(t.stderr, "consumer: warning: %s/%d: records %d..%d were deleted (retention) while reading; continuing at %d\n",
				topic, p, oor.Offset, oor.LogStart-1, oor.LogStart)
			continue
		case errors.As(err, &oor):
			return true, nil // the partition ends below where it was listed (recreated topic?)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			return false, fmt.Errorf("no record from %s/%d for %s before its end at offset %d (an open transaction, or the broker unreachable)%s",
				topic, p, t.idle, r.to, t.brokerHint())
		case err != nil:
			return false, fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
		if m.Offset >= r.to {
			return true, nil
		}
		if !m.Skip && !fn(m) {
			return false, nil
		}
		if m.Offset >= r.to-1 {
			return true, nil
		}
	}
}

// --- dlq list ---------------------------------------------------------------

type dlqListOptions struct {
	reason, sourceTopic string
	partition           int
	limit               int
	fromOffset          int64
	json                bool
}

// letterJSON is one line of `dlq list --json`.
type letterJSON struct {
	Partition       int    `json:"dlq_partition"`
	Offset          int64  `json:"dlq_offset"`
	Reason          string `json:"reason"`
	Error           string `json:"error"`
	SourceTopic     string `json:"source_topic,omitempty"`
	SourcePartition *int   `json:"source_partition,omitempty"`
	SourceOffset    *int64 `json:"source_offset,omitempty"`
	EventID         string `json:"event_id,omitempty"`
	Key             string `json:"key"`
	Size            int    `json:"size"`
	SourceSize      *int64 `json:"source_size,omitempty"`
	Attempts        int    `json:"attempts"`
	FailedAt        string `json:"failed_at,omitempty"`
}

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List dead letters (the DLQ topic, kafka.topics.dlq) and re-drive them to their source topics",
		Args:  subcommandArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDLQListCmd(g), newDLQRedriveCmd(g))
	return cmd
}

func newDLQListCmd(g *globals) *cobra.Command {
	o := &dlqListOptions{partition: -1}
	cmd := &cobra.Command{
		Use:   "list [--reason R] [--source-topic T] [--limit N] [--from-offset O] [--json]",
		Short: "List the dead letters: DLQ position, reason, source, event id, size, failure time and error",
		Long: `Read the dead-letter topic (kafka.topics.dlq) from its start, or from --from-offset in every
partition, up to its end when the command starts, and print one line per dead letter:
its DLQ position PARTITION:OFFSET (what "dlq redrive --offsets" takes), its dlq-reason,
the source topic/partition/offset, the event_id when the value is a JSON object with one,
the value's size (for record_too_large, the original's size: the letter holds no value),
when it failed, and the dlq-error, shortened. --json prints one JSON object per line,
with the whole error. A summary goes to stderr. It only reads: it works beside a running
service.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.limit < 0 {
				return usageErrorf("dlq list: --limit must be 0 (no limit) or more, got %d", o.limit)
			}
			t, err := openDLQ(cmd, g)
			if err != nil {
				return err
			}
			defer t.Close()
			return dlqList(cmd.Context(), cmd.OutOrStdout(), t, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.reason, "reason", "", "only dead letters with this dlq-reason (invalid_json, unknown_kind, invalid_event, internal_catalog, retries_exhausted, record_too_large)")
	f.StringVar(&o.sourceTopic, "source-topic", "", "only dead letters whose source topic is T")
	f.IntVar(&o.limit, "limit", 0, "stop after N matching dead letters (0: no limit)")
	f.Int64Var(&o.fromOffset, "from-offset", 0, "start at this offset in every partition (below a partition's first offset: at the first)")
	f.Var(partitionFlag{&o.partition}, "partition", "only this partition of the DLQ topic")
	f.BoolVar(&o.json, "json", false, "print one JSON object per dead letter")
	return cmd
}

func dlqList(ctx context.Context, w io.Writer, t *dlqTopic, o *dlqListOptions) error {
	offs, err := t.bounds(ctx)
	if err != nil {
		return fmt.Errorf("dlq list: %w", err)
	}
	ranges := map[int]offsetRange{}
	for p, po := range offs {
		if o.partition >= 0 && p != o.partition {
			continue
		}
		ranges[p] = offsetRange{from: max(po.First, o.fromOffset), to: po.Last}
	}
	if len(ranges) == 0 {
		return usageErrorf("dlq list: %s has no partition %d", t.cfg.Kafka.Topics.DLQ, o.partition)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if !o.json {
		fmt.Fprintln(tw, "DLQ\tREASON\tSOURCE\tEVENT_ID\tSIZE\tFAILED_AT\tERROR")
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	read, shown := 0, 0
	var werr error
	err = t.scan(ctx, ranges, func(m kafkaio.Message) bool {
		read++
		d := parseDeadLetter(m)
		if (o.reason != "" && d.reason != o.reason) || (o.sourceTopic != "" && d.source.topic != o.sourceTopic) {
			return true
		}
		shown++
		if o.json {
			werr = enc.Encode(d.toJSON())
		} else {
			_, werr = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.pos(), orDash(d.reason), d.sourceText(), orDash(d.eventID),
				d.sizeText(), d.failedAtText(), orDash(shorten(d.errText, 100)))
		}
		return werr == nil && (o.limit == 0 || shown < o.limit)
	})
	if !o.json {
		if ferr := tw.Flush(); werr == nil {
			werr = ferr
		}
	}
	if err != nil {
		return fmt.Errorf("dlq list: %w", err)
	}
	if werr != nil {
		return werr
	}
	fmt.Fprintf(t.stderr, "%d dead letter(s) listed of %d read from %s\n", shown, read, t.cfg.Kafka.Topics.DLQ)
	return nil
}

func (d deadLetter) toJSON() letterJSON {
	j := letterJSON{Partition: d.msg.Partition, Offset: d.msg.Offset, Reason: d.reason, Error: d.errText,
		EventID: d.eventID, Key: string(d.msg.Key), Size: len(d.msg.Value), Attempts: d.attempts}
	if d.source.ok {
		j.SourceTopic, j.SourcePartition, j.SourceOffset = d.source.topic, &d.source.partition, &d.source.offset
	}
	if d.sourceSize >= 0 {
		j.SourceSize = &d.sourceSize
	}
	if !d.failedAt.IsZero() {
		j.FailedAt = d.failedAt.Format(timeFormat)
	}
	return j
}

// timeFormat is RFC 3339 in UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func (d deadLetter) sizeText() string {
	if d.sourceSize >= 0 {
		return fmt.Sprintf("%d (not copied)", d.sourceSize)
	}
	return strconv.Itoa(len(d.msg.Value))
}

func (d deadLetter) failedAtText() string {
	if d.failedAt.IsZero() {
		return "-"
	}
	return d.failedAt.Format(timeFormat)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten keeps the first n runes of s on one line, marking a cut with "…".
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// --- dlq redrive ------------------------------------------------------------

type dlqRedriveOptions struct {
	offsets       string
	reason        string
	all           bool
	partition     int
	dryRun        bool
	force         bool
	fetchOriginal bool
}

func newDLQRedriveCmd(g *globals) *cobra.Command {
	o := &dlqRedriveOptions{partition: -1}
	cmd := &cobra.Command{
		Use:   "redrive (--offsets P:O,P:A-B | --reason R | --all) [--dry-run] [--fetch-original] [--force]",
		Short: "Publish selected dead letters again to their source topic, as the original key, value and headers",
		Long: `Re-drive dead letters after the cause is fixed: each selected letter is published again to its
source topic with its original key, value and headers (without the dlq-*, source-*,
attempts and failed-at headers the service added; of a header name that occurs twice the
last occurrence is the service's). The producer partitions by key like the compaction
pipeline (murmur2), so a record lands on the partition its key belongs to. A re-driven
record is a new input record at a new offset and goes through the rules like any other.

Select the letters with exactly one of:
  --offsets  DLQ positions as "dlq list" prints them: P:O, P:A-B (a range), comma-separated;
             O and A-B alone with --partition P, or when the DLQ topic has one partition
  --reason   every letter with this dlq-reason
  --all      every letter
--partition limits --reason and --all to one partition of the DLQ topic.

A record_too_large letter holds no value: it is refused unless --fetch-original, which
reads the original from its source topic/partition/offset and publishes that. Letters
whose source topic is neither kafka.topics.input nor kafka.topics.catalog are refused
unless --force. Refused letters fail the command before anything is published.
--dry-run prints the plan and publishes nothing. Running it twice publishes twice.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, set := range []bool{o.offsets != "", o.reason != "", o.all} {
				if set {
					n++
				}
			}
			if n != 1 {
				return usageErrorf("dlq redrive: give exactly one of --offsets, --reason and --all")
			}
			var sel offsetSelection
			if o.offsets != "" {
				var err error
				if sel, err = parseOffsets(o.offsets, o.partition); err != nil {
					return usageErrorf("dlq redrive: --offsets %q: %v", o.offsets, err)
				}
			}
			t, err := openDLQ(cmd, g)
			if err != nil {
				return err
			}
			defer t.Close()
			return dlqRedrive(cmd.Context(), cmd.OutOrStdout(), t, o, sel)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.offsets, "offsets", "", "DLQ positions to re-drive: P:O or P:A-B, comma-separated")
	f.StringVar(&o.reason, "reason", "", "re-drive every dead letter with this dlq-reason")
	f.BoolVar(&o.all, "all", false, "re-drive every dead letter")
	f.Var(partitionFlag{&o.partition}, "partition", "only this partition of the DLQ topic")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan; publish nothing")
	f.BoolVar(&o.force, "force", false, "also re-drive letters whose source topic is neither kafka.topics.input nor kafka.topics.catalog")
	f.BoolVar(&o.fetchOriginal, "fetch-original", false, "re-drive record_too_large letters from their source offset")
	return cmd
}

// offsetSpan is the DLQ offsets [from, to] of one partition.
type offsetSpan struct{ from, to int64 }

// offsetSelection is what --offsets names, by partition. A partition of -1
// holds the spans given without a partition (resolved once the DLQ topic's
// partitions are known).
type offsetSelection map[int][]offsetSpan

// parseOffsets reads "P:O,P:A-B,O,A-B"; partition is --partition (-1 if not
// given), used for items without "P:".
func parseOffsets(s string, partition int) (offsetSelection, error) {
	sel := offsetSelection{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, errors.New("an empty item")
		}
		p := partition
		if ps, rest, ok := strings.Cut(item, ":"); ok {
			n, err := strconv.Atoi(ps)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%q: the partition must be a number", item)
			}
			if partition >= 0 && n != partition {
				return nil, fmt.Errorf("%q names partition %d, but --partition is %d", item, n, partition)
			}
			p, item = n, rest
		}
		a, b, isRange := strings.Cut(item, "-")
		from, err := strconv.ParseInt(a, 10, 64)
		to := from
		if err == nil && isRange {
			to, err = strconv.ParseInt(b, 10, 64)
		}
		if err != nil || from < 0 || to < from {
			return nil, fmt.Errorf("%q: want an offset O or a range A-B with A <= B", item)
		}
		sel[p] = append(sel[p], offsetSpan{from, to})
	}
	return sel, nil
}

// resolve assigns the spans given without a partition to the DLQ topic's
// only partition, or fails.
func (sel offsetSelection) resolve(parts []int) error {
	spans, ok := sel[-1]
	if !ok {
		return nil
	}
	if len(parts) != 1 {
		return fmt.Errorf("the DLQ topic has %d partitions: write offsets as P:O (as dlq list prints them) or give --partition", len(parts))
	}
	delete(sel, -1)
	sel[parts[0]] = append(sel[parts[0]], spans...)
	return nil
}

func (sel offsetSelection) has(p int, off int64) bool {
	for _, s := range sel[p] {
		if off >= s.from && off <= s.to {
			return true
		}
	}
	return false
}

// redrivePlan is what happens to one dead letter.
type redrivePlan struct {
	letter  deadLetter
	out     kafkaio.Message
	fetched bool   // out is the original, read from its source offset
	refused string // why it is not re-driven
}

func dlqRedrive(ctx context.Context, w io.Writer, t *dlqTopic, o *dlqRedriveOptions, sel offsetSelection) error {
	offs, err := t.bounds(ctx)
	if err != nil {
		return fmt.Errorf("dlq redrive: %w", err)
	}
	ranges, err := t.redriveRanges(offs, o, sel)
	if err != nil {
		return err
	}
	letters, err := t.selectLetters(ctx, ranges, o, sel)
	if err != nil {
		return err
	}
	if len(letters) == 0 {
		fmt.Fprintln(w, "no dead letter matches; nothing to re-drive")
		return nil
	}
	plans, refused := t.planAll(ctx, letters, o)
	if refused > 0 || o.dryRun {
		for _, pl := range plans {
			if pl.refused != "" {
				fmt.Fprintf(w, "refused %s (%s): %s\n", pl.letter.pos(), orDash(pl.letter.reason), pl.refused)
			} else {
				fmt.Fprintf(w, "would re-drive %s (%s) to %s: %s\n", pl.letter.pos(), orDash(pl.letter.reason), pl.out.Topic, pl.describe())
			}
		}
	}
	if refused > 0 {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("dlq redrive: refused %d of %d dead letter(s); nothing published (narrow the selection, or see --fetch-original and --force)", refused, len(plans))}
	}
	if o.dryRun {
		fmt.Fprintf(w, "dry run: %d dead letter(s) would be re-driven; nothing published\n", len(plans))
		return nil
	}
	return t.publish(ctx, w, plans)
}

// redriveRanges is what to read of the DLQ topic, whose partitions are
// offs: with --offsets, the span of the selected offsets in each partition
// they name (every one of them must be in the partition); otherwise every
// partition, or the --partition.
func (t *dlqTopic) redriveRanges(offs map[int]kafkaio.PartitionOffsets, o *dlqRedriveOptions, sel offsetSelection) (map[int]offsetRange, error) {
	dlq := t.cfg.Kafka.Topics.DLQ
	ranges := map[int]offsetRange{}
	if sel == nil {
		for p, po := range offs {
			if o.partition < 0 || p == o.partition {
				ranges[p] = offsetRange{from: po.First, to: po.Last}
			}
		}
		if len(ranges) == 0 {
			return nil, usageErrorf("dlq redrive: %s has no partition %d", dlq, o.partition)
		}
		return ranges, nil
	}
	if err := sel.resolve(slices.Sorted(maps.Keys(offs))); err != nil {
		return nil, usageErrorf("dlq redrive: --offsets: %v", err)
	}
	var missing []string
	for _, p := range slices.Sorted(maps.Keys(sel)) {
		po, ok := offs[p]
		if !ok {
			return nil, usageErrorf("dlq redrive: %s has no partition %d", dlq, p)
		}
		r := offsetRange{from: po.Last, to: po.First}
		for _, s := range sel[p] {
			if s.from < po.First || s.to >= po.Last {
				missing = append(missing, fmt.Sprintf("%d:%d-%d (partition %d holds %d..%d)", p, s.from, s.to, p, po.First, po.Last-1))
			}
			r.from, r.to = min(r.from, max(s.from, po.First)), max(r.to, min(s.to+1, po.Last))
		}
		ranges[p] = r
	}
	if len(missing) > 0 {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("dlq redrive: %s does not hold %s; nothing published", dlq, strings.Join(missing, ", "))}
	}
	return ranges, nil
}

// selectLetters reads ranges and returns the selected dead letters: those
// --offsets names (all of which must be found), every one (--all), or those
// with the --reason.
func (t *dlqTopic) selectLetters(ctx context.Context, ranges map[int]offsetRange, o *dlqRedriveOptions, sel offsetSelection) ([]deadLetter, error) {
	var letters []deadLetter
	found := map[string]bool{}
	err := t.scan(ctx, ranges, func(m kafkaio.Message) bool {
		d := parseDeadLetter(m)
		switch {
		case sel != nil && sel.has(m.Partition, m.Offset):
			found[d.pos()] = true
		case sel == nil && (o.all || d.reason == o.reason):
		default:
			return true
		}
		letters = append(letters, d)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("dlq redrive: %w", err)
	}
	if missing := sel.absent(found); len(missing) > 0 {
		return nil, &cli.ExitError{Code: 2, Err: fmt.Errorf("dlq redrive: %s has no dead letter at %s; nothing published",
			t.cfg.Kafka.Topics.DLQ, strings.Join(missing, ", "))}
	}
	return letters, nil
}

// absent returns the first ten selected positions ("P:O") that found lacks:
// offsets in range but not delivered, which are records the fetcher skips
// (transaction markers) or deleted meanwhile.
func (sel offsetSelection) absent(found map[string]bool) []string {
	var missing []string
	for _, p := range slices.Sorted(maps.Keys(sel)) {
		for _, s := range sel[p] {
			for off := s.from; off <= s.to && len(missing) < 10; off++ {
				if pos := fmt.Sprintf("%d:%d", p, off); !found[pos] {
					missing = append(missing, pos)
				}
			}
		}
	}
	return missing
}

// planAll plans every letter, sorted by source topic, partition and offset,
// and counts the refused ones.
func (t *dlqTopic) planAll(ctx context.Context, letters []deadLetter, o *dlqRedriveOptions) ([]redrivePlan, int) {
	plans := make([]redrivePlan, len(letters))
	refused := 0
	for i, d := range letters {
		plans[i] = t.plan(ctx, d, o)
		if plans[i].refused != "" {
			refused++
		}
	}
	slices.SortStableFunc(plans, func(a, b redrivePlan) int {
		x, y := a.letter.source, b.letter.source
		if c := strings.Compare(x.topic, y.topic); c != 0 {
			return c
		}
		if c := cmp.Compare(x.partition, y.partition); c != 0 {
			return c
		}
		return cmp.Compare(x.offset, y.offset)
	})
	return plans, refused
}

// plan decides what to publish for one letter (reading the original of a
// record_too_large letter with --fetch-original).
func (t *dlqTopic) plan(ctx context.Context, d deadLetter, o *dlqRedriveOptions) redrivePlan {
	pl := redrivePlan{letter: d}
	k := t.cfg.Kafka.Topics
	switch {
	case !d.source.ok:
		pl.refused = "no readable source-topic, source-partition and source-offset headers: not a dead letter of mvrepair"
		return pl
	case d.source.topic != k.Input && d.source.topic != k.Catalog && !o.force:
		pl.refused = fmt.Sprintf("its source topic %q is neither kafka.topics.input (%s) nor kafka.topics.catalog (%s); add --force to publish it there anyway",
			d.source.topic, k.Input, k.Catalog)
		return pl
	case d.reason == string(pipeline.ReasonRecordTooLarge) && !o.fetchOriginal:
		pl.refused = fmt.Sprintf("the letter holds no value (the original was too large to copy); add --fetch-original to re-drive the original from %s", d.sourceText())
		return pl
	case d.reason == string(pipeline.ReasonRecordTooLarge):
		orig, err := t.fetchOriginal(ctx, d)
		if err != nil {
			pl.refused = err.Error()
			return pl
		}
		pl.out = kafkaio.Message{Topic: d.source.topic, Key: orig.Key, Value: orig.Value, Headers: orig.Headers}
		pl.fetched = true
		return pl
	}
	pl.out = kafkaio.Message{Topic: d.source.topic, Key: d.msg.Key, Value: d.msg.Value, Headers: originalHeaders(d.msg.Headers)}
	return pl
}

// fetchOriginal reads the source record of a dead letter.
func (t *dlqTopic) fetchOriginal(ctx context.Context, d deadLetter) (kafkaio.Message, error) {
	src := d.source
	fcfg := service.FetcherConfig(t.cfg, t.brokers, t.log)
	fcfg.ResetBelowLogStart = false // a deleted original is an answer, not something to skip
	f, err := kafkaio.NewFetcher(ctx, fcfg, map[string][]kafkaio.Assignment{src.topic: {{Partition: src.partition, Offset: src.offset}}})
	if err != nil {
		return kafkaio.Message{}, fmt.Errorf("cannot read the original at %s: %w", d.sourceText(), err)
	}
	defer f.Close()
	fctx, cancel := context.WithTimeout(ctx, t.idle)
	defer cancel()
	m, err := f.Fetch(fctx)
	var oor *kafkaio.OffsetOutOfRangeError
	switch {
	case errors.As(err, &oor) && oor.BelowLogStart():
		return kafkaio.Message{}, fmt.Errorf("the original at %s is gone: the partition starts at offset %d now (retention)", d.sourceText(), oor.LogStart)
	case errors.As(err, &oor):
		return kafkaio.Message{}, fmt.Errorf("the original at %s is beyond the partition's end (%d): was the topic recreated?", d.sourceText(), oor.HighWatermark)
	case err != nil:
		return kafkaio.Message{}, fmt.Errorf("cannot read the original at %s: %w%s", d.sourceText(), err, t.brokerHint())
	case m.Offset != src.offset || m.Skip:
		return kafkaio.Message{}, fmt.Errorf("the original at %s is not readable (next record at offset %d): compacted away or in an aborted transaction", d.sourceText(), m.Offset)
	}
	return m, nil
}

// describe summarises what a plan publishes.
func (pl redrivePlan) describe() string {
	from := "from the letter"
	if pl.fetched {
		from = "the original, read from " + pl.letter.sourceText()
	}
	key := "no key"
	if pl.out.Key != nil {
		key = "key " + strconv.Quote(shorten(string(pl.out.Key), 60))
	}
	return fmt.Sprintf("%s, %d-byte value, %d header(s), %s", key, len(pl.out.Value), len(pl.out.Headers), from)
}

// publish re-drives the plans in chunks, each acknowledged before the next.
func (t *dlqTopic) publish(ctx context.Context, w io.Writer, plans []redrivePlan) error {
	pc := service.ProducerConfig(t.cfg, t.brokers, t.log)
	for _, pl := range plans {
		// The original was accepted by its topic once; the broker enforces
		// the topic's limit again.
		pc.MaxMessageBytes = max(pc.MaxMessageBytes, kafkaio.RecordSize(pl.out)+1024)
	}
	p, err := kafkaio.NewProducer(pc)
	if err != nil {
		return fmt.Errorf("dlq redrive: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	}()
	done := 0
	for len(plans) > 0 {
		chunk := plans[:min(len(plans), redriveChunk)]
		msgs := make([]kafkaio.Message, len(chunk))
		for i, pl := range chunk {
			msgs[i] = pl.out
		}
		if err := p.Publish(ctx, msgs...); err != nil {
			return fmt.Errorf("dlq redrive: %d dead letter(s) re-driven (listed above), then: %w; the rest were not published (re-run with --offsets for them)%s",
				done, err, t.brokerHint())
		}
		for i, pl := range chunk {
			fmt.Fprintf(w, "re-drove %s (%s) to %s/%d at offset %d (source was %s)\n", pl.letter.pos(), orDash(pl.letter.reason),
				msgs[i].Topic, msgs[i].Partition, msgs[i].Offset, pl.letter.sourceText())
		}
		done += len(chunk)
		plans = plans[len(chunk):]
	}
	fmt.Fprintf(w, "re-drove %d dead letter(s); they are new input records and go through the rules again\n", done)
	return nil
}
