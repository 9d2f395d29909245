package tenantdb_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
)

// TestOpenTenantIsExclusiveWithoutBackup: with backups off, an open tenant
// file is held with unix-excl (no -shm, other processes locked out) and,
// once evicted, leaves an empty WAL behind and all its rows in the file.
func TestOpenTenantIsExclusiveWithoutBackup(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 shell on PATH (apt-get install sqlite3)")
	}
	ctx := context.Background()
	store, projects, tenant := exclusiveStore(t, tenantdb.Config{Cache: tenantdb.CacheConfig{Capacity: 1}})
	a, b := tenant("a"), tenant("b")
	if _, err := projects.CreateProject(a, "Apollo"); err != nil {
		t.Fatal(err)
	}
	path, err := store.Path("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
		t.Fatalf("open tenant has a -shm file (%v): not exclusive", err)
	}
	// One connection, in exclusive locking mode.
	db, release, err := store.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA locking_mode").Scan(&mode); err != nil || mode != "exclusive" {
		t.Fatalf("locking_mode = %q, %v; want exclusive", mode, err)
	}
	if n := db.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("the handle may open %d connections; want 1", n)
	}
	release()
	out, err := exec.Command(shell, "-cmd", ".timeout 100", path, "SELECT count(*) FROM projects;").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "locked") {
		t.Fatalf("another process read an open tenant: err %v, output %q", err, out)
	}

	// Using b evicts a (capacity 1); its close runs in the background.
	if _, err := projects.CreateProject(b, "Gemini"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for store.Cache().Stats().Closing > 0 || store.Cache().Stats().OpenHandles > 1 {
		if time.Now().After(deadline) {
			t.Fatal("a was not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil || fi.Size() != 0 {
		t.Fatalf("closed tenant's WAL: %v, %v; want kept and empty", fi, err)
	}
	out, err = exec.Command(shell, "-cmd", ".timeout 1000", path, "SELECT name FROM projects;").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Apollo" {
		t.Fatalf("closed tenant read by another process: err %v, output %q; want Apollo", err, out)
	}
	// Isolation holds across the eviction: b sees only its own project.
	list, _, err := projects.Projects(b, silo.Page{Limit: 10}, silo.ProjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "Gemini" {
		t.Fatalf("b lists %d projects; want only Gemini", len(list))
	}
}

// TestOpenTenantHeldElsewhere: while another handle holds a closed tenant's
// file (here a plain SQLite handle of this process in a write transaction,
// as the sqlite3 shell would from outside), the tenant's requests wait for
// the busy timeout, then fail as unavailable (503, retry later), not as an
// internal error; the other tenants are served meanwhile, and once the
// holder lets go the tenant is served again.
func TestOpenTenantHeldElsewhere(t *testing.T) {
	ctx := context.Background()
	store, projects, tenant := exclusiveStore(t, tenantdb.Config{
		Cache:  tenantdb.CacheConfig{Capacity: 4},
		SQLite: sqlite.Options{BusyTimeout: 100 * time.Millisecond},
	})
	a, b := tenant("a"), tenant("b")
	if _, err := projects.CreateProject(a, "Apollo"); err != nil {
		t.Fatal(err)
	}
	store.Cache().Discard("a")
	waitClosed(t, store)
	path, _ := store.Path("a")
	other, err := sqlite.Open(path, sqlite.Options{MustExist: true, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE projects SET name = 'Held' WHERE name = 'Apollo'"); err != nil {
		t.Fatal(err)
	}
	_, _, err = projects.Projects(a, silo.Page{Limit: 10}, silo.ProjectFilter{})
	if silo.ErrorCode(err) != silo.ESTORAGE {
		t.Fatalf("request to a tenant held elsewhere: %v (code %q); want %q", err, silo.ErrorCode(err), silo.ESTORAGE)
	}
	if _, err := projects.CreateProject(b, "Gemini"); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	other.Close()
	list, _, err := projects.Projects(a, silo.Page{Limit: 10}, silo.ProjectFilter{})
	if err != nil || len(list) != 1 || list[0].Name != "Apollo" {
		t.Fatalf("after the holder let go: %v, %v; want Apollo", list, err)
	}
}

func waitClosed(t *testing.T, store *tenantdb.Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for store.Cache().Stats().Closing > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a close did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exclusiveStore opens a store without backups in a temp dir (closed at the
// end of the test) and returns it with its project service and a function
// that provisions a tenant and returns a context acting as it.
func exclusiveStore(t *testing.T, cfg tenantdb.Config) (*tenantdb.Store, *tenantdb.ProjectService, func(id string) context.Context) {
	t.Helper()
	ctx := context.Background()
	cfg.Dir = t.TempDir()
	store, err := tenantdb.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(ctx) })
	tenant := func(id string) context.Context {
		tn := &silo.Tenant{ID: silo.TenantID(id), Slug: id, Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
		if err := store.Provision(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
		return silo.NewContextWithTenant(ctx, tn)
	}
	return store, tenantdb.NewProjectService(store), tenant
}

// TestOpenMissingTenantFile: without backups, a tenant whose file is gone
// (deleted behind the catalog's back) answers 503 tenant_unavailable: its
// data is lost, which "no such tenant" (as it answered before) would hide
// from the client and the operator alike. The open creates no file.
func TestOpenMissingTenantFile(t *testing.T) {
	store, projects, tenant := exclusiveStore(t, tenantdb.Config{Cache: tenantdb.CacheConfig{Capacity: 2}})
	a := tenant("a")
	if _, err := projects.CreateProject(a, "Apollo"); err != nil {
		t.Fatal(err)
	}
	store.Cache().Discard("a")
	waitClosed(t, store)
	path, _ := store.Path("a")
	for _, p := range []string{path, path + "-wal"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	_, _, err := projects.Projects(a, silo.Page{Limit: 10}, silo.ProjectFilter{})
	if silo.ErrorCode(err) != silo.ESTORAGE {
		t.Fatalf("tenant without a file: %v; want %s", err, silo.ESTORAGE)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the open created the file: %v", err)
	}
}
