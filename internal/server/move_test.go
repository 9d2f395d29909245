package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestMoveUnderConcurrentWrites moves a tenant between placements, back
// and forth through the operator API, while writers keep creating and
// updating its rows. Every write the API acknowledged before, during and
// after the moves is there at the end, exactly once, and no request failed.
func TestMoveUnderConcurrentWrites(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testMoveUnderWrites(t, []string{"shared", "database", "shared", "database"}, false)
	})
	t.Run("postgres", func(t *testing.T) {
		if !havePostgres() {
			t.Skip(pgSkip)
		}
		// database → schema and back, then through every placement.
		testMoveUnderWrites(t, []string{"schema", "database", "pgshared", "shared", "schema", "database"}, true)
	})
}

func testMoveUnderWrites(t *testing.T, route []string, postgres bool) {
	s := newStack(t, stackOpts{operatorToken: "op", postgres: postgres})
	c := s.tenant("acme", s.signupAs("acme", "database"))
	other := s.tenant("other", s.signupAs("other", "shared"))
	other.do("POST", "/api/projects", map[string]string{"name": "Apollo"})
	base := c.do("POST", "/api/projects", map[string]string{"name": "base"})
	for i := range 200 {
		c.do("POST", "/api/projects/"+base.str("id")+"/tasks", map[string]any{"title": fmt.Sprint("seed", i)})
	}

	var mu sync.Mutex
	ackedProjects := map[string]string{} // id → name
	ackedTasks := map[string]string{}    // id → title (latest acknowledged)
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				r := c.do("POST", "/api/projects", map[string]string{"name": name})
				if r.Status != 201 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("create: %d %s", r.Status, r.Raw))
					mu.Unlock()
					continue
				}
				pid := r.str("id")
				tr := c.do("POST", "/api/projects/"+pid+"/tasks", map[string]any{"title": name})
				var tid string
				if tr.Status == 201 {
					tid = tr.str("id")
					if ur := c.do("PATCH", "/api/tasks/"+tid, map[string]any{"title": name + "-v2"}); ur.Status == 200 {
						tr.Body["title"] = name + "-v2"
					} else {
						tr.Status = ur.Status
					}
				}
				mu.Lock()
				ackedProjects[pid] = name
				if tid != "" {
					ackedTasks[tid] = tr.Body["title"].(string)
				}
				if tr.Status != 201 {
					failures = append(failures, fmt.Sprintf("task: %d %s", tr.Status, tr.Raw))
				}
				mu.Unlock()
			}
		}()
	}
	var pauses []string
	for _, to := range route {
		time.Sleep(60 * time.Millisecond)
		r := s.do("POST", "localhost", "/api/operator/tenants/acme/move", "op", map[string]string{"to": to})
		if r.Status != 200 {
			t.Fatalf("move to %s: %d %s", to, r.Status, r.Raw)
		}
		mv := r.Body["move"].(map[string]any)
		pauses = append(pauses, fmt.Sprintf("%s %.1fms", to, mv["pause_ms"]))
	}
	time.Sleep(60 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("pauses: %v; %d projects and %d tasks acknowledged", pauses, len(ackedProjects), len(ackedTasks))
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during moves, e.g. %s", len(failures), failures[0])
	}

	// Everything acknowledged is there, once, with its last acknowledged value.
	seenProjects := map[string]int{}
	seenTasks := map[string]string{}
	cursor := ""
	for {
		r := c.do("GET", "/api/projects?limit=200&cursor="+cursor, nil)
		for _, p := range r.Body["projects"].([]any) {
			pm := p.(map[string]any)
			id := pm["id"].(string)
			seenProjects[id]++
			tcur := ""
			for {
				tr := c.do("GET", "/api/projects/"+id+"/tasks?limit=200&cursor="+tcur, nil)
				for _, tk := range tr.Body["tasks"].([]any) {
					tm := tk.(map[string]any)
					if _, dup := seenTasks[tm["id"].(string)]; dup {
						t.Fatalf("task %s listed twice", tm["id"])
					}
					seenTasks[tm["id"].(string)] = tm["title"].(string)
				}
				next, _ := tr.Body["next_cursor"].(string)
				if next == "" {
					break
				}
				tcur = next
			}
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	for id, name := range ackedProjects {
		if seenProjects[id] != 1 {
			t.Fatalf("project %s (%s) seen %d times", id, name, seenProjects[id])
		}
	}
	if len(seenProjects) != len(ackedProjects)+1 { // +1: "base"
		t.Fatalf("%d projects, %d acknowledged (+1 base)", len(seenProjects), len(ackedProjects))
	}
	for id, title := range ackedTasks {
		if seenTasks[id] != title {
			t.Fatalf("task %s: %q, acknowledged %q", id, seenTasks[id], title)
		}
	}
	if len(seenTasks) != len(ackedTasks)+200 {
		t.Fatalf("%d tasks, %d acknowledged + 200 seeded", len(seenTasks), len(ackedTasks))
	}
	// The neighbour in shared.db saw none of it.
	if r := other.do("GET", "/api/projects", nil); len(r.Body["projects"].([]any)) != 1 {
		t.Fatalf("neighbour sees %s", r.Raw)
	}
	if r := s.do("POST", "localhost", "/api/operator/tenants/acme/move", "op", map[string]string{"to": "mongo"}); r.Status != 400 {
		t.Fatalf("bad target: %d", r.Status)
	}
	if r := s.do("POST", "localhost", "/api/operator/tenants/nobody/move", "op", map[string]string{"to": "shared"}); r.Status != 404 {
		t.Fatalf("unknown tenant: %d", r.Status)
	}
	// Operator routes fold the slug's case, as hosts and /t/ do.
	if r := s.do("POST", "localhost", "/api/operator/tenants/ACME/move", "op", map[string]string{"to": route[len(route)-1]}); r.Status != 409 {
		t.Fatalf("ACME, already where it is: %d %s", r.Status, r.Raw)
	}
}
