package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
)

// TestArchiveAndDueAt covers the fields of the second tenant migration:
// projects.archived (PATCH and ?archived=) and tasks.due_at.
func TestArchiveAndDueAt(t *testing.T) {
	s := newStack(t, stackOpts{})
	c := s.tenant("acme", s.signup("acme"))
	a := c.do("POST", "/api/projects", map[string]string{"name": "A"})
	b := c.do("POST", "/api/projects", map[string]string{"name": "B"})
	if a.Body["archived"] != false {
		t.Fatalf("new project archived: %s", a.Raw)
	}
	if r := c.do("PATCH", "/api/projects/"+a.str("id"), map[string]any{"archived": true}); r.Status != 200 || r.Body["archived"] != true || r.str("name") != "A" {
		t.Fatalf("archive: %d %s", r.Status, r.Raw)
	}
	names := func(q string) []string {
		r := c.do("GET", "/api/projects"+q, nil)
		if r.Status != 200 {
			t.Fatalf("list %s: %d %s", q, r.Status, r.Raw)
		}
		var out []string
		for _, p := range r.Body["projects"].([]any) {
			out = append(out, p.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := names("?archived=true"); len(got) != 1 || got[0] != "A" {
		t.Fatalf("archived=true: %v", got)
	}
	if got := names("?archived=false"); len(got) != 1 || got[0] != "B" {
		t.Fatalf("archived=false: %v", got)
	}
	if got := names(""); len(got) != 2 {
		t.Fatalf("no filter: %v", got)
	}
	if r := c.do("GET", "/api/projects?archived=maybe", nil); r.Status != 400 {
		t.Fatalf("bad filter: %d", r.Status)
	}

	task := c.do("POST", "/api/projects/"+b.str("id")+"/tasks", map[string]any{"title": "ship", "due_at": "2027-01-02T03:04:05Z"})
	if task.Status != 201 || task.Body["due_at"] != "2027-01-02T03:04:05.000Z" {
		t.Fatalf("task with due_at: %d %s", task.Status, task.Raw)
	}
	id := task.str("id")
	if r := c.do("PATCH", "/api/tasks/"+id, map[string]any{"done": true}); r.Body["due_at"] != "2027-01-02T03:04:05.000Z" {
		t.Fatalf("due_at changed by an unrelated patch: %s", r.Raw)
	}
	if r := c.do("PATCH", "/api/tasks/"+id, map[string]any{"due_at": "2028-06-01T00:00:00+02:00"}); r.Body["due_at"] != "2028-05-31T22:00:00.000Z" {
		t.Fatalf("set due_at: %s", r.Raw)
	}
	if r := c.do("PATCH", "/api/tasks/"+id, []byte(`{"due_at":null}`)); r.Status != 200 || r.Body["due_at"] != nil {
		t.Fatalf("clear due_at: %s", r.Raw)
	}
	// Out of range in UTC, although not in the offset given: the API would
	// write a year 10000 it then refuses to read back, or a time before 1970.
	for _, bad := range []string{`{"due_at":"tomorrow"}`, `{"due_at":12}`, `{"due_at":"0001-01-01T00:00:00Z"}`,
		`{"due_at":"9999-12-31T23:59:59-23:59"}`, `{"due_at":"1970-01-01T00:00:00+05:00"}`} {
		if r := c.do("PATCH", "/api/tasks/"+id, []byte(bad)); r.Status != 400 || r.code() != "invalid_json" {
			t.Fatalf("%s: %d %s", bad, r.Status, r.Raw)
		}
	}
	if r := c.do("PATCH", "/api/tasks/"+id, []byte(`{"due_at":"9999-12-31T23:59:59Z"}`)); r.Status != 200 || r.Body["due_at"] != "9999-12-31T23:59:59.000Z" {
		t.Fatalf("the last second of 9999: %d %s", r.Status, r.Raw)
	}
	// Type errors name JSON's types, not Go's.
	if r := c.do("PATCH", "/api/tasks/"+id, []byte(`{"done":"yes"}`)); r.Status != 400 || !strings.Contains(string(r.Raw), `must be true or false`) {
		t.Fatalf("done as a string: %d %s", r.Status, r.Raw)
	}
}

// TestUpdatedAtOnlyOnChange: in every placement, a PATCH that changes
// nothing (empty, or the current values) leaves updated_at alone; a real
// change moves it.
func TestUpdatedAtOnlyOnChange(t *testing.T) {
	for _, p := range placements(t) {
		t.Run(p, func(t *testing.T) {
			s := newStack(t, stackOpts{postgres: p == "schema" || p == "pgshared"})
			c := s.tenant("acme", s.signupAs("acme", p))
			proj := c.do("POST", "/api/projects", map[string]string{"name": "A"})
			task := c.do("POST", "/api/projects/"+proj.str("id")+"/tasks", map[string]any{"title": "t", "due_at": "2027-01-02T03:04:05Z"})
			if proj.Status != 201 || task.Status != 201 {
				t.Fatalf("create: %s %s", proj.Raw, task.Raw)
			}
			time.Sleep(5 * time.Millisecond) // updated_at has millisecond precision
			check := func(path string, body any, want string, moved bool) string {
				t.Helper()
				r := c.do("PATCH", path, body)
				if r.Status != 200 {
					t.Fatalf("PATCH %s %v: %d %s", path, body, r.Status, r.Raw)
				}
				if got := r.str("updated_at"); (got != want) != moved {
					t.Fatalf("PATCH %s %s: updated_at %s, was %s (want moved=%v)", path, body, got, want, moved)
				}
				if g := c.do("GET", path, nil); g.str("updated_at") != r.str("updated_at") {
					t.Fatalf("GET %s after PATCH: %s vs %s", path, g.str("updated_at"), r.str("updated_at"))
				}
				return r.str("updated_at")
			}
			pp, tp := "/api/projects/"+proj.str("id"), "/api/tasks/"+task.str("id")
			at := proj.str("updated_at")
			at = check(pp, []byte(`{}`), at, false)
			at = check(pp, map[string]any{"name": "A", "archived": false}, at, false)
			check(pp, map[string]any{"archived": true}, at, true)
			at = task.str("updated_at")
			at = check(tp, []byte(`{}`), at, false)
			at = check(tp, map[string]any{"title": "t", "done": false, "due_at": "2027-01-02T03:04:05Z"}, at, false)
			at = check(tp, []byte(`{"due_at":null}`), at, true)
			time.Sleep(5 * time.Millisecond)
			at = check(tp, []byte(`{"due_at":null}`), at, false)
			check(tp, map[string]any{"done": true}, at, true)
		})
	}
}

// TestHostileIDsInEveryPlacement: ids and cursors with NUL bytes or invalid
// UTF-8 name nothing, in every placement alike (PostgreSQL refused them
// with an error, answered 500).
func TestHostileIDsInEveryPlacement(t *testing.T) {
	for _, p := range placements(t) {
		t.Run(p, func(t *testing.T) {
			s := newStack(t, stackOpts{postgres: p == "schema" || p == "pgshared"})
			c := s.tenant("acme", s.signupAs("acme", p))
			proj := c.do("POST", "/api/projects", map[string]string{"name": "A"})
			if proj.Status != 201 {
				t.Fatal(proj.Raw)
			}
			for _, id := range []string{"%00", "%FF", "a%00b", "%FF%FE", "%C0%AF"} {
				for _, tc := range []struct {
					method, path string
					body         any
				}{
					{"GET", "/api/projects/" + id, nil},
					{"PATCH", "/api/projects/" + id, map[string]string{"name": "x"}},
					{"DELETE", "/api/projects/" + id, nil},
					{"GET", "/api/projects/" + id + "/tasks", nil},
					{"POST", "/api/projects/" + id + "/tasks", map[string]string{"title": "x"}},
					{"GET", "/api/tasks/" + id, nil},
					{"PATCH", "/api/tasks/" + id, map[string]any{"done": true}},
					{"DELETE", "/api/tasks/" + id, nil},
				} {
					if r := c.do(tc.method, tc.path, tc.body); r.Status != 404 || r.code() != "not_found" {
						t.Errorf("%s %s: %d %s", tc.method, tc.path, r.Status, r.Raw)
					}
				}
			}
			// Cursors Silo never makes: a NUL byte, tampered text, an id
			// in another case. They used to list from wherever they
			// sorted (200).
			for _, bad := range []string{
				silo.EncodeCursor("ab\x00cd"), "enp6", "MA", "ISEh",
				silo.EncodeCursor(strings.ToUpper(proj.str("id"))), silo.EncodeCursor(proj.str("id")) + "==",
			} {
				for _, path := range []string{"/api/projects?cursor=" + bad, "/api/projects/" + proj.str("id") + "/tasks?cursor=" + bad} {
					if r := c.do("GET", path, nil); r.Status != 400 || r.code() != "invalid_cursor" {
						t.Errorf("GET %s: %d %s", path, r.Status, r.Raw)
					}
				}
			}
			if r := c.do("GET", "/api/projects", nil); len(r.Body["projects"].([]any)) != 1 {
				t.Fatalf("projects changed: %s", r.Raw)
			}
		})
	}
}

// TestOperatorListSizes: the operator's tenant list gives each tenant's
// size in every placement (PostgreSQL's were always 0).
func TestOperatorListSizes(t *testing.T) {
	for _, p := range placements(t) {
		t.Run(p, func(t *testing.T) {
			s := newStack(t, stackOpts{postgres: p == "schema" || p == "pgshared", operatorToken: "op"})
			c := s.tenant("acme", s.signupAs("acme", p))
			sizeOf := func() float64 {
				r := s.do("GET", "localhost", "/api/operator/tenants", "op", nil)
				for _, x := range r.Body["tenants"].([]any) {
					if m := x.(map[string]any); m["slug"] == "acme" {
						return m["size_bytes"].(float64)
					}
				}
				t.Fatalf("acme not listed: %s", r.Raw)
				return 0
			}
			before := sizeOf()
			for i := range 20 {
				if r := c.do("POST", "/api/projects", map[string]string{"name": strings.Repeat("x", 100) + string(rune('a'+i))}); r.Status != 201 {
					t.Fatal(r.Raw)
				}
			}
			if after := sizeOf(); after <= before || after < 2000 {
				t.Fatalf("size %v after 20 projects of 100+ bytes (before %v)", after, before)
			}
		})
	}
}
