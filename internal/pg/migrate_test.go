package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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
	// The catalog records the version `silo migrate down` left, and the
	// request is refused as for a SQLite file behind (it used to reach the
	// queries and answer 500).
	behind := *tenantOf(ctx)
	behind.SchemaVersion = 1
	bctx := silo.NewContextWithTenant(bg, &behind)
	if _, err := env.projects.Project(bctx, p.ID); silo.ErrorCode(err) != silo.ETENANTMIGRATING {
		t.Fatalf("a schema the catalog knows is behind answers %v, want tenant_migrating", err)
	}
	if from, to, err := env.e.MigrateSchemaTenant(bg, id, env.e.Latest()); err != nil || from != 1 || to != env.e.Latest() {
		t.Fatalf("up again: %d → %d, %v", from, to, err)
	}
	if got := must(env.projects.Project(ctx, p.ID))(t); got.Name != "kept" || got.Archived {
		t.Fatalf("after down and up: %+v", got)
	}
	// The catalog lags until the next read of it; the schema itself says.
	if got, err := env.projects.Project(bctx, p.ID); err != nil || got.Name != "kept" {
		t.Fatalf("upgraded schema, catalog behind: %v %v", got, err)
	}
	if _, _, err := env.e.MigrateSchemaTenant(bg, id, 99); err == nil {
		t.Fatal("migrating to an unknown version succeeded")
	}
	if v, err := env.e.SchemaVersion(bg, silo.TenantID(silo.NewID())); err != nil || v != 0 {
		t.Fatalf("version of a missing schema: %d, %v", v, err)
	}
	// Migrating never makes a schema: `silo migrate` beside a server used
	// to give a tenant that had just moved out of its schema a new, empty
	// one.
	gone := silo.TenantID(silo.NewID())
	if _, _, err := env.e.MigrateSchemaTenant(bg, gone, env.e.Latest()); !errors.Is(err, ErrSchemaMissing) {
		t.Fatalf("migrating a tenant without a schema: %v, want ErrSchemaMissing", err)
	}
	if v, err := env.e.SchemaVersion(bg, gone); err != nil || v != 0 {
		t.Fatalf("the migration made a schema (version %d, %v)", v, err)
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

// TestUnreachableIs503: PostgreSQL down (here: nothing listening) is a
// retryable 503, not a 500.
func TestUnreachableIs503(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := pgconn.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("connected to port 1")
	}
	if got := formatError(fmt.Errorf("begin: %w", err)); silo.ErrorCode(got) != silo.EUNAVAILABLE {
		t.Fatalf("connection refused: %v, want unavailable", got)
	}
	if got := formatError(&pgconn.PgError{Code: "57P01"}); silo.ErrorCode(got) != silo.EUNAVAILABLE {
		t.Fatalf("admin shutdown: %v", got)
	}
	if got := formatError(&pgconn.PgError{Code: "42703"}); silo.ErrorCode(got) != silo.EINTERNAL {
		t.Fatalf("undefined column: %v, want internal", got)
	}
}

// TestOpenRefusesUnpreparedDatabase: without Setup (--postgres-admin) the
// app role has no pgshared tables; the server used to start and answer 500
// to everything PostgreSQL. Open says what to do instead.
func TestOpenRefusesUnpreparedDatabase(t *testing.T) {
	env := mustEnv(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, env.appURL, Config{SharedSchema: env.shared + "_never_set_up"})
	if err == nil {
		e.Close()
		t.Fatal("opened a database whose pgshared tables were never set up")
	}
	if !strings.Contains(err.Error(), "--postgres-admin") {
		t.Fatalf("error does not say what to do: %v", err)
	}
}
