package httpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mvrepair/mvrepair/internal/httpserver"
)

// fakeHealth returns fixed results.
type fakeHealth struct{ live, ready error }

func (f fakeHealth) Live() error  { return f.live }
func (f fakeHealth) Ready() error { return f.ready }

// fakeMVs serves a fixed set; block, when set, is waited on by ListMVs and
// entered is signalled first.
type fakeMVs struct {
	list    []httpserver.MVSummary
	docs    map[[2]int64]json.RawMessage
	entered chan struct{}
	block   chan struct{}
}

func (f *fakeMVs) ListMVs() []httpserver.MVSummary {
	if f.block != nil {
		f.entered <- struct{}{}
		<-f.block
	}
	return f.list
}

func (f *fakeMVs) GetMV(dbID, mvID int64) (json.RawMessage, bool) {
	doc, ok := f.docs[[2]int64{dbID, mvID}]
	return doc, ok
}

// get serves one request through the handler without a network.
func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// wantResponse checks status, content type and exact body.
func wantResponse(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d (body %q)", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if got := rec.Body.String(); got != body {
		t.Errorf("body = %q, want %q", got, body)
	}
}

const canonicalMV = `{"active":true,"db_id":10001,"mv_id":50001,"mv_name":"mv_orders_daily"}`

func testDeps() httpserver.Deps {
	return httpserver.Deps{
		Health: fakeHealth{},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "mvrepair_commits_total 3\n")
		}),
		MVs: &fakeMVs{
			list: []httpserver.MVSummary{
				{DBID: 10002, MVID: 1, DBName: "b", MVName: "z"},
				{DBID: 10001, MVID: 50002, DBName: "sales", MVName: "mv2", Partitions: 1},
				{DBID: 10001, MVID: 50001, DBName: "sales", MVName: "mv_orders_daily", Active: true, LastRefreshTime: 1732300000000, Partitions: 2},
			},
			docs: map[[2]int64]json.RawMessage{{10001, 50001}: json.RawMessage(canonicalMV)},
		},
	}
}

func TestLivez_reports_true_with_200_when_live(t *testing.T) {
	rec := get(t, httpserver.New(":0", testDeps()).Handler(), http.MethodGet, "/livez")
	wantResponse(t, rec, http.StatusOK, `{"health":"true"}`+"\n")
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
}

func TestLivez_reports_false_with_503_and_the_reason(t *testing.T) {
	d := testDeps()
	d.Health = fakeHealth{live: errors.New("consumer loop stalled")}
	rec := get(t, httpserver.New(":0", d).Handler(), http.MethodGet, "/livez")
	wantResponse(t, rec, http.StatusServiceUnavailable, `{"health":"false","reason":"consumer loop stalled"}`+"\n")
}

func TestReadyz_reports_true_with_200_when_ready(t *testing.T) {
	rec := get(t, httpserver.New(":0", testDeps()).Handler(), http.MethodGet, "/readyz")
	wantResponse(t, rec, http.StatusOK, `{"health":"true"}`+"\n")
}

func TestReadyz_reports_false_with_503_and_the_reason(t *testing.T) {
	d := testDeps()
	d.Health = fakeHealth{ready: errors.New("group not joined")}
	rec := get(t, httpserver.New(":0", d).Handler(), http.MethodGet, "/readyz")
	wantResponse(t, rec, http.StatusServiceUnavailable, `{"health":"false","reason":"group not joined"}`+"\n")
}

func TestProbes_without_health_are_live_but_not_ready(t *testing.T) {
	h := httpserver.New(":0", httpserver.Deps{}).Handler()
	wantResponse(t, get(t, h, http.MethodGet, "/livez"), http.StatusOK, `{"health":"true"}`+"\n")
	wantResponse(t, get(t, h, http.MethodGet, "/readyz"), http.StatusServiceUnavailable,
		`{"health":"false","reason":"no readiness check configured"}`+"\n")
}

