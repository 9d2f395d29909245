package server_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

// TestIsolationProperty lets several tenants do random operations at once,
// through a cache smaller than the number of tenants, while each also
// attacks the others with every id it has seen anywhere. No tenant ever sees,
// changes or deletes another's rows, and each tenant's data matches a model
// of what it did.
func TestIsolationProperty(t *testing.T) {
	populations := [][]string{
		{"database", "database", "database", "database"},
		{"shared", "shared", "shared", "shared"},
		{"database", "shared", "database", "shared"},
	}
	if havePostgres() {
		populations = append(populations,
			[]string{"schema", "schema", "pgshared", "pgshared"},
			[]string{"database", "shared", "schema", "pgshared"})
	} else {
		t.Log(pgSkip)
	}
	for _, placements := range populations {
		t.Run(fmt.Sprint(placements), func(t *testing.T) { testIsolation(t, placements) })
	}
}

func testIsolation(t *testing.T, placements []string) {
	pgNeeded := false
	for _, p := range placements {
		pgNeeded = pgNeeded || p == "schema" || p == "pgshared"
	}
	s := newStack(t, stackOpts{capacity: 2, postgres: pgNeeded})
	nTenants, ops := len(placements), 120
	clients := make([]*tenantClient, nTenants)
	for i := range clients {
		slug := fmt.Sprintf("tenant%d", i)
		clients[i] = s.tenant(slug, s.signupAs(slug, placements[i]))
	}
	// owner records which tenant created every id, for the attackers.
	var mu sync.Mutex
	owner := map[string]int{}
	foreign := func(self int, r *rand.Rand) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		var ids []string
		for id, o := range owner {
			if o != self {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return "", false
		}
		sort.Strings(ids)
		return ids[r.IntN(len(ids))], true
	}

	var wg sync.WaitGroup
	for ti, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(ti), 7))
			projects := map[string]string{} // id → name
			tasks := map[string]string{}    // id → project id
			pick := func(m map[string]string) string {
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				return keys[r.IntN(len(keys))]
			}
			fail := func(format string, args ...any) {
				t.Errorf("tenant%d: "+format, append([]any{ti}, args...)...)
			}
			for i := range ops {
				switch op := r.IntN(10); {
				case op < 3 || len(projects) == 0:
					name := fmt.Sprintf("p%d-%d", ti, i)
					if r.IntN(4) == 0 {
						name = "Shared name" // every tenant may use it once
					}
					res := c.do("POST", "/api/projects", map[string]string{"name": name})
					_, dup := func() (string, bool) {
						for _, n := range projects {
							if n == name {
								return n, true
							}
						}
						return "", false
					}()
					if dup {
						if res.Status != 409 {
							fail("duplicate name: %d", res.Status)
						}
						continue
					}
					if res.Status != 201 {
						fail("create project: %d %s", res.Status, res.Raw)
						continue
					}
					projects[res.str("id")] = name
					mu.Lock()
					owner[res.str("id")] = ti
					mu.Unlock()
				case op < 5:
					pid := pick(projects)
					res := c.do("POST", "/api/projects/"+pid+"/tasks", map[string]any{"title": fmt.Sprint("t", i)})
					if res.Status != 201 {
						fail("create task: %d %s", res.Status, res.Raw)
						continue
					}
					tasks[res.str("id")] = pid
					mu.Lock()
					owner[res.str("id")] = ti
					mu.Unlock()
				case op < 6:
					pid := pick(projects)
					name := fmt.Sprintf("renamed%d-%d", ti, i)
					if res := c.do("PATCH", "/api/projects/"+pid, map[string]string{"name": name}); res.Status != 200 || res.str("name") != name {
						fail("patch: %d %s", res.Status, res.Raw)
					}
					projects[pid] = name
				case op < 7 && len(projects) > 1:
					pid := pick(projects)
					if res := c.do("DELETE", "/api/projects/"+pid, nil); res.Status != 204 {
						fail("delete: %d %s", res.Status, res.Raw)
					}
					delete(projects, pid)
					for tid, p := range tasks {
						if p == pid {
							delete(tasks, tid)
						}
					}
				default:
					// Attack: another tenant's id must look like no id at all.
					id, ok := foreign(ti, r)
					if !ok {
						continue
					}
					for _, req := range []struct{ m, p string }{
						{"GET", "/api/projects/" + id}, {"GET", "/api/tasks/" + id},
						{"GET", "/api/projects/" + id + "/tasks"},
						{"PATCH", "/api/projects/" + id}, {"PATCH", "/api/tasks/" + id},
						{"DELETE", "/api/projects/" + id}, {"DELETE", "/api/tasks/" + id},
						{"POST", "/api/projects/" + id + "/tasks"},
					} {
						body := map[string]any{"title": "pwned"}
						if req.m == "PATCH" {
							body = map[string]any{"name": "pwned"}
							if req.p[5:10] == "tasks" {
								body = map[string]any{"title": "pwned"}
							}
						}
						if req.m == "GET" || req.m == "DELETE" {
							body = nil
						}
						if res := c.do(req.m, req.p, body); res.Status != 404 {
							fail("%s %s (foreign id): %d %s", req.m, req.p, res.Status, res.Raw)
						}
					}
				}
			}
			// The tenant's data is exactly its model.
			res := c.do("GET", "/api/projects?limit=200", nil)
			got := map[string]string{}
			for _, p := range res.Body["projects"].([]any) {
				pm := p.(map[string]any)
				got[pm["id"].(string)] = pm["name"].(string)
			}
			if fmt.Sprint(got) != fmt.Sprint(projects) {
				fail("projects %v, want %v", got, projects)
			}
			gotTasks := 0
			for pid := range projects {
				res := c.do("GET", "/api/projects/"+pid+"/tasks?limit=200", nil)
				for _, tk := range res.Body["tasks"].([]any) {
					tm := tk.(map[string]any)
					if tasks[tm["id"].(string)] != pid {
						fail("task %v not in model", tm)
					}
					gotTasks++
				}
			}
			if gotTasks != len(tasks) {
				fail("%d tasks, want %d", gotTasks, len(tasks))
			}
		}()
	}
	wg.Wait()
	files := 0
	for _, p := range placements {
		if p == "database" {
			files++
		}
	}
	if st := s.Store.Cache().Stats(); files > 2 && st.Evictions == 0 {
		t.Errorf("no evictions with capacity 2 and %d tenant files: %+v", files, st)
	}
}

