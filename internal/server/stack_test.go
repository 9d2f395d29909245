package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/placement"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// stack is the real Silo wiring over a temp data dir, served on 127.0.0.1.
type stack struct {
	t       *testing.T
	URL     string
	Store   *tenantdb.Store
	Catalog *catalog.Catalog
	Server  *server.Server
	client  *http.Client
}

type stackOpts struct {
	capacity      int
	operatorToken string
	// limits, as in server.Config (0: off)
	signupRate, tenantRate, tenantMaxInflight int
	// postgres connects the PostgreSQL placements (the test is skipped
	// without SILO_TEST_POSTGRES_URL).
	postgres bool
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	if o.capacity == 0 {
		o.capacity = 100
	}
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir: dir, SQLite: sqlite.Options{MaxConns: 4},
		Cache:         tenantdb.CacheConfig{Capacity: o.capacity},
		MigrateOnOpen: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := tenants.New(cat, store, "", nil)
	var pgProjects placement.ProjectService
	var pgTasks placement.TaskService
	if o.postgres {
		e := testPostgres(t)
		svc.SetPostgres(e)
		store.SetExternal(e)
		pgProjects, pgTasks = pg.NewProjectService(e), pg.NewTaskService(e)
	}
	h := server.New(server.Config{
		BaseDomain: "localhost", OperatorToken: o.operatorToken,
		SignupRate: o.signupRate, TenantRate: o.tenantRate, TenantMaxInflight: o.tenantMaxInflight,
	}, server.Deps{
		Directory: cat, Admin: svc,
		Projects:   placement.NewProjects(store, tenantdb.NewProjectService(store), pgProjects),
		Tasks:      placement.NewTasks(store, tenantdb.NewTaskService(store), pgTasks),
		CacheStats: store.Cache().Stats,
		Quota:      store,
	})
	ts := httptest.NewServer(h) // listens on 127.0.0.1:0
	t.Cleanup(func() {
		ts.Close()
		if err := store.Close(ctx); err != nil {
			t.Error(err)
		}
		cat.Close()
	})
	return &stack{t: t, URL: ts.URL, Store: store, Catalog: cat, Server: h, client: &http.Client{Timeout: 30 * time.Second}}
}

// resp is a decoded response.
type resp struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r resp) code() string {
	e, _ := r.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r resp) str(k string) string { s, _ := r.Body[k].(string); return s }

// do sends a request with the given Host header and bearer token; body may
// be nil, a []byte sent as is, or a value encoded as JSON.
func (s *stack) do(method, host, path, token string, body any) resp {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			s.t.Fatalf("%s %s: non-JSON body %q", method, path, raw)
		}
	}
	if r.Status >= 400 && r.code() == "" {
		s.t.Fatalf("%s %s: %d without an error code: %s", method, path, r.Status, raw)
	}
	return r
}

// signup creates a tenant and returns its token.
func (s *stack) signup(slug string) string {
	s.t.Helper()
	r := s.do("POST", "localhost", "/api/tenants", "", map[string]string{"slug": slug, "name": slug + " Inc"})
	if r.Status != 201 {
		s.t.Fatalf("signup %s: %d %s", slug, r.Status, r.Raw)
	}
	return r.str("token")
}

// tenantClient talks to one tenant through its subdomain.
type tenantClient struct {
	s     *stack
	slug  string
	token string
}

func (s *stack) tenant(slug, token string) *tenantClient { return &tenantClient{s, slug, token} }

func (c *tenantClient) do(method, path string, body any) resp {
	c.s.t.Helper()
	return c.s.do(method, c.slug+".localhost", path, c.token, body)
}

// signupAs creates a tenant in the given placement ("" for the default).
func (s *stack) signupAs(slug, strategy string) string {
	s.t.Helper()
	body := map[string]string{"slug": slug, "name": slug + " Inc"}
	if strategy != "" {
		body["strategy"] = strategy
	}
	r := s.do("POST", "localhost", "/api/tenants", "", body)
	if r.Status != 201 {
		s.t.Fatalf("signup %s (%s): %d %s", slug, strategy, r.Status, r.Raw)
	}
	if strategy != "" && r.Body["tenant"].(map[string]any)["strategy"] != strategy {
		s.t.Fatalf("signup %s: placement %v, want %s", slug, r.Body["tenant"], strategy)
	}
	return r.str("token")
}