func TestMetrics_serves_the_metrics_handler(t *testing.T) {
	rec := get(t, httpserver.New(":0", testDeps()).Handler(), http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK || rec.Body.String() != "mvrepair_commits_total 3\n" {
		t.Errorf("GET /metrics = %d %q", rec.Code, rec.Body.String())
	}
}

func TestMetrics_without_a_handler_is_404(t *testing.T) {
	rec := get(t, httpserver.New(":0", httpserver.Deps{}).Handler(), http.MethodGet, "/metrics")
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics = %d, want 404", rec.Code)
	}
}

func TestListMVs_returns_a_json_array_sorted_by_db_and_mv_id(t *testing.T) {
	rec := get(t, httpserver.New(":0", testDeps()).Handler(), http.MethodGet, "/v1/mvs")
	wantResponse(t, rec, http.StatusOK, `[`+
		`{"db_id":10001,"mv_id":50001,"db_name":"sales","mv_name":"mv_orders_daily","active":true,"last_refresh_time":1732300000000,"partitions":2},`+
		`{"db_id":10001,"mv_id":50002,"db_name":"sales","mv_name":"mv2","active":false,"last_refresh_time":0,"partitions":1},`+
		`{"db_id":10002,"mv_id":1,"db_name":"b","mv_name":"z","active":false,"last_refresh_time":0,"partitions":0}`+
		`]`+"\n")
}

func TestListMVs_does_not_reorder_the_callers_slice(t *testing.T) {
	d := testDeps()
	mvs := d.MVs.(*fakeMVs)
	first := mvs.list[0]
	get(t, httpserver.New(":0", d).Handler(), http.MethodGet, "/v1/mvs")
	if mvs.list[0] != first {
		t.Errorf("ListMVs' slice was sorted in place")
	}
}

func TestListMVs_with_no_mvs_is_an_empty_array(t *testing.T) {
	rec := get(t, httpserver.New(":0", httpserver.Deps{MVs: &fakeMVs{}}).Handler(), http.MethodGet, "/v1/mvs")
	wantResponse(t, rec, http.StatusOK, "[]\n")
}

func TestGetMV_returns_the_canonical_json_verbatim(t *testing.T) {
	rec := get(t, httpserver.New(":0", testDeps()).Handler(), http.MethodGet, "/v1/mvs/10001/50001")
	wantResponse(t, rec, http.StatusOK, canonicalMV)
}

func TestGetMV_unknown_is_a_404_json_error(t *testing.T) {
	rec := get(t, httpserver.New(":0", testDeps()).Handler(), http.MethodGet, "/v1/mvs/10001/99")
	wantResponse(t, rec, http.StatusNotFound, `{"error":"no MV with db_id 10001 and mv_id 99"}`+"\n")
}

func TestGetMV_non_integer_ids_are_a_400_json_error(t *testing.T) {
	h := httpserver.New(":0", testDeps()).Handler()
	for target, want := range map[string]string{
		"/v1/mvs/abc/1":                  `{"error":"db_id must be a positive integer (got \"abc\")"}`,
		"/v1/mvs/1/1.5":                  `{"error":"mv_id must be a positive integer (got \"1.5\")"}`,
		"/v1/mvs/0/1":                    `{"error":"db_id must be a positive integer (got \"0\")"}`,
		"/v1/mvs/1/-7":                   `{"error":"mv_id must be a positive integer (got \"-7\")"}`,
		"/v1/mvs/99999999999999999999/1": `{"error":"db_id must be a positive integer (got \"99999999999999999999\")"}`,
	} {
		t.Run(target, func(t *testing.T) {
			wantResponse(t, get(t, h, http.MethodGet, target), http.StatusBadRequest, want+"\n")
		})
	}
}

func TestMVRoutes_without_state_are_503(t *testing.T) {
	h := httpserver.New(":0", httpserver.Deps{}).Handler()
	wantResponse(t, get(t, h, http.MethodGet, "/v1/mvs"), http.StatusServiceUnavailable, `{"error":"MV state not available"}`+"\n")
	wantResponse(t, get(t, h, http.MethodGet, "/v1/mvs/1/2"), http.StatusServiceUnavailable, `{"error":"MV state not available"}`+"\n")
}