// TestEvictionUnderLoad runs 20 tenants through a cache of 2 with
// concurrent requests: never a 5xx, and the open handles never exceed the
// capacity plus the handles borrowed at that moment.
func TestEvictionUnderLoad(t *testing.T) {
	s := newStack(t, stackOpts{capacity: 2})
	const nTenants = 20
	clients := make([]*tenantClient, nTenants)
	for i := range clients {
		slug := fmt.Sprintf("load%d", i)
		clients[i] = s.tenant(slug, s.signup(slug))
	}
	stop := make(chan struct{})
	var bad []string
	var mu sync.Mutex
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st := s.Store.Cache().Stats(); st.OpenHandles > st.Capacity+st.Borrowed {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%+v", st))
				mu.Unlock()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range 60 {
				c := clients[r.IntN(nTenants)]
				var res resp
				if i%3 == 0 {
					res = c.do("POST", "/api/projects", map[string]string{"name": fmt.Sprintf("w%d-%d", w, i)})
				} else {
					res = c.do("GET", "/api/projects", nil)
				}
				if res.Status >= 500 {
					t.Errorf("%s: %d %s", c.slug, res.Status, res.Raw)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	if len(bad) > 0 {
		t.Fatalf("open handles above capacity+borrowed %d times, e.g. %s", len(bad), bad[0])
	}
	if st := s.Store.Cache().Stats(); st.Evictions < 10 || st.OpenHandles > 2 {
		t.Fatalf("stats after load: %+v", st)
	}
}
