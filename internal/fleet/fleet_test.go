package fleet_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/fleet"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

type env struct {
	dir     string
	catalog *catalog.Catalog
	store   *tenantdb.Store
	tenants *tenants.Service
	fleet   *fleet.Fleet
}

func newEnv(t testing.TB, migrateOnOpen bool) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 10, HoldWait: time.Second}, MigrateOnOpen: migrateOnOpen,
		OnMigrate: func(ctx context.Context, r silo.MigrationRun) { cat.RecordMigration(ctx, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(ctx); cat.Close() })
	return &env{dir: dir, catalog: cat, store: store, tenants: tenants.New(cat, store, "", nil),
		fleet: fleet.New(cat, store, dir, nil)}
}

// seed signs up n tenants, writes a project into each, and rolls them back
// to schema version 1, as if they had been created by an older binary.
func (e *env) seed(t testing.TB, n int) []*silo.Tenant {
	t.Helper()
	ctx := context.Background()
	var out []*silo.Tenant
	for i := range n {
		tn, _, err := e.tenants.Create(ctx, tenants.NewTenant{Slug: fmt.Sprintf("t%03d", i)})
		if err != nil {
			t.Fatal(err)
		}
		db := e.open(t, tn.ID)
		if _, err := db.Exec("INSERT INTO projects (id, tenant_id, name, created_at, updated_at) VALUES (?, ?, 'seed', 0, 0)", "p-"+tn.Slug, tn.ID); err != nil {
			t.Fatal(err)
		}
		db.Close()
		out = append(out, tn)
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{Target: 1, Concurrency: 4})
	if err != nil || len(res.Failed) > 0 || res.Migrated != n {
		t.Fatalf("seed down to 1: %+v %v", res, err)
	}
	return out
}

