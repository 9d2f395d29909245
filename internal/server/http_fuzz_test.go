package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// fuzzTenant is one of the two tenants the HTTP fuzz target attacks: its
// project and task carry a random secret that must reach nobody else.
type fuzzTenant struct {
	slug, token, secret string
	projectID, taskID   string
}

// fuzzApp is a server wired as cmd/silo's serve wires it, over real files
// in a temp dir. Its fixtures are made through the API itself, so that the
// test depends on the services only through server.Deps.
type fuzzApp struct {
	handler  http.Handler
	operator string
	tenants  map[string]*fuzzTenant // by slug
	logs     *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

func randomHex(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// mustOpenFuzzApp replicates cmd/silo's openApp and runServe wiring with
// internal packages, and signs up tenants "alpha" and "bravo".
func mustOpenFuzzApp(f *testing.F) *fuzzApp {
	f.Helper()
	ctx := context.Background()
	dir := f.TempDir()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	dur := sqlite.DurabilityNormal
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{Durability: dur})
	if err != nil {
		f.Fatal(err)
	}
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir:           dir,
		SQLite:        sqlite.Options{Durability: dur, MaxConns: 4, CacheKiB: 1024},
		Cache:         tenantdb.CacheConfig{Capacity: 100},
		MigrateOnOpen: true,
		Logger:        log,
	})
	if err != nil {
		cat.Close()
		f.Fatal(err)
	}
	f.Cleanup(func() {
		if err := store.Close(ctx); err != nil {
			f.Error(err)
		}
		cat.Close()
	})
	a := &fuzzApp{operator: randomHex(f), tenants: map[string]*fuzzTenant{}, logs: logs}
	a.handler = server.New(server.Config{BaseDomain: "localhost", OperatorToken: a.operator}, server.Deps{
		Directory:  cat,
		Admin:      tenants.New(cat, store, silo.StrategyDatabase, log),
		Projects:   tenantdb.NewProjectService(store),
		Tasks:      tenantdb.NewTaskService(store),
		CacheStats: store.Cache().Stats,
		Logger:     log,
	})
	for _, slug := range []string{"alpha", "bravo"} {
		var out struct{ Token string }
		a.mustDo(f, "POST", "localhost", "/api/tenants", `{"slug":"`+slug+`","name":"Tenant `+slug+`"}`, "", http.StatusCreated, &out)
		a.tenants[slug] = &fuzzTenant{slug: slug, token: out.Token, secret: randomHex(f)}
	}
	a.ensureFixtures(f)
	return a
}

// mustDo runs one fixture request and decodes its answer into out.
func (a *fuzzApp) mustDo(tb testing.TB, method, host, path, body, token string, want int, out any) int {
	tb.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = host
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, r)
	if want != 0 && rec.Code != want {
		tb.Fatalf("fixture %s %s on %s: %d %s, want %d", method, path, host, rec.Code, rec.Body, want)
	}
	if out != nil && rec.Code < 300 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			tb.Fatalf("fixture %s %s: %v", method, path, err)
		}
	}
	return rec.Code
}

// ensureFixtures puts back each tenant's secret project and task if a
// fuzzed request (legitimately, with the owner's token) deleted or changed
// them, so that the leak checks never become vacuous.
func (a *fuzzApp) ensureFixtures(tb testing.TB) {
	tb.Helper()
	for _, ft := range a.tenants {
		host := ft.slug + ".localhost"
		name := "project " + ft.secret
		title := "task " + ft.secret
		var p struct{ ID, Name string }
		if ft.projectID != "" {
			switch a.mustDo(tb, "GET", host, "/api/projects/"+ft.projectID, "", ft.token, 0, &p) {
			case http.StatusOK:
				if p.Name != name {
					a.mustDo(tb, "PATCH", host, "/api/projects/"+ft.projectID, `{"name":"`+name+`"}`, ft.token, http.StatusOK, nil)
				}
			case http.StatusNotFound:
				ft.projectID, ft.taskID = "", ""
			default:
				tb.Fatalf("fixture: project of %s unreadable", ft.slug)
			}
		}
		if ft.projectID == "" {
			a.mustDo(tb, "POST", host, "/api/projects", `{"name":"`+name+`"}`, ft.token, http.StatusCreated, &p)
			ft.projectID = p.ID
		}
		var tk struct{ ID, Title string }
		if ft.taskID != "" {
			switch a.mustDo(tb, "GET", host, "/api/tasks/"+ft.taskID, "", ft.token, 0, &tk) {
			case http.StatusOK:
				if tk.Title != title {
					a.mustDo(tb, "PATCH", host, "/api/tasks/"+ft.taskID, `{"title":"`+title+`"}`, ft.token, http.StatusOK, nil)
				}
			case http.StatusNotFound:
				ft.taskID = ""
			default:
				tb.Fatalf("fixture: task of %s unreadable", ft.slug)
			}
		}
		if ft.taskID == "" {
			a.mustDo(tb, "POST", host, "/api/projects/"+ft.projectID+"/tasks", `{"title":"`+title+`"}`, ft.token, http.StatusCreated, &tk)
			ft.taskID = tk.ID
		}
	}
}

