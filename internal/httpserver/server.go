// Package httpserver is the operator HTTP surface (docs/design.md §6): liveness
// and readiness probes, Prometheus metrics, and a read-only view of the MVs
// the instance holds.
//
// Routes (Go 1.22 ServeMux patterns; other methods get 405):
//
//	GET /livez                     200 {"health":"true"} or 503 {"health":"false","reason":"..."}
//	GET /readyz                    same shape, from Health.Ready
//	GET /metrics                   the Metrics handler (404 when none is given)
//	GET /v1/mvs                    JSON array of MVSummary, sorted by (db_id, mv_id)
//	GET /v1/mvs/{db_id}/{mv_id}    the MV's canonical JSON; 400 for ids that are
//	                               not positive integers, 404 for unknown MVs
//	GET /v1/state                  the `state export` document of the live
//	                               store, from one consistent read, streamed
//	POST /v1/checkpoint            write a checkpoint now (the active writer
//	                               only: 409 elsewhere); answers its marker
//
// Errors other than the probes' are JSON objects {"error":"..."}.
package httpserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Health reports the instance's health, etcd style: nil means healthy, an
// error's message is the reason shown by the probe.
type Health interface {
	// Live reports whether the process is working (its loops are running);
	// failing it asks the orchestrator to restart the instance.
	Live() error
	// Ready reports whether the instance can do its job (group joined,
	// broker reachable, store open); failing it takes it out of rotation.
	Ready() error
}

// MVSummary is one MV in the list of GET /v1/mvs.
type MVSummary struct {
	DBID            int64  `json:"db_id"`
	MVID            int64  `json:"mv_id"`
	DBName          string `json:"db_name"`
	MVName          string `json:"mv_name"`
	Active          bool   `json:"active"`
	LastRefreshTime int64  `json:"last_refresh_time"`
	// Partitions counts the partition entries across the MV's version maps.
	Partitions int `json:"partitions"`
}

// MVs is the read-only view of the state the API serves. Implementations
// must be safe for concurrent use.
type MVs interface {
	// ListMVs returns a summary of every MV, in any order.
	ListMVs() []MVSummary
	// GetMV returns the canonical JSON of one MV (the shape of the "mv"
	// object of mv_upserted), or false when there is no such MV.
	GetMV(dbID, mvID int64) (json.RawMessage, bool)
}

// StateExporter streams the whole state as the `state export` document.
type StateExporter interface {
	ExportState(ctx context.Context, w io.Writer) error
}

// Checkpointer writes a checkpoint on demand and returns a JSON-encodable
// description of it. ErrNotActive (wrapped) means another instance must
// be asked.
type Checkpointer interface {
	Checkpoint(ctx context.Context) (any, error)
}

// ErrNotActive is what a Checkpointer wraps when it is not the instance
// that writes checkpoints (409 Conflict).
var ErrNotActive = errors.New("not the active writer")

// Deps are what the server serves. A nil Health makes /livez report live
// (the server answers) and /readyz report not ready; a nil Metrics leaves
// /metrics unrouted; a nil MVs or State makes their /v1 routes answer 503.
type Deps struct {
	Health      Health
	Metrics     http.Handler
	MVs         MVs
	State       StateExporter
	Checkpoints Checkpointer
}

// Server is the HTTP server. Create it with [New], then [Server.Start] and
// finally [Server.Shutdown].
type Server struct {
	handler http.Handler
	srv     *http.Server
	done    chan struct{} // closed when Serve returns

	mu       sync.Mutex
	ln       net.Listener // set by Start
	serveErr error        // Serve's error other than ErrServerClosed
}

// New returns a server that will listen on addr (host:port; port 0 picks a
// free one) and serve deps.
func New(addr string, deps Deps) *Server {
	h := routes(deps)
	return &Server{
		handler: h,
		srv: &http.Server{
			Addr:              addr,
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
		},
		done: make(chan struct{}),
	}
}

// Handler returns the server's routes, to serve them without listening
// (httptest) or to mount them elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on the configured address and serves in the background. It
// returns once the listener is bound (so [Server.Addr] is known) or with
// the error that prevented it; ctx bounds only the listen itself. A server
// can be started once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("httpserver: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("httpserver: listen on %q: %w", s.srv.Addr, err)
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.mu.Lock()
			s.serveErr = err
			s.mu.Unlock()
		}
	}()
	return nil
}

