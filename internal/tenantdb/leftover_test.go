package tenantdb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
)

// provisionedStore opens a store without backups over a temp dir, with
// tenant id provisioned.
func provisionedStore(t *testing.T, id silo.TenantID) *tenantdb.Store {
	t.Helper()
	ctx := context.Background()
	st, err := tenantdb.Open(ctx, tenantdb.Config{Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 2}, MigrateOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(ctx) })
	if err := st.Provision(ctx, id); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestProvisionIgnoresStaleWAL: a -wal left beside a missing tenant file (a
// crash between the removals of a deleted tenant's files) holds frames of
// the old file. SQLite cannot tell whose WAL it is, so a new file at that
// path would take them for its own at its first open: the old rows would
// reappear in the new tenant. Provisioning must drop such a WAL first.
func TestProvisionIgnoresStaleWAL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := provisionedStore(t, "old")
	oldPath, _ := st.Path("old")
	path, _ := st.Path("t1")

	// A WAL holding a row: written on a connection that never
	// checkpoints, copied while it is open (a close would checkpoint).
	db, err := sqlite.Open(oldPath, sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO projects (id, tenant_id, name, created_at, updated_at) VALUES (?1, 't1', 'stale', 0, 0)", silo.NewID()); err != nil {
		t.Fatal(err)
	}
	wal, err := os.ReadFile(oldPath + "-wal")
	if err != nil || len(wal) == 0 {
		t.Fatalf("the WAL to plant: %d bytes, %v", len(wal), err)
	}
	if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := st.Provision(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	tn := &silo.Tenant{ID: "t1", Slug: "t1", Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
	ps, _, err := tenantdb.NewProjectService(st).Projects(silo.NewContextWithTenant(ctx, tn), silo.Page{}, silo.ProjectFilter{})
	if err != nil || len(ps) != 0 {
		t.Fatalf("a new tenant's projects: %v, %v; want none", ps, err)
	}
}

// TestRemoveTempFiles: the temporary files a crash left beside the tenants
// (a template copy, a restore's output) are removed once old enough, and
// nothing else is: not a young one (a signup or restore under way), not a
// tenant's file, not Litestream's state beside it.
func TestRemoveTempFiles(t *testing.T) {
	st := provisionedStore(t, "t1")
	tenant, _ := st.Path("t1")
	dir := st.Dir()
	old := time.Now().Add(-time.Hour)
	plant := func(name string, mod time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{plant(".new-123.db", old), plant(".restore-t1.db", old), plant(".restore-t1.db-wal", old), plant(".restore-t1.db.tmp", old)}
	young := plant(".new-456.db", time.Now())
	state := filepath.Join(dir, ".t1.db-litestream")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tenant, old, old); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveTempFiles(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range []string{young, state, tenant} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
}

// TestDamagedTemplateIsRebuilt: a template file truncated or replaced was
// used as it was, and every signup got a copy that its first open refuses
// (schema version 0). A template whose header is not at the version is
// built again.
func TestDamagedTemplateIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	st, err := tenantdb.Open(context.Background(), tenantdb.Config{Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close(context.Background())
	templates, _ := filepath.Glob(filepath.Join(dir, "templates", "tenant-v*.db"))
	if len(templates) != 1 {
		t.Fatalf("templates: %v", templates)
	}
	if err := os.Truncate(templates[0], 0); err != nil {
		t.Fatal(err)
	}
	st, err = tenantdb.Open(context.Background(), tenantdb.Config{Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	tn := writeTo(t, st, silo.StrategyDatabase) // provisions from the template, then writes
	ps, _, err := tenantdb.NewProjectService(st).Projects(silo.NewContextWithTenant(context.Background(), tn), silo.Page{}, silo.ProjectFilter{})
	if err != nil || len(ps) != 1 {
		t.Fatalf("a tenant made from the rebuilt template: %d projects, %v", len(ps), err)
	}
}
