package server_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestAPIScenario runs the same API scenario for each placement: the
// answers, codes and JSON must be identical.
func TestAPIScenario(t *testing.T) {
	for _, p := range placements(t) {
		t.Run(p, func(t *testing.T) { testAPIScenario(t, p) })
	}
}

func testAPIScenario(t *testing.T, placement string) {
	s := newStack(t, stackOpts{postgres: placement == "schema" || placement == "pgshared"})
	acme := s.tenant("acme", s.signupAs("acme", placement))
	globex := s.tenant("globex", s.signupAs("globex", placement))

	// Signup answers the documented shape.
	r := s.do("POST", "localhost", "/api/tenants", "", map[string]string{"slug": "initech", "name": "Initech", "strategy": placement})
	ten, _ := r.Body["tenant"].(map[string]any)
	if r.Status != 201 || ten["slug"] != "initech" || ten["name"] != "Initech" || ten["strategy"] != placement ||
		ten["id"] == "" || ten["created_at"] == nil || !strings.HasPrefix(r.str("token"), "silo_") {
		t.Fatalf("signup: %d %s", r.Status, r.Raw)
	}
	if r := s.do("POST", "localhost", "/api/tenants", "", map[string]string{"slug": "acme"}); r.Status != 409 || r.code() != "slug_taken" {
		t.Fatalf("taken slug: %d %s", r.Status, r.Raw)
	}

	// Projects: create, get, list with paging, patch, delete.
	var ids []string
	for i := range 5 {
		r := acme.do("POST", "/api/projects", map[string]string{"name": fmt.Sprintf("P%d", i)})
		if r.Status != 201 || r.str("name") != fmt.Sprintf("P%d", i) || r.str("created_at") == "" || r.str("updated_at") == "" {
			t.Fatalf("create project: %d %s", r.Status, r.Raw)
		}
		ids = append(ids, r.str("id"))
	}
	if r := acme.do("POST", "/api/projects", map[string]string{"name": "P0"}); r.Status != 409 || r.code() != "conflict" {
		t.Fatalf("duplicate name: %d %s", r.Status, r.Raw)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		r := acme.do("GET", "/api/projects?limit=2&cursor="+url.QueryEscape(cursor), nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		for _, p := range r.Body["projects"].([]any) {
			seen = append(seen, p.(map[string]any)["id"].(string))
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			if pages != 2 {
				t.Fatalf("5 projects in pages of 2 took %d pages", pages+1)
			}
			break
		}
		cursor = next
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("paging returned %v, want %v", seen, ids)
	}
	if r := acme.do("GET", "/api/projects/"+ids[0], nil); r.Status != 200 || r.str("name") != "P0" {
		t.Fatalf("get: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("PATCH", "/api/projects/"+ids[0], map[string]string{"name": "Apollo"}); r.Status != 200 || r.str("name") != "Apollo" {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("PATCH", "/api/projects/"+ids[0], map[string]string{"name": "P1"}); r.Status != 409 {
		t.Fatalf("patch to a taken name: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("DELETE", "/api/projects/"+ids[4], nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("GET", "/api/projects/"+ids[4], nil); r.Status != 404 || r.code() != "not_found" {
		t.Fatalf("get deleted: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("DELETE", "/api/projects/"+ids[4], nil); r.Status != 404 {
		t.Fatalf("delete twice: %d %s", r.Status, r.Raw)
	}

	// Tasks.
	r = acme.do("POST", "/api/projects/"+ids[0]+"/tasks", map[string]any{"title": "launch", "done": false})
	if r.Status != 201 || r.str("project_id") != ids[0] || r.Body["done"] != false {
		t.Fatalf("create task: %d %s", r.Status, r.Raw)
	}
	taskID := r.str("id")
	if r := acme.do("PATCH", "/api/tasks/"+taskID, map[string]any{"done": true}); r.Status != 200 || r.Body["done"] != true || r.str("title") != "launch" {
		t.Fatalf("patch task: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("GET", "/api/projects/"+ids[0]+"/tasks", nil); r.Status != 200 || len(r.Body["tasks"].([]any)) != 1 {
		t.Fatalf("list tasks: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("POST", "/api/projects/nope/tasks", map[string]any{"title": "x"}); r.Status != 404 {
		t.Fatalf("task in unknown project: %d %s", r.Status, r.Raw)
	}

	// Isolation: globex sees nothing of acme's, by id or by list.
	for _, path := range []string{"/api/projects/" + ids[0], "/api/tasks/" + taskID, "/api/projects/" + ids[0] + "/tasks"} {
		if r := globex.do("GET", path, nil); r.Status != 404 {
			t.Fatalf("globex GET %s: %d %s", path, r.Status, r.Raw)
		}
	}
	if r := globex.do("PATCH", "/api/tasks/"+taskID, map[string]any{"title": "pwned"}); r.Status != 404 {
		t.Fatalf("globex PATCH acme's task: %d", r.Status)
	}
	if r := globex.do("DELETE", "/api/projects/"+ids[0], nil); r.Status != 404 {
		t.Fatalf("globex DELETE acme's project: %d", r.Status)
	}
	if r := globex.do("POST", "/api/projects/"+ids[0]+"/tasks", map[string]any{"title": "x"}); r.Status != 404 {
		t.Fatalf("globex adds a task to acme's project: %d", r.Status)
	}
	if r := globex.do("GET", "/api/projects", nil); r.Status != 200 || len(r.Body["projects"].([]any)) != 0 {
		t.Fatalf("globex list: %s", r.Raw)
	}
	// Same project name in two tenants is fine.
	if r := globex.do("POST", "/api/projects", map[string]string{"name": "Apollo"}); r.Status != 201 {
		t.Fatalf("same name in another tenant: %d %s", r.Status, r.Raw)
	}
	if r := acme.do("GET", "/api/tasks/"+taskID, nil); r.Status != 200 || r.str("title") != "launch" {
		t.Fatalf("acme's task changed: %s", r.Raw)
	}

	// Auth: a token only works for its own tenant; none or garbage is 401.
	if r := s.do("GET", "globex.localhost", "/api/projects", acme.token, nil); r.Status != 401 || r.code() != "unauthorized" {
		t.Fatalf("cross-tenant token: %d %s", r.Status, r.Raw)
	}
	for _, tok := range []string{"", "silo_garbage", "garbage"} {
		if r := s.do("GET", "acme.localhost", "/api/projects", tok, nil); r.Status != 401 {
			t.Fatalf("token %q: %d", tok, r.Status)
		}
	}

	// Resolution: case-insensitive, port ignored, path prefix; unknown is 404.
	if r := s.do("GET", "ACME.LocalHost:9999", "/api/projects/"+ids[0], acme.token, nil); r.Status != 200 {
		t.Fatalf("mixed-case host with port: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "localhost", "/t/acme/api/projects/"+ids[0], acme.token, nil); r.Status != 200 {
		t.Fatalf("path prefix: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "localhost", "/t/globex/api/projects/"+ids[0], globex.token, nil); r.Status != 404 {
		t.Fatalf("path prefix cross-tenant id: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "localhost", "/t/acme/api/projects", globex.token, nil); r.Status != 401 {
		t.Fatalf("path prefix cross-tenant token: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "nope.localhost", "/api/projects", acme.token, nil); r.Status != 404 || r.code() != "tenant_not_found" {
		t.Fatalf("unknown tenant: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "localhost", "/t/nope/api/projects", acme.token, nil); r.Status != 404 || r.code() != "tenant_not_found" {
		t.Fatalf("unknown tenant by path: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "localhost", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
}

func TestUnknownTenantIsNeverCreated(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.signup("acme")
	for _, host := range []string{"ghost.localhost", "GHOST.localhost"} {
		s.do("GET", host, "/api/projects", "", nil)
		s.do("POST", host, "/api/projects", "", map[string]string{"name": "x"})
	}
	ts, err := s.Catalog.Tenants(t.Context())
	if err != nil || len(ts) != 1 {
		t.Fatalf("catalog has %d tenants (%v), want 1", len(ts), err)
	}
	if n := countFiles(t, s.Store.Dir()); n != 1 {
		t.Fatalf("%d tenant files, want 1", n)
	}
}
