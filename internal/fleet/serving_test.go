package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silohq/silo/internal/fleet"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
)

// TestMigrateWhileServing runs a fleet migration while the server takes
// writes for the same tenants, for both settings of --migrate-on-open. The
// only errors allowed are the documented 503 tenant_migrating (when the
// server may not migrate itself); every acknowledged write is there at the
// end, and every tenant ends at the latest version.
func TestMigrateWhileServing(t *testing.T) {
	for _, mo := range []bool{true, false} {
		t.Run(fmt.Sprintf("migrate-on-open=%v", mo), func(t *testing.T) {
			e := newEnv(t, mo)
			ctx := context.Background()
			ts := e.seed(t, 16)
			tokens := map[string]string{}
			for _, tn := range ts {
				tok, _, err := e.catalog.CreateToken(ctx, tn.ID, "test")
				if err != nil {
					t.Fatal(err)
				}
				tokens[tn.Slug] = tok
			}
			srv := httptest.NewServer(server.New(server.Config{}, server.Deps{
				Directory: e.catalog, Admin: e.tenants,
				Projects: tenantdb.NewProjectService(e.store), Tasks: tenantdb.NewTaskService(e.store),
				CacheStats: e.store.Cache().Stats,
			}))
			defer srv.Close()

			var mu sync.Mutex
			acked := map[string][]string{} // slug → project names acknowledged
			unexpected := []string{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						tn := ts[(w*7+i)%len(ts)]
						name := fmt.Sprintf("w%d-%d", w, i)
						status, code := post(t, srv.URL, tn.Slug, tokens[tn.Slug], name)
						mu.Lock()
						switch {
						case status == 201:
							acked[tn.Slug] = append(acked[tn.Slug], name)
						case status == 503 && code == "tenant_migrating" && !mo:
						default:
							unexpected = append(unexpected, fmt.Sprintf("%s: %d %s", tn.Slug, status, code))
						}
						mu.Unlock()
					}
				}()
			}
			time.Sleep(50 * time.Millisecond)
			res, err := e.fleet.Migrate(ctx, fleet.Options{Concurrency: 2})
			time.Sleep(50 * time.Millisecond)
			close(stop)
			wg.Wait()
			if err != nil || len(res.Failed) != 0 || res.Migrated+res.Current != len(ts) {
				t.Fatalf("migrate: %+v %v", res, err)
			}
			if len(unexpected) > 0 {
				t.Fatalf("%d unexpected answers, e.g. %v", len(unexpected), unexpected[0])
			}
			total := 0
			for _, tn := range ts {
				if v := e.version(t, tn.ID); v != e.store.Migrator().Latest() {
					t.Fatalf("%s at version %d", tn.Slug, v)
				}
				db := e.open(t, tn.ID)
				have := map[string]bool{}
				rows, _ := db.Query("SELECT name FROM projects WHERE tenant_id = ?", tn.ID)
				for rows.Next() {
					var n string
					rows.Scan(&n)
					have[n] = true
				}
				rows.Close()
				db.Close()
				for _, n := range acked[tn.Slug] {
					if !have[n] {
						t.Fatalf("%s: acknowledged write %q lost", tn.Slug, n)
					}
				}
				total += len(acked[tn.Slug])
			}
			if total == 0 {
				t.Fatal("no write was acknowledged")
			}
		})
	}
}

func post(t *testing.T, base, slug, token, name string) (int, string) {
	body, _ := json.Marshal(map[string]string{"name": name})
	req, _ := http.NewRequest("POST", base+"/api/projects", bytes.NewReader(body))
	req.Host = slug + ".localhost"
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(raw, &e)
	return res.StatusCode, e.Error.Code
}

// TestMigrateBesideAnOpenTenant: without backups the store holds the files it
// has open exclusively, so the fleet cannot open them. Migrating up to the
// latest version counts such a file as current (the store keeps a file open
// only at its latest version); a migration down must fail for it, leaving it
// untouched, rather than skip it.
func TestMigrateBesideAnOpenTenant(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	ts := e.seed(t, 3)
	latest := e.store.Migrator().Latest()
	projects := tenantdb.NewProjectService(e.store)
	held := ts[0]
	tctx := silo.NewContextWithTenant(ctx, held)
	// Open it through the store (migrated on open) and leave a write in its WAL.
	if _, err := projects.CreateProject(tctx, "kept open"); err != nil {
		t.Fatal(err)
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{Concurrency: 2, BusyTimeout: 100 * time.Millisecond})
	if err != nil || len(res.Failed) != 0 || res.Migrated != 2 || res.Current != 1 {
		t.Fatalf("up: %+v %v; want the open tenant current and the 2 others migrated", res, err)
	}
	// Verify cannot read it either, and says so rather than calling it drift.
	drifts, n, _, err := e.fleet.Verify(ctx, fleet.Options{BusyTimeout: 100 * time.Millisecond})
	if err != nil || n != 3 || len(drifts) != 1 || drifts[0].Slug != held.Slug || !strings.Contains(drifts[0].String(), "held open by a running server") {
		t.Fatalf("verify: %v of %d, %v; want only the open tenant, not verified", drifts, n, err)
	}
	res, err = e.fleet.Migrate(ctx, fleet.Options{Target: 1, Concurrency: 2, BusyTimeout: 100 * time.Millisecond, ContinueOnError: true})
	if err != nil || len(res.Failed) != 1 || res.Failed[0].Slug != held.Slug || res.Migrated != 2 {
		t.Fatalf("down: %+v %v; want only the open tenant to fail", res, err)
	}
	if !sqlite.IsBusy(res.Failed[0].Err) {
		t.Fatalf("down failed with %v; want SQLITE_BUSY", res.Failed[0].Err)
	}
	// The open tenant still serves at the latest version, its write intact.
	if _, _, err := projects.Projects(tctx, silo.Page{Limit: 10}, silo.ProjectFilter{}); err != nil {
		t.Fatal(err)
	}
	if v := e.version(t, held.ID); v != latest {
		t.Fatalf("open tenant at version %d after the failed down; want %d", v, latest)
	}
}
