package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestQuota fills a tenant up to a small storage quota: the write that
// would pass it answers 507 quota_exceeded and changes nothing, reads keep
// working, other tenants are unaffected, and raising the quota through the
// operator API lets the next write through, without a restart.
func TestQuota(t *testing.T) {
	s := newStack(t, stackOpts{operatorToken: "op"})
	c := s.tenant("acme", s.signup("acme"))
	other := s.tenant("other", s.signup("other"))
	c.do("GET", "/api/projects", nil) // open the file
	if r := s.do("PUT", "localhost", "/api/operator/quota", "op", map[string]int64{"tenant_max_bytes": 256 << 10}); r.Status != 200 {
		t.Fatalf("set quota: %d %s", r.Status, r.Raw)
	}
	p := c.do("POST", "/api/projects", map[string]string{"name": "P"})
	title := strings.Repeat("x", 190)
	created := 0
	var last resp
	for i := range 5000 {
		last = c.do("POST", "/api/projects/"+p.str("id")+"/tasks", map[string]any{"title": fmt.Sprint(i, title)})
		if last.Status != 201 {
			break
		}
		created++
	}
	if last.Status != 507 || last.code() != "quota_exceeded" {
		t.Fatalf("after %d tasks: %d %s", created, last.Status, last.Raw)
	}
	// Full, not over: an update that fits in place still goes through.
	if r := c.do("PATCH", "/api/projects/"+p.str("id"), map[string]any{"archived": true}); r.Status != 200 {
		t.Fatalf("update at the quota: %d %s", r.Status, r.Raw)
	}
	count := func() int {
		n, cur := 0, ""
		for {
			r := c.do("GET", "/api/projects/"+p.str("id")+"/tasks?limit=200&cursor="+cur, nil)
			if r.Status != 200 {
				t.Fatalf("read over quota: %d %s", r.Status, r.Raw)
			}
			n += len(r.Body["tasks"].([]any))
			next, _ := r.Body["next_cursor"].(string)
			if next == "" {
				return n
			}
			cur = next
		}
	}
	if n := count(); n != created {
		t.Fatalf("%d tasks stored, %d acknowledged: the refused write changed something", n, created)
	}
	// Another tenant is far below the quota.
	if r := other.do("POST", "/api/projects", map[string]string{"name": "fine"}); r.Status != 201 {
		t.Fatalf("other tenant: %d", r.Status)
	}
	// Raise the quota: the next write goes through.
	s.do("PUT", "localhost", "/api/operator/quota", "op", map[string]int64{"tenant_max_bytes": 16 << 20})
	if r := c.do("POST", "/api/projects/"+p.str("id")+"/tasks", map[string]any{"title": "after"}); r.Status != 201 {
		t.Fatalf("after raising the quota: %d %s", r.Status, r.Raw)
	}
	// Lower it below what the tenant stores: SQLite would only stop the file
	// growing, but writes that add or change data are refused outright, and
	// deletes still work, so the tenant can get back under it.
	s.do("PUT", "localhost", "/api/operator/quota", "op", map[string]int64{"tenant_max_bytes": 4096})
	stored := count()
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/projects", map[string]string{"name": "over"}},
		{"POST", "/api/projects/" + p.str("id") + "/tasks", map[string]any{"title": "over"}},
		{"PATCH", "/api/projects/" + p.str("id"), map[string]string{"name": "renamed"}},
	} {
		if r := c.do(w.method, w.path, w.body); r.Status != 507 || r.code() != "quota_exceeded" {
			t.Fatalf("%s %s over a lowered quota: %d %s", w.method, w.path, r.Status, r.Raw)
		}
	}
	if r := c.do("GET", "/api/projects/"+p.str("id"), nil); r.Status != 200 || r.str("name") != "P" {
		t.Fatalf("a refused rename changed the project: %d %s", r.Status, r.Raw)
	}
	// PATCH {} writes nothing: the row as it is, over the quota too, and a
	// missing id is a 404 there, not a 507.
	if r := c.do("PATCH", "/api/projects/"+p.str("id"), map[string]any{}); r.Status != 200 || r.str("name") != "P" {
		t.Fatalf("empty PATCH over the quota: %d %s", r.Status, r.Raw)
	}
	if r := c.do("PATCH", "/api/tasks/0190a6e2-7b1c-7cc3-9d2e-3f4a5b6c7d8e", map[string]any{}); r.Status != 404 {
		t.Fatalf("empty PATCH of a missing task over the quota: %d %s", r.Status, r.Raw)
	}
	tasks := c.do("GET", "/api/projects/"+p.str("id")+"/tasks?limit=1", nil).Body["tasks"].([]any)
	if r := c.do("DELETE", "/api/tasks/"+tasks[0].(map[string]any)["id"].(string), nil); r.Status != 204 {
		t.Fatalf("delete over quota: %d %s", r.Status, r.Raw)
	}
	if n := count(); n != stored-1 {
		t.Fatalf("over a lowered quota: %d tasks, want %d", n, stored-1)
	}
	if r := s.do("PUT", "localhost", "/api/operator/quota", "op", map[string]int64{"tenant_max_bytes": -1}); r.Status != 400 {
		t.Fatalf("negative quota: %d", r.Status)
	}
}
