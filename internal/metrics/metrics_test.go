package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/metrics"
)

// scrape GETs the metrics handler and returns the exposition text.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape status = %d", rec.Code)
	}
	body, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// sample returns the value text of the sample line "series value", or "".
func sample(text, series string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestHandler_scrape_contains_every_series_after_use(t *testing.T) {
	m := metrics.New()
	m.Event("partition_version_changed", metrics.OutcomeApplied)
	m.Event("partition_version_changed", metrics.OutcomeApplied)
	m.Event("mv_dropped", metrics.OutcomeNoop)
	m.Event("partition_version_changed", metrics.OutcomeSkipped)
	m.Event("unknown", metrics.OutcomeDLQ)
	m.Repairs(3)
	m.Skip("version_mismatch")
	m.ObserveBatch(2, 15*time.Millisecond)
	m.EditLogPublished(4, 3*time.Millisecond)
	m.Retry("publish")
	m.DLQ("bad_json")
	m.SetConsumerLag("partition-version-changed", 5, 17)
	m.Commit()
	m.SetJournalID(1234)
	m.SetEpoch(7)
	m.SetActive(true)
	m.FollowerApplied(6)

	text := scrape(t, m.Handler())
	want := map[string]string{
		`mvrepair_events_total{kind="partition_version_changed",outcome="applied"}`: "2",
		`mvrepair_events_total{kind="partition_version_changed",outcome="skipped"}`: "1",
		`mvrepair_events_total{kind="mv_dropped",outcome="noop"}`:                   "1",
		`mvrepair_events_total{kind="unknown",outcome="dlq"}`:                       "1",
		`mvrepair_repairs_total`:                                                 "3",
		`mvrepair_skips_total{reason="version_mismatch"}`:                        "1",
		`mvrepair_batch_size_count`:                                              "1",
		`mvrepair_batch_size_sum`:                                                "2",
		`mvrepair_batch_duration_seconds_count`:                                  "1",
		`mvrepair_batch_duration_seconds_sum`:                                    "0.015",
		`mvrepair_editlog_publish_duration_seconds_count`:                        "1",
		`mvrepair_editlog_records_total`:                                         "4",
		`mvrepair_retries_total{op="publish"}`:                                   "1",
		`mvrepair_dlq_total{reason="bad_json"}`:                                  "1",
		`mvrepair_consumer_lag{partition="5",topic="partition-version-changed"}`: "17",
		`mvrepair_commits_total`:                                                 "1",
		`mvrepair_journal_id`:                                                    "1234",
		`mvrepair_epoch`:                                                         "7",
		`mvrepair_role`:                                                          "1",
		`mvrepair_followers_applied_total`:                                       "6",
	}
	for series, v := range want {
		if got := sample(text, series); got != v {
			t.Errorf("%s = %q, want %q", series, got, v)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(text, "\n"+name+" ") {
			t.Errorf("scrape lacks runtime series %s", name)
		}
	}
}

func TestSetActive_false_reports_standby(t *testing.T) {
	m := metrics.New()
	m.SetActive(true)
	m.SetActive(false)
	if got := sample(scrape(t, m.Handler()), "mvrepair_role"); got != "0" {
		t.Errorf("mvrepair_role = %q, want 0", got)
	}
}

func TestDeleteConsumerLag_drops_one_partition(t *testing.T) {
	m := metrics.New()
	m.SetConsumerLag("in", 0, 5)
	m.SetConsumerLag("in", 1, 9)
	m.DeleteConsumerLag("in", 0)
	text := scrape(t, m.Handler())
	if sample(text, `mvrepair_consumer_lag{partition="0",topic="in"}`) != "" ||
		sample(text, `mvrepair_consumer_lag{partition="1",topic="in"}`) != "9" {
		t.Errorf("lag series after delete:\n%s", text)
	}
}

func TestResetConsumerLag_drops_every_partition(t *testing.T) {
	m := metrics.New()
	m.SetConsumerLag("in", 0, 5)
	m.SetConsumerLag("in", 1, 9)
	m.ResetConsumerLag()
	m.SetConsumerLag("in", 2, 1)
	text := scrape(t, m.Handler())
	if sample(text, `mvrepair_consumer_lag{partition="0",topic="in"}`) != "" ||
		sample(text, `mvrepair_consumer_lag{partition="2",topic="in"}`) != "1" {
		t.Errorf("lag series after reset:\n%s", text)
	}
}

func TestNew_instances_do_not_share_series(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.Commit()
	if got := sample(scrape(t, b.Handler()), "mvrepair_commits_total"); got != "0" {
		t.Errorf("second instance commits_total = %q, want 0", got)
	}
}

func TestNil_metrics_is_a_noop(t *testing.T) {
	var m *metrics.Metrics
	m.Event("k", metrics.OutcomeApplied)
	m.Repairs(1)
	m.Skip("r")
	m.ObserveBatch(1, time.Millisecond)
	m.EditLogPublished(1, time.Millisecond)
	m.Retry("op")
	m.DLQ("r")
	m.SetConsumerLag("t", 0, 1)
	m.DeleteConsumerLag("t", 0)
	m.ResetConsumerLag()
	m.Commit()
	m.SetJournalID(1)
	m.SetEpoch(1)
	m.SetActive(true)
	m.FollowerApplied(1)
	if strings.Contains(scrape(t, m.Handler()), "mvrepair_") {
		t.Error("nil Metrics exposed mvrepair series")
	}
}

func TestMetrics_methods_are_safe_for_concurrent_use(t *testing.T) {
	m := metrics.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				m.Event("k", metrics.OutcomeApplied)
				m.SetConsumerLag("t", i, int64(i))
				m.Repairs(1)
			}
		})
	}
	wg.Wait()
	text := scrape(t, m.Handler())
	if got := sample(text, `mvrepair_events_total{kind="k",outcome="applied"}`); got != "800" {
		t.Errorf("events_total = %q, want 800", got)
	}
	if got := sample(text, "mvrepair_repairs_total"); got != "800" {
		t.Errorf("repairs_total = %q, want 800", got)
	}
}