func TestRoutes_accept_HEAD_and_reject_other_methods_with_405(t *testing.T) {
	h := httpserver.New(":0", testDeps()).Handler()
	for _, target := range []string{"/livez", "/readyz", "/metrics", "/v1/mvs", "/v1/mvs/10001/50001"} {
		if rec := get(t, h, http.MethodHead, target); rec.Code != http.StatusOK {
			t.Errorf("HEAD %s = %d, want 200", target, rec.Code)
		}
		rec := get(t, h, http.MethodPost, target)
		if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), "GET") {
			t.Errorf("POST %s = %d (Allow %q), want 405 allowing GET", target, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestUnknown_paths_are_404(t *testing.T) {
	h := httpserver.New(":0", testDeps()).Handler()
	for _, target := range []string{"/", "/v1/mvs/", "/v1/mvs/1", "/v1/mvs/1/2/3", "/healthz"} {
		if rec := get(t, h, http.MethodGet, target); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", target, rec.Code)
		}
	}
}

// startServer starts a server on an ephemeral loopback port.
func startServer(t *testing.T, d httpserver.Deps) *httpserver.Server {
	t.Helper()
	s := httpserver.New("127.0.0.1:0", d)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

func TestStart_binds_a_free_port_that_Addr_reports(t *testing.T) {
	s := httpserver.New("127.0.0.1:0", testDeps())
	if s.Addr() != "" {
		t.Errorf("Addr() before Start = %q, want empty", s.Addr())
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("Addr() = %q, want a bound port", addr)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"health":"true"}`+"\n" {
		t.Errorf("GET /readyz = %d %q", resp.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done() not closed after Shutdown")
	}
	if _, err := http.Get("http://" + addr + "/livez"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}

func TestStart_twice_is_an_error(t *testing.T) {
	s := startServer(t, testDeps())
	if err := s.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestStart_on_a_busy_port_is_an_error(t *testing.T) {
	busy := startServer(t, testDeps())
	s := httpserver.New(busy.Addr(), testDeps())
	err := s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), busy.Addr()) {
		t.Errorf("Start on a busy port: err = %v", err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}

func TestShutdown_before_Start_does_nothing(t *testing.T) {
	if err := httpserver.New("127.0.0.1:0", testDeps()).Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// blockingDeps returns deps whose /v1/mvs blocks until release is closed.
func blockingDeps() (httpserver.Deps, *fakeMVs) {
	d := testDeps()
	mvs := d.MVs.(*fakeMVs)
	mvs.entered = make(chan struct{}, 1)
	mvs.block = make(chan struct{})
	return d, mvs
}

// waitFor fails the test unless ch delivers before the deadline.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestShutdown_waits_for_in_flight_requests(t *testing.T) {
	d, mvs := blockingDeps()
	s := startServer(t, d)

	status := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/v1/mvs")
		if err != nil {
			status <- -1
			return
		}
		_ = resp.Body.Close()
		status <- resp.StatusCode
	}()
	waitFor(t, mvs.entered, "the request to reach the handler")

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()

	// The server stops accepting promptly; the in-flight request goes on.
	waitFor(t, s.Done(), "serving to stop")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(mvs.block)
	if code := waitFor(t, status, "the in-flight response"); code != http.StatusOK {
		t.Errorf("in-flight request status = %d, want 200", code)
	}
	if err := waitFor(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestShutdown_past_its_deadline_cuts_requests_off_and_says_so(t *testing.T) {
	d, mvs := blockingDeps()
	s := startServer(t, d)
	defer close(mvs.block)

	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.Get("http://" + s.Addr() + "/v1/mvs"); err == nil {
			_ = resp.Body.Close()
		}
	}()
	waitFor(t, mvs.entered, "the request to reach the handler")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	waitFor(t, done, "the cut-off client to return")
}
