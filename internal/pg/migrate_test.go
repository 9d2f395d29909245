package pg

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/schema"
)

// TestMigrateSchemaTenant: provisioning is idempotent, and a schema goes
// down and back up keeping its rows.
func TestMigrateSchemaTenant(t *testing.T) {
	env := mustEnv(t, Config{})
	ctx := env.tenant(t, StrategySchema)
	id := tenantOf(ctx).ID
	bg := context.Background()
	if v, err := env.e.SchemaVersion(bg, id); err != nil || v != env.e.Latest() || v < 2 {
		t.Fatalf("version after signup: %d, %v; latest %d", v, err, env.e.Latest())
	}
	if err := env.e.CreateSchemaTenant(bg, id); err != nil {
		t.Fatalf("provisioning twice: %v", err)
	}
	p := must(env.projects.CreateProject(ctx, "kept"))(t)

	if from, to, err := env.e.MigrateSchemaTenant(bg, id, 1); err != nil || from != 2 || to != 1 {
		t.Fatalf("down to 1: %d → %d, %v", from, to, err)
	}
	if _, err := env.projects.Project(ctx, p.ID); silo.ErrorCode(err) != silo.EINTERNAL {
		t.Fatalf("a schema behind the queries answers %v, want an internal error", err)
	}
	if from, to, err := env.e.MigrateSchemaTenant(bg, id, env.e.Latest()); err != nil || from != 1 || to != env.e.Latest() {
		t.Fatalf("up again: %d → %d, %v", from, to, err)
	}
	if got := must(env.projects.Project(ctx, p.ID))(t); got.Name != "kept" || got.Archived {
		t.Fatalf("after down and up: %+v", got)
	}
	if _, _, err := env.e.MigrateSchemaTenant(bg, id, 99); err == nil {
		t.Fatal("migrating to an unknown version succeeded")
	}
	if v, err := env.e.SchemaVersion(bg, silo.TenantID(newID())); err != nil || v != 0 {
		t.Fatalf("version of a missing schema: %d, %v", v, err)
	}
}

// TestMigrationFiles: both sets parse, and the shared set has the tenant
// set's versions, so a version means the same columns in both placements.
func TestMigrationFiles(t *testing.T) {
	tenant, err := parseMigrations(schema.PostgresTenant())
	if err != nil {
		t.Fatal(err)
	}
	shared, err := parseMigrations(schema.PostgresShared())
	if err != nil {
		t.Fatal(err)
	}
	if len(tenant) != len(shared) {
		t.Fatalf("%d tenant migrations, %d shared", len(tenant), len(shared))
	}
	for i := range tenant {
		if tenant[i].Version != shared[i].Version || tenant[i].Down == "" || shared[i].Down == "" {
			t.Fatalf("migration %d: tenant %+v, shared %+v", i, tenant[i].Name, shared[i].Name)
		}
	}
	for name, src := range map[string]string{
		"1_x.sql":    "CREATE TABLE x ();",
		"x_y.sql":    "-- +goose Up\nSELECT 1;",
		"0001_a.sql": "-- +goose Up\n-- +goose NO TRANSACTION\nSELECT 1;",
	} {
		if _, err := parseMigrations(fstest.MapFS{name: {Data: []byte(src)}}); err == nil {
			t.Errorf("%s %q parsed", name, src)
		}
	}
}