// touchAll gives every series of m a sample, so that a gather lists every
// family (a vector without children is not exposed).
func touchAll(m *metrics.Metrics) {
	m.Event("k", metrics.OutcomeApplied)
	m.Repairs(1)
	m.Skip("r")
	m.ObserveBatch(1, time.Millisecond)
	m.EditLogPublished(1, time.Millisecond)
	m.Retry("op")
	m.DLQ("r")
	m.SetConsumerLag("t", 0, 1)
	m.Commit()
	m.SetJournalID(1)
	m.SetEpoch(1)
	m.SetActive(true)
	m.FollowerApplied(1)
	m.SetStalled("writer", true)
	m.SetReady(true)
	m.Fork()
	m.TablePartitionMove()
	m.SetFollowerLag(1)
	m.SetState(1, 1)
	m.LocalLog(1)
	m.SetRestoring(true, 1)
	m.Checkpoint(1, time.Unix(1, 0))
	m.CheckpointFailed()
	m.SetEditLogFirst(1)
}

func TestFamilies_listExactlyTheMvrepairFamiliesTheRegistryExposes(t *testing.T) {
	m := metrics.New()
	touchAll(m)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	gathered := map[string]metrics.Family{}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), metrics.Namespace+"_") {
			continue
		}
		g := metrics.Family{Name: f.GetName(), Type: strings.ToLower(f.GetType().String()), Help: f.GetHelp()}
		for _, l := range f.GetMetric()[0].GetLabel() {
			g.Labels = append(g.Labels, l.GetName())
		}
		gathered[g.Name] = g
	}
	declared := metrics.Families()
	if len(declared) != len(gathered) {
		t.Errorf("Families() lists %d families, the registry exposes %d", len(declared), len(gathered))
	}
	for i, f := range declared {
		if i > 0 && declared[i-1].Name >= f.Name {
			t.Errorf("Families() not sorted at %s", f.Name)
		}
		g, ok := gathered[f.Name]
		if !ok {
			t.Errorf("declared family %s is not registered", f.Name)
			continue
		}
		// The exposition sorts label names.
		labels := slices.Sorted(slices.Values(f.Labels))
		if g.Type != f.Type || g.Help != f.Help || !slices.Equal(g.Labels, labels) {
			t.Errorf("family %s: declared %+v, registered %+v", f.Name, f, g)
		}
		delete(gathered, f.Name)
	}
	for name := range gathered {
		t.Errorf("registered family %s is missing from Families()", name)
	}
	names := metrics.Names()
	if len(names) != len(declared) || names[0] != declared[0].Name || !slices.IsSorted(names) {
		t.Errorf("Names() = %v", names)
	}
}
