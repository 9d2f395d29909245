// Package server is Silo's HTTP API: routing, the resolution of a request to
// its tenant, authentication, handlers and the mapping of errors to HTTP.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// TenantDirectory finds tenants and checks their tokens (the catalog).
type TenantDirectory interface {
	TenantBySlug(ctx context.Context, slug string) (*silo.Tenant, error)
	Authenticate(ctx context.Context, id silo.TenantID, secret string) error
}

// TenantAdmin signs tenants up, lists and moves them.
type TenantAdmin interface {
	Create(ctx context.Context, nt tenants.NewTenant) (*silo.Tenant, string, error)
	ListWithSizes(ctx context.Context) ([]tenants.Info, error)
	Move(ctx context.Context, slug string, to silo.Strategy) (tenantdb.MoveStats, error)
	Delete(ctx context.Context, slug string) error
}

// BackupAdmin reports on and restores tenants' backups.
type BackupAdmin interface {
	Status(ctx context.Context) ([]tenants.BackupStatus, error)
	Restore(ctx context.Context, slug string, at time.Time, txid uint64) error
}

// Quota is the per-tenant storage quota, changeable at run time.
type Quota interface {
	SetTenantMaxBytes(n int64)
	TenantMaxBytes() int64
}

// ProjectService and TaskService are what the handlers need: the
// vocabulary's service interfaces.
type (
	ProjectService = silo.ProjectService
	TaskService    = silo.TaskService
)

// Config holds the server's settings.
type Config struct {
	BaseDomain    string // tenants are <slug>.<BaseDomain>
	OperatorToken string // "" turns the operator endpoints off

	SignupRate        int // signups per minute per peer IP; 0: no limit
	TenantRate        int // requests per second per tenant; 0: no limit
	TenantMaxInflight int // concurrent requests per tenant; 0: no bound
}

// Deps are the services the server calls.
type Deps struct {
	Directory  TenantDirectory
	Admin      TenantAdmin
	Projects   ProjectService
	Tasks      TaskService
	CacheStats func() tenantdb.CacheStats
	Backups    BackupAdmin // nil when backups are off
	Quota      Quota
	Logger     *slog.Logger
}

// Server routes requests: the base domain serves signup, health and the
// operator API; a tenant's subdomain (or /t/{slug}/ on the base domain)
// serves that tenant's API.
type Server struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	base   chi.Router
	tenant chi.Router

	inflight inflight // per-tenant concurrency, see limits.go
}

// New returns the API's http.Handler.
func New(cfg Config, deps Deps) *Server {
	if cfg.BaseDomain == "" {
		cfg.BaseDomain = "localhost"
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger, inflight: inflight{max: cfg.TenantMaxInflight}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.tenant = s.tenantRouter()
	s.base = s.baseRouter()
	return s
}

// ServeHTTP picks the router by Host.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	slug, isBase, err := ResolveHost(r.Host, s.cfg.BaseDomain)
	switch {
	case err != nil:
		s.writeError(w, r, err)
	case isBase:
		s.base.ServeHTTP(w, r)
	default:
		s.tenant.ServeHTTP(w, r.WithContext(withSlug(r.Context(), slug)))
	}
}

func (s *Server) common(r chi.Router) {
	// HEAD on a GET route answers as GET without the body (RFC 9110; load
	// balancers health-check with it).
	r.Use(middleware.RequestID, s.recoverer, middleware.GetHead)
	r.NotFound(s.errorHandler(silo.ENOTFOUND, "No such route."))
	r.MethodNotAllowed(s.methodNotAllowed)
}

func (s *Server) baseRouter() chi.Router {
	r := chi.NewRouter()
	s.common(r)
	r.Get("/healthz", s.handleHealth)
	r.With(s.limitSignups()).Post("/api/tenants", s.handleSignup)
	r.Route("/api/operator", func(r chi.Router) {
		r.Use(s.requireOperator)
		r.Get("/stats", s.handleStats)
		r.Get("/tenants", s.handleOperatorTenants)
		// Moves copy a whole tenant, restores download one and deletes
		// sync it to its replica first: they answer when done.
		r.With(longWork).Post("/tenants/{slug}/move", s.handleMove)
		r.With(longWork).Delete("/tenants/{slug}", s.handleDeleteTenant)
		r.With(longWork).Post("/tenants/{slug}/restore", s.handleRestore)
		r.Get("/backup", s.handleBackupStatus)
		r.Get("/quota", s.handleQuota)
		r.Put("/quota", s.handleQuota)
	})
	// Clients without wildcard DNS reach a tenant by path prefix.
	r.With(slugFromPath).Mount("/t/{slug}", s.tenant)
	return r
}

func (s *Server) tenantRouter() chi.Router {
	r := chi.NewRouter()
	r.NotFound(s.errorHandler(silo.ENOTFOUND, "No such route."))
	r.MethodNotAllowed(s.methodNotAllowed)
	// StripSlashes: /api/projects/ is /api/projects, as it was when these
	// routes were a mounted sub-router.
	r.Use(middleware.RequestID, s.recoverer, middleware.StripSlashes, middleware.GetHead, s.resolveTenant, s.authenticate)
	r.Use(s.limitTenantRate(), s.limitTenantInflight())
	// Flat routes, not r.Route: chi's Match (methodNotAllowed's Allow
	// header) reports every method as allowed on a mounted router's own path.
	r.Get("/api/projects", s.handleListProjects)
	r.Post("/api/projects", s.handleCreateProject)
	r.Get("/api/projects/{id}", s.handleGetProject)
	r.Patch("/api/projects/{id}", s.handleUpdateProject)
	r.Delete("/api/projects/{id}", s.handleDeleteProject)
	r.Get("/api/projects/{id}/tasks", s.handleListTasks)
	r.Post("/api/projects/{id}/tasks", s.handleCreateTask)
	r.Get("/api/tasks/{id}", s.handleGetTask)
	r.Patch("/api/tasks/{id}", s.handleUpdateTask)
	r.Delete("/api/tasks/{id}", s.handleDeleteTask)
	return r
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