// FuzzRequest drives the whole HTTP handler over real tenant files.
// auth picks the Authorization header: none, alpha's token, bravo's token,
// the operator token, or a bad one. In path, {pa} {pb} {ta} {tb} become
// the ids of alpha's and bravo's project and task, so that the fuzzer can
// aim at another tenant's rows.
//
// Properties: no panic and no 5xx; every non-2xx answer is
// {"error":{"code","message"}} with the status its code maps to; a tenant's
// data is only ever in an answer to a request that carries that tenant's
// token and names no other tenant by Host or /t/{slug}.
func FuzzRequest(f *testing.F) {
	for _, s := range []struct {
		method, host, path, body string
		auth                     uint8
	}{
		{"GET", "alpha.localhost", "/api/projects", "", 1},
		{"GET", "alpha.localhost", "/api/projects/{pa}", "", 1},
		{"GET", "alpha.localhost", "/api/projects/{pb}", "", 1},
		{"GET", "alpha.localhost", "/api/projects/{pa}/tasks", "", 1},
		{"GET", "alpha.localhost", "/api/projects/{pb}/tasks", "", 1},
		{"GET", "alpha.localhost", "/api/tasks/{tb}", "", 1},
		{"PATCH", "alpha.localhost", "/api/tasks/{tb}", `{"done":true}`, 1},
		{"DELETE", "alpha.localhost", "/api/projects/{pb}", "", 1},
		{"POST", "alpha.localhost", "/api/projects/{pb}/tasks", `{"title":"x"}`, 1},
		{"POST", "alpha.localhost", "/api/projects", `{"name":"new"}`, 1},
		{"PATCH", "alpha.localhost", "/api/projects/{pa}", `{"name":null}`, 1},
		{"GET", "alpha.localhost", "/api/projects", "", 2},
		{"GET", "bravo.localhost", "/api/projects", "", 1},
		{"GET", "ALPHA.LOCALHOST:8080", "/api/projects?limit=1", "", 1},
		{"GET", "alpha.localhost.", "/api/projects?cursor=%2e%2e", "", 1},
		{"GET", "localhost", "/t/alpha/api/projects", "", 1},
		{"GET", "localhost", "/t/bravo/api/projects", "", 1},
		{"GET", "localhost", "/t/ALPHA/api/projects", "", 1},
		{"GET", "localhost", "/t/alpha/../bravo/api/projects", "", 1},
		{"GET", "localhost", "/t/%2e%2e/api/projects", "", 1},
		{"GET", "localhost", "/t/..%2fbravo/api/projects", "", 2},
		{"GET", "localhost", "/t/alpha%00/api/projects", "", 1},
		{"GET", "127.0.0.1:8080", "/t/alpha/api/projects", "", 1},
		{"GET", "[::1]:8080", "/t/bravo/api/projects", "", 2},
		{"GET", "alpha.localhost", "/t/bravo/api/projects", "", 2},
		{"GET", "http://bravo.localhost", "/api/projects", "", 1},
		{"GET", "alpha.localhost", "http://bravo.localhost/api/projects", "", 1},
		{"GET", "\u0430lpha.localhost", "/api/projects", "", 1},
		{"GET", "xn--lpha-3ve.localhost", "/api/projects", "", 1},
		{"GET", strings.Repeat("a", 64) + ".localhost", "/api/projects", "", 1},
		{"GET", "alpha\x00.localhost", "/api/projects", "", 1},
		{"GET", "alpha.bravo.localhost", "/api/projects", "", 2},
		{"GET", "localhost", "/healthz", "", 0},
		{"GET", "localhost", "/api/operator/tenants", "", 3},
		{"GET", "localhost", "/api/operator/stats", "", 4},
		{"POST", "localhost", "/api/tenants", `{"slug":"gamma","name":"G"}`, 0},
		{"POST", "localhost", "/api/tenants", `{"slug":"../x"}`, 0},
		{"POST", "localhost", "/api/tenants", strings.Repeat("[", 10000), 0},
		{"POST", "alpha.localhost", "/api/projects", "{\"name\":\"\xff\"}", 1},
		{"POST", "alpha.localhost", "/api/projects", `{"name":"a","name":"b"}`, 1},
		{"POST", "alpha.localhost", "/api/projects/{pa}/tasks", `{"title":"t","due_at":"9999-12-31T23:59:59-23:59"}`, 1},
		{"POST", "alpha.localhost", "/api/projects/{pa}/tasks", `{"title":"t","due_at":"1970-01-01T00:00:00+23:59"}`, 1},
		{"PATCH", "alpha.localhost", "/api/tasks/{ta}", `{"due_at":null,"done":true}`, 1},
		{"PATCH", "alpha.localhost", "/api/tasks/{ta}", `{"due_at":12}`, 1},
		{"PATCH", "alpha.localhost", "/api/projects/{pa}", `{"archived":true}`, 1},
		{"GET", "alpha.localhost", "/api/projects?archived=true", "", 1},
		{"GET", "alpha.localhost", "/api/projects?archived=%00", "", 1},
		{"PUT", "alpha.localhost", "/api/projects", "", 1},
		{"HEAD", "alpha.localhost", "/api/projects", "", 1},
		{"GET", "alpha.localhost", "/api/projects", "", 4},
	} {
		f.Add(s.method, s.host, s.path, s.body, s.auth)
	}
	a := mustOpenFuzzApp(f)
	// The oracle must not be vacuous: the owner does see its data.
	if rec := a.serve(f, "GET", "alpha.localhost", "/api/projects", "", 1); rec == nil || !strings.Contains(rec.Body.String(), a.tenants["alpha"].secret) {
		f.Fatalf("alpha cannot read its own projects: %v", rec)
	}
	f.Fuzz(func(t *testing.T, method, host, path, body string, auth uint8) {
		for _, ft := range a.tenants {
			for _, s := range []string{method, host, path, body} {
				if strings.Contains(s, ft.secret) {
					return // the fuzzer could only echo a secret back
				}
			}
		}
		rec := a.serve(t, method, host, path, body, auth)
		if rec == nil {
			return // net/http itself would have refused the request
		}
		logs := a.logs.take()
		status, out := rec.Code, rec.Body.Bytes()
		if status >= 500 {
			t.Fatalf("%s %s on %q: %d %s\nlogs: %s", method, path, host, status, out, logs)
		}
		if status < 200 || status > 299 {
			var e struct {
				Error *struct {
					Code    *string `json:"code"`
					Message *string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || e.Error == nil || e.Error.Code == nil || e.Error.Message == nil || *e.Error.Code == "" {
				t.Fatalf("%s %s on %q: %d with a body that is not a JSON error: %q (%v)", method, path, host, status, out, err)
			}
			if want := server.Status(*e.Error.Code); want != status {
				t.Fatalf("%s %s on %q: status %d for code %q, which maps to %d", method, path, host, status, *e.Error.Code, want)
			}
		} else if status != http.StatusNoContent && !json.Valid(out) {
			t.Fatalf("%s %s on %q: %d with a body that is not JSON: %q", method, path, host, status, out)
		}
		a.checkIsolation(t, rec.req, auth, status, out)
		if status >= 200 && status <= 299 && method != "GET" {
			a.ensureFixtures(t)
		}
	})
}

type fuzzRecorder struct {
	*httptest.ResponseRecorder
	req *http.Request
}

// serve parses the request as net/http's server would and runs it through
// the handler. It returns nil for a request net/http would refuse.
func (a *fuzzApp) serve(tb testing.TB, method, host, path, body string, auth uint8) *fuzzRecorder {
	tb.Helper()
	if strings.ContainsAny(method+host+path, "\r\n") || strings.ContainsAny(path, " \t") {
		return nil
	}
	path = strings.NewReplacer(
		"{pa}", a.tenants["alpha"].projectID, "{pb}", a.tenants["bravo"].projectID,
		"{ta}", a.tenants["alpha"].taskID, "{tb}", a.tenants["bravo"].taskID,
	).Replace(path)
	var authz string
	switch auth % 5 {
	case 1:
		authz = "Authorization: Bearer " + a.tenants["alpha"].token + "\r\n"
	case 2:
		authz = "Authorization: Bearer " + a.tenants["bravo"].token + "\r\n"
	case 3:
		authz = "Authorization: Bearer " + a.operator + "\r\n"
	case 4:
		authz = "Authorization: Bearer not-a-token\r\n"
	}
	raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s",
		method, path, host, authz, len(body), body)
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return nil
	}
	r.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, r)
	return &fuzzRecorder{rec, r}
}

// checkIsolation fails if the answer holds the data of a tenant whose token
// the request did not carry, or of a tenant other than one it names.
func (a *fuzzApp) checkIsolation(t *testing.T, r *http.Request, auth uint8, status int, out []byte) {
	host := asciiLower(r.Host)
	p := asciiLower(r.URL.Path) + " " + asciiLower(r.URL.RawPath)
	for slug, ft := range a.tenants {
		if !bytes.Contains(out, []byte(ft.secret)) {
			continue
		}
		owner := auth%5 == 1 && slug == "alpha" || auth%5 == 2 && slug == "bravo"
		if !owner {
			t.Fatalf("%s %s on %q (auth %d): %d holds tenant %s's data without its token: %s", r.Method, r.URL, r.Host, auth%5, status, slug, out)
		}
		for other := range a.tenants {
			if other == slug {
				continue
			}
			if strings.HasPrefix(host, other+".") || strings.Contains(p, "/t/"+other) {
				t.Fatalf("%s %s on %q names tenant %s but got tenant %s's data: %d %s", r.Method, r.URL, r.Host, other, slug, status, out)
			}
		}
	}
}