// open opens a tenant's file beside the store. The store holds the files it
// has open exclusively (without backups), so its handle is closed first: a
// hold closes it, and nothing reopens it while the test is not serving.
func (e *env) open(t testing.TB, id silo.TenantID) *sql.DB {
	t.Helper()
	release, err := e.store.Cache().Hold(context.Background(), id, silo.ETENANTMIGRATING)
	if err != nil {
		t.Fatal(err)
	}
	release()
	p, _ := e.store.Path(id)
	db, err := sqlite.Open(p, sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func (e *env) version(t testing.TB, id silo.TenantID) int64 {
	t.Helper()
	db := e.open(t, id)
	defer db.Close()
	v, err := sqlite.UserVersion(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateFleet(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	ts := e.seed(t, 30)
	latest := e.store.Migrator().Latest()
	if st, _ := e.fleet.Status(ctx); st.Versions[1] != 30 {
		t.Fatalf("status before: %+v", st)
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{Concurrency: 4})
	if err != nil || res.Migrated != 30 || len(res.Failed) != 0 {
		t.Fatalf("migrate: %+v %v", res, err)
	}
	for _, tn := range ts {
		if v := e.version(t, tn.ID); v != latest {
			t.Fatalf("%s at %d", tn.Slug, v)
		}
	}
	st, _ := e.fleet.Status(ctx)
	if st.Versions[latest] != 30 || len(st.Failed) != 0 {
		t.Fatalf("status after: %+v", st)
	}
	if drifts, n, _, err := e.fleet.Verify(ctx, fleet.Options{}); err != nil || n != 30 || len(drifts) != 0 {
		t.Fatalf("verify: %v %d %v", drifts, n, err)
	}
	// Data survived, and a rerun has nothing to do.
	db := e.open(t, ts[0].ID)
	var name string
	db.QueryRow("SELECT name FROM projects").Scan(&name)
	db.Close()
	if name != "seed" {
		t.Fatalf("row lost: %q", name)
	}
	if res, _ := e.fleet.Migrate(ctx, fleet.Options{}); res.Current != 30 || res.Migrated != 0 {
		t.Fatalf("rerun: %+v", res)
	}
}

func TestPartialFailureAndRerun(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	ts := e.seed(t, 12)
	corrupt, locked := ts[3], ts[7]
	// Corrupt one file: garbage over its header.
	p, _ := e.store.Path(corrupt.ID)
	if err := os.WriteFile(p, []byte("this is not a SQLite database, not at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Lock another: a connection holds its write lock.
	lockDB := e.open(t, locked.ID)
	conn, _ := lockDB.Conn(ctx)
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{Concurrency: 3, ContinueOnError: true, BusyTimeout: 100 * time.Millisecond})
	if err != nil || res.Migrated != 10 || len(res.Failed) != 2 {
		t.Fatalf("migrate: %+v %v", res, err)
	}
	if v := e.version(t, locked.ID); v != 1 {
		t.Fatalf("locked tenant moved to %d", v)
	}
	st, _ := e.fleet.Status(ctx)
	if len(st.Failed) != 2 || st.Failed[0].Slug != corrupt.Slug || st.Failed[1].Slug != locked.Slug || st.Failed[0].Error == "" {
		t.Fatalf("status failures: %+v", st.Failed)
	}
	// Release the lock and rerun: the locked tenant completes, the
	// corrupted one still fails and is still named.
	conn.ExecContext(ctx, "ROLLBACK")
	conn.Close()
	lockDB.Close()
	res, err = e.fleet.Migrate(ctx, fleet.Options{ContinueOnError: true})
	if err != nil || res.Migrated != 1 || res.Current != 10 || len(res.Failed) != 1 {
		t.Fatalf("rerun: %+v %v", res, err)
	}
	st, _ = e.fleet.Status(ctx)
	if len(st.Failed) != 1 || st.Failed[0].Slug != corrupt.Slug {
		t.Fatalf("status after rerun: %+v", st.Failed)
	}
	drifts, _, _, _ := e.fleet.Verify(ctx, fleet.Options{})
	if len(drifts) != 1 || drifts[0].Slug != corrupt.Slug {
		t.Fatalf("verify: %v", drifts)
	}
}

func TestStopsAtFirstFailure(t *testing.T) {
	e := newEnv(t, true)
	ts := e.seed(t, 20)
	p, _ := e.store.Path(ts[0].ID)
	os.WriteFile(p, []byte("garbage garbage garbage garbage garbage garbage"), 0o600)
	res, err := e.fleet.Migrate(context.Background(), fleet.Options{Concurrency: 1})
	if err != nil || !res.Stopped || len(res.Failed) != 1 || res.Migrated != 0 {
		t.Fatalf("without --continue-on-error: %+v %v", res, err)
	}
}

// TestCancelMidRun cancels fleet runs at random points: every tenant is
// always either wholly at its old version or wholly at the new one (its
// schema matches a fresh file of its version), and a rerun completes.
func TestCancelMidRun(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	e.seed(t, 40)
	for round, after := range []int{1, 7, 19} {
		cctx, cancel := context.WithCancel(ctx)
		var done atomic.Int64
		_, err := e.fleet.Migrate(cctx, fleet.Options{Concurrency: 4, Progress: cancelAfter{&done, int64(after), cancel}})
		cancel()
		if err == nil {
			t.Fatalf("round %d: no cancellation error", round)
		}
		if drifts, _, _, err := e.fleet.Verify(ctx, fleet.Options{}); err != nil || len(drifts) != 0 {
			t.Fatalf("round %d: half-migrated tenants: %v %v", round, drifts, err)
		}
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{})
	if err != nil || len(res.Failed) != 0 || res.Migrated+res.Current != 40 {
		t.Fatalf("rerun: %+v %v", res, err)
	}
	if st, _ := e.fleet.Status(ctx); st.Versions[e.store.Migrator().Latest()] != 40 {
		t.Fatalf("status: %+v", st)
	}
}

type cancelAfter struct {
	n      *atomic.Int64
	after  int64
	cancel func()
}

func (c cancelAfter) Start(int) {}
func (c cancelAfter) Step(string, error) {
	if c.n.Add(1) == c.after {
		c.cancel()
	}
}
func (c cancelAfter) Finish() {}

func TestRollbackThenForward(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	ts := e.seed(t, 5)
	latest := e.store.Migrator().Latest()
	if res, err := e.fleet.Migrate(ctx, fleet.Options{}); err != nil || res.Migrated != 5 {
		t.Fatalf("up: %+v %v", res, err)
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{Target: 1, Tenants: []string{ts[0].Slug, ts[1].Slug}})
	if err != nil || res.Migrated != 2 {
		t.Fatalf("down: %+v %v", res, err)
	}
	if v0, v2 := e.version(t, ts[0].ID), e.version(t, ts[2].ID); v0 != 1 || v2 != latest {
		t.Fatalf("after down: %d %d", v0, v2)
	}
	if drifts, _, _, _ := e.fleet.Verify(ctx, fleet.Options{}); len(drifts) != 0 {
		t.Fatalf("drift after down: %v", drifts)
	}
	if res, _ := e.fleet.Migrate(ctx, fleet.Options{}); res.Migrated != 2 || res.Current != 3 {
		t.Fatalf("forward again: %+v", res)
	}
	if _, err := e.fleet.Migrate(ctx, fleet.Options{Tenants: []string{"nobody"}}); silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
		t.Fatalf("unknown tenant: %v", err)
	}
}

func TestNewTenantsStartAtLatest(t *testing.T) {
	e := newEnv(t, false)
	tn, _, err := e.tenants.Create(context.Background(), tenants.NewTenant{Slug: "fresh"})
	if err != nil {
		t.Fatal(err)
	}
	latest := e.store.Migrator().Latest()
	if tn.SchemaVersion != latest || e.version(t, tn.ID) != latest {
		t.Fatalf("new tenant at %d/%d, want %d", tn.SchemaVersion, e.version(t, tn.ID), latest)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "templates", fmt.Sprintf("tenant-v%04d.db", latest))); err != nil {
		t.Fatalf("template for the latest version: %v", err)
	}
}

func TestCanaryIsStableAndNested(t *testing.T) {
	n10, n50 := 0, 0
	for i := range 2000 {
		id := silo.TenantID(fmt.Sprintf("id-%d", i))
		in10, in50 := fleet.InCanary(id, 10), fleet.InCanary(id, 50)
		if in10 && !in50 {
			t.Fatal("10 % canary not inside the 50 % one")
		}
		if in10 != fleet.InCanary(id, 10) {
			t.Fatal("canary not stable")
		}
		if in10 {
			n10++
		}
		if in50 {
			n50++
		}
	}
	if n10 < 140 || n10 > 260 || n50 < 900 || n50 > 1100 {
		t.Fatalf("canary sizes %d/2000 and %d/2000", n10, n50)
	}
}

// TestStatusClearsFailureFixedWithoutWork: a tenant whose migration failed
// (its file was missing) and whose file is back at the current version has
// nothing to migrate at the next run. That success must still clear the
// failure, or "migrate status" names the tenant failed for good.
func TestStatusClearsFailureFixedWithoutWork(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	tn, _, err := e.tenants.Create(ctx, tenants.NewTenant{Slug: "back"})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := e.store.Path(tn.ID)
	if err := os.Rename(p, p+".away"); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.fleet.Migrate(ctx, fleet.Options{ContinueOnError: true}); len(res.Failed) != 1 {
		t.Fatalf("migrate with the file away: %+v", res)
	}
	if st, _ := e.fleet.Status(ctx); len(st.Failed) != 1 {
		t.Fatalf("status with the file away: %+v", st.Failed)
	}
	if err := os.Rename(p+".away", p); err != nil {
		t.Fatal(err)
	}
	res, err := e.fleet.Migrate(ctx, fleet.Options{})
	if err != nil || res.Current != 1 || len(res.Failed) != 0 {
		t.Fatalf("migrate with the file back: %+v %v", res, err)
	}
	if st, _ := e.fleet.Status(ctx); len(st.Failed) != 0 {
		t.Fatalf("status after a clean run: %+v", st.Failed)
	}
	// A run with nothing to do leaves the ledger alone otherwise.
	var n int
	db, err := sqlite.Open(filepath.Join(e.dir, "catalog.db"), sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM migration_runs WHERE tenant_id = ?", tn.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.Migrate(ctx, fleet.Options{}); err != nil {
		t.Fatal(err)
	}
	var m int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM migration_runs WHERE tenant_id = ?", tn.ID).Scan(&m); err != nil || m != n {
		t.Fatalf("ledger rows after a run with nothing to do: %d, was %d (%v)", m, n, err)
	}
}

// TestVerifyCountsWhatItChecked: verify counts the files it compared (a
// tenant in shared.db is not migrated here, and not counted; one in a
// PostgreSQL schema, selected with --postgres, is counted apart as not
// checked), and migrate refuses a tenant file truncated to nothing.
func TestVerifyCountsWhatItChecked(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	for _, n := range []tenants.NewTenant{{Slug: "file"}, {Slug: "flat", Strategy: silo.StrategyShared}} {
		if _, _, err := e.tenants.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	drifts, checked, skipped, err := e.fleet.Verify(ctx, fleet.Options{})
	if err != nil || len(drifts) != 0 || checked != 1 || skipped != 0 {
		t.Fatalf("verify: %v, %d checked, %d skipped, %v; want 1 and 0", drifts, checked, skipped, err)
	}
	// Migrating a file truncated to nothing would make it an empty tenant.
	tn, err := e.catalog.TenantBySlug(ctx, "file")
	if err != nil {
		t.Fatal(err)
	}
	e.open(t, tn.ID).Close()
	p, _ := e.store.Path(tn.ID)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(p + "-wal")
	res, err := e.fleet.Migrate(ctx, fleet.Options{ContinueOnError: true})
	if len(res.Failed) != 1 || !errors.Is(res.Failed[0].Err, sqlite.ErrNoSchema) {
		t.Fatalf("migrate of an emptied file: %+v, %v; want it failed (no schema)", res, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Fatalf("the emptied file was written: %v", err)
	}
}
