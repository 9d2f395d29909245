package pg

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/silohq/silo/internal/silo"
)

// connState is what a pooled connection carries between requests.
type connState struct {
	pid        int32
	searchPath string
	tenant     string
}

// idleState borrows the pool's connection outside any request and reads
// its session state.
func idleState(tb testing.TB, env *testEnv) connState {
	tb.Helper()
	var s connState
	err := env.e.pool.QueryRow(context.Background(),
		"SELECT pg_backend_pid(), current_setting('search_path'), coalesce(current_setting('app.tenant_id', true), '')").
		Scan(&s.pid, &s.searchPath, &s.tenant)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestPooledConnectionNeverLeaks runs requests of four tenants, two per
// placement, alternately on a pool of one connection, some of them failing
// mid-transaction, and checks after each that the one connection is back
// to its session defaults and that every answer is the requester's own.
func TestPooledConnectionNeverLeaks(t *testing.T) {
	env := mustEnv(t, Config{MaxConns: 1})
	var tenants []context.Context
	for _, p := range placements {
		tenants = append(tenants, env.tenant(t, p), env.tenant(t, p))
	}
	base := idleState(t, env)
	if base.tenant != "" {
		t.Fatalf("a fresh connection has app.tenant_id %q", base.tenant)
	}
	own := make([]map[string]bool, len(tenants))
	for i := range own {
		own[i] = map[string]bool{}
	}
	check := func(step string) {
		t.Helper()
		if s := idleState(t, env); s != base {
			t.Fatalf("after %s the pooled connection carries %+v, want %+v", step, s, base)
		}
	}
	for round := range 6 {
		for i, ctx := range tenants {
			name := fmt.Sprintf("P%d", round)
			p, err := env.projects.CreateProject(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			own[i][p.ID] = true
			check(fmt.Sprintf("tenant %d's create", i))

			// A failed request rolls back, and must not leave its
			// settings behind either.
			_, err = env.projects.CreateProject(ctx, name)
			wantCode(t, err, silo.ECONFLICT, "duplicate")
			check(fmt.Sprintf("tenant %d's failed create", i))

			list, _, err := env.projects.Projects(ctx, silo.Page{Limit: silo.MaxPageLimit}, silo.ProjectFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != len(own[i]) {
				t.Fatalf("round %d: tenant %d lists %d projects, owns %d", round, i, len(list), len(own[i]))
			}
			for _, p := range list {
				if !own[i][p.ID] {
					t.Fatalf("round %d: tenant %d lists project %s, which is not its own", round, i, p.ID)
				}
			}
			check(fmt.Sprintf("tenant %d's list", i))
		}
	}
}

// TestConcurrentTenants runs several tenants' requests at once over a
// small pool: under contention every list is still the requester's own.
func TestConcurrentTenants(t *testing.T) {
	env := mustEnv(t, Config{MaxConns: 2})
	var tenants []context.Context
	for _, p := range placements {
		for range 3 {
			tenants = append(tenants, env.tenant(t, p))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tenants))
	for i, ctx := range tenants {
		wg.Go(func() {
			ids := map[string]bool{}
			for j := range 15 {
				p, err := env.projects.CreateProject(ctx, fmt.Sprintf("t%d-p%d", i, j))
				if err != nil {
					errs <- err
					return
				}
				ids[p.ID] = true
				list, _, err := env.projects.Projects(ctx, silo.Page{Limit: silo.MaxPageLimit}, silo.ProjectFilter{})
				if err != nil {
					errs <- err
					return
				}
				for _, p := range list {
					if !ids[p.ID] {
						errs <- fmt.Errorf("tenant %d lists %s (%q), not its own", i, p.ID, p.Name)
						return
					}
				}
				if len(list) != len(ids) {
					errs <- fmt.Errorf("tenant %d lists %d projects, owns %d", i, len(list), len(ids))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
