// Package httpapi is the REST transport: routes under /api/v1, one error
// shape, authentication (bearer sessions and signed institution requests),
// idempotency keys, size limits, request ids, logs and metrics. Handlers
// decode, call a service and encode; they hold no business rules.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"yibao"
	"yibao/audit"
	"yibao/auth"
	"yibao/credit"
	"yibao/delivery"
	"yibao/ecert"
	"yibao/faceid"
	"yibao/funds"
	"yibao/ledger/engine"
	"yibao/nhsa"
	"yibao/pay"
	"yibao/registry"
	"yibao/review"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Config holds the transport's limits.
type Config struct {
	MaxBodyBytes   int64 // JSON bodies
	MaxImportBytes int64 // CSV imports
	Version        string
}

// Server serves the API. Build it with New and mount Handler.
type Server struct {
	cfg      Config
	db       *sqlstore.DB
	registry *registry.Service
	auth     *auth.Service
	settle   *settlement.Service
	ecert    *ecert.Service
	nhsa     *nhsa.Service
	delivery *delivery.Service
	pay      *pay.Service
	audit    *audit.Store
	review   *review.Service
	credit   *credit.Service
	funds    *funds.Service
	face     *faceid.Service
	// auditWriter records approvals; inner serves the routes to replays
	// of approved key changes.
	auditWriter *audit.Writer
	inner       *http.ServeMux
	// auditOrigin and auditKeys describe the log for verifiers.
	auditOrigin string
	auditKeys   []string
	ledger      *engine.Engine
	log         *slog.Logger
	routes      []route
	metrics     *metrics
	promReg     *prometheus.Registry
	now         func() time.Time
	// epoch names this process in idempotency reservations, so that a
	// reservation left by a stopped process is told from one in flight.
	epoch string
	// pending counts idempotency answers still being stored.
	pending sync.WaitGroup
	storing sync.Map // principal NUL key → chan closed once its answer is stored
	// running counts this process's requests between reserving a key and
	// storing (or releasing) it: a reservation of this process's epoch
	// that nobody here runs was orphaned by a failed store (a database
	// outage), and is treated like a stopped process's.
	runningMu sync.Mutex
	running   map[string]int
}

// Deps are the services the API serves.
type Deps struct {
	DB         *sqlstore.DB
	Registry   *registry.Service
	Auth       *auth.Service
	Settlement *settlement.Service
	Ledger     *engine.Engine
	Ecert      *ecert.Service
	NHSA       *nhsa.Service
	Delivery   *delivery.Service
	Pay        *pay.Service
	Audit      *audit.Store
	Review     *review.Service
	Credit     *credit.Service
	Funds      *funds.Service
	Face       *faceid.Service
	AuditW     *audit.Writer
	// AuditOrigin and AuditKeys describe the transparency log (its
	// checkpoint origin and the note verifier keys).
	AuditOrigin string
	AuditKeys   []string
}

// New builds the server and its route table.
func New(cfg Config, d Deps, log *slog.Logger) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = 64 << 20
	}
	s := &Server{cfg: cfg, db: d.DB, registry: d.Registry, auth: d.Auth, settle: d.Settlement, ledger: d.Ledger, ecert: d.Ecert, nhsa: d.NHSA, delivery: d.Delivery, pay: d.Pay, audit: d.Audit, review: d.Review, credit: d.Credit, funds: d.Funds, face: d.Face, auditWriter: d.AuditW, auditOrigin: d.AuditOrigin, auditKeys: d.AuditKeys, log: log, now: time.Now, epoch: newEpoch()}
	s.promReg = prometheus.NewRegistry()
	s.promReg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	s.metrics = newMetrics(s.promReg)
	s.routes = s.allRoutes()
	s.inner = http.NewServeMux()
	for _, rt := range s.routes {
		s.inner.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	return s
}

// Registry returns the Prometheus registry, so other parts can add metrics.
func (s *Server) Registry() *prometheus.Registry { return s.promReg }

// Handler returns the root handler with every route mounted.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.promReg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/openapi.json", s.openapi)
	s.mountApp(mux)
	if s.audit != nil {
		mux.Handle("GET /log/", http.StripPrefix("/log", s.audit.Log.Handler()))
	}
	if s.nhsa != nil {
		routes := s.nhsaRoutes()
		if s.pay != nil {
			routes = append(routes, s.mobileRoutes()...)
		}
		for _, rt := range routes {
			mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
		}
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, yibao.Errorf(yibao.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return s.withRequestID(mux)
}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

type requestIDKey struct{}

// RequestID returns the request id of ctx.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID takes a well-formed X-Request-Id from the caller or makes
// one, echoes it, and puts it in the context and every log line.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !requestIDRe.MatchString(id) {
			b := make([]byte, 12)
			rand.Read(b)
			id = "req_" + hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, code := "ready", http.StatusOK
	detail := map[string]string{"database": s.db.Dialect.String()}
	if err := s.db.Read().PingContext(ctx); err != nil {
		status, code = "database unreachable", http.StatusServiceUnavailable
	} else if v, err := s.db.Version(ctx); err != nil {
		status, code = "schema unknown", http.StatusServiceUnavailable
	} else {
		ms, _ := sqlstore.Migrations(s.db.Dialect)
		if len(ms) > 0 && v < ms[len(ms)-1].Version {
			status, code = "migrations pending", http.StatusServiceUnavailable
		}
	}
	detail["status"] = status
	writeJSON(w, code, detail)
}

// isStateChanging reports whether a method changes state and so needs an
// Idempotency-Key.
func isStateChanging(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// bearer extracts a bearer token.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}