// Addr returns the bound address (e.g. "127.0.0.1:41234" after starting on
// "127.0.0.1:0"), or "" before [Server.Start] succeeds.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Done is closed when the server stops serving, after [Server.Shutdown] or
// on a listener failure (which Shutdown then reports).
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown stops accepting connections and waits, until ctx is done, for
// in-flight requests to finish; then it closes whatever is left. It returns
// ctx's error if requests had to be cut off, and any error that stopped
// serving. Shutting down a server that was never started does nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started := s.ln != nil
	s.mu.Unlock()
	if !started {
		return nil
	}
	var errs []error
	if err := s.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("httpserver: graceful shutdown: %w", err))
		if err := s.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("httpserver: close: %w", err))
		}
	}
	<-s.done // Serve returns as soon as Shutdown or Close starts
	s.mu.Lock()
	if s.serveErr != nil {
		errs = append(errs, fmt.Errorf("httpserver: serve: %w", s.serveErr))
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// routes builds the mux.
func routes(d Deps) http.Handler {
	h := handlers{d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", h.livez)
	mux.HandleFunc("GET /readyz", h.readyz)
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	mux.HandleFunc("GET /v1/mvs", h.listMVs)
	mux.HandleFunc("GET /v1/state", h.state)
	mux.HandleFunc("POST /v1/checkpoint", h.checkpoint)
	mux.HandleFunc("GET /v1/mvs/{db_id}/{mv_id}", h.getMV)
	return mux
}

// handlers serve the routes from Deps.
type handlers struct{ d Deps }

func (h handlers) livez(w http.ResponseWriter, _ *http.Request) {
	var err error
	if h.d.Health != nil {
		err = h.d.Health.Live()
	}
	writeHealth(w, err)
}

func (h handlers) readyz(w http.ResponseWriter, _ *http.Request) {
	err := errors.New("no readiness check configured")
	if h.d.Health != nil {
		err = h.d.Health.Ready()
	}
	writeHealth(w, err)
}

func (h handlers) listMVs(w http.ResponseWriter, _ *http.Request) {
	if h.d.MVs == nil {
		writeError(w, http.StatusServiceUnavailable, "MV state not available")
		return
	}
	list := slices.Clone(h.d.MVs.ListMVs())
	if list == nil {
		list = []MVSummary{}
	}
	slices.SortFunc(list, func(a, b MVSummary) int {
		return cmp.Or(cmp.Compare(a.DBID, b.DBID), cmp.Compare(a.MVID, b.MVID))
	})
	writeJSON(w, http.StatusOK, list)
}

func (h handlers) state(w http.ResponseWriter, r *http.Request) {
	if h.d.State == nil {
		writeError(w, http.StatusServiceUnavailable, "state not available")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	// Streamed: a failure after the first bytes can only cut the
	// document short (a client sees invalid JSON, never a wrong one).
	_ = h.d.State.ExportState(r.Context(), w)
}

func (h handlers) checkpoint(w http.ResponseWriter, r *http.Request) {
	if h.d.Checkpoints == nil {
		writeError(w, http.StatusServiceUnavailable, "checkpoints not available")
		return
	}
	c, err := h.d.Checkpoints.Checkpoint(r.Context())
	switch {
	case errors.Is(err, ErrNotActive):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, c)
	}
}

func (h handlers) getMV(w http.ResponseWriter, r *http.Request) {
	dbID, err := pathID(r, "db_id")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	mvID, err := pathID(r, "mv_id")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if h.d.MVs == nil {
		writeError(w, http.StatusServiceUnavailable, "MV state not available")
		return
	}
	doc, ok := h.d.MVs.GetMV(dbID, mvID)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no MV with db_id %d and mv_id %d", dbID, mvID))
		return
	}
	// The canonical document, byte for byte as the state exports it.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// pathID parses a positive int64 path value.
func pathID(r *http.Request, name string) (int64, error) {
	s := r.PathValue(name)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		if len(s) > 32 {
			s = s[:32] + "…" // never echo a large path segment back
		}
		return 0, fmt.Errorf("%s must be a positive integer (got %q)", name, s)
	}
	return id, nil
}

// healthBody is the etcd-style probe body.
type healthBody struct {
	Health string `json:"health"`
	Reason string `json:"reason,omitempty"`
}

func writeHealth(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Health: "false", Reason: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, healthBody{Health: "true"})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

// writeJSON writes v as a JSON document followed by a newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
