package pg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
)

// The services must fit the HTTP layer's interfaces.
var (
	_ server.ProjectService = (*ProjectService)(nil)
	_ server.TaskService    = (*TaskService)(nil)
)

const skipMessage = "PostgreSQL tests skipped: start PostgreSQL and set " +
	"SILO_TEST_POSTGRES_URL=postgres://USER:PASSWORD@127.0.0.1:5432/DB?sslmode=disable " +
	"(a superuser, e.g. `CREATE ROLE silo LOGIN SUPERUSER PASSWORD 'silo'` and `createdb -O silo silo_test`; .ci/run does this)"

// testEnv is one test's slice of a real PostgreSQL: its own app role, its
// own shared schema and its own tenants, all dropped at the end.
type testEnv struct {
	admin    *pgxpool.Pool // the superuser from SILO_TEST_POSTGRES_URL
	adminURL string
	appURL   string
	role     string
	shared   string // unquoted shared schema
	cfg      Config
	e        *Engine
	projects *ProjectService
	tasks    *TaskService
}

// mustEnv creates an app role, runs Setup for a fresh shared schema and
// opens an Engine as that role.
func mustEnv(tb testing.TB, cfg Config) *testEnv {
	tb.Helper()
	adminURL := os.Getenv("SILO_TEST_POSTGRES_URL")
	if adminURL == "" {
		tb.Skip(skipMessage)
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(admin.Close)
	suffix := randomHex(tb, 6)
	env := &testEnv{admin: admin, adminURL: adminURL, role: "silo_app_test_" + suffix, shared: "silo_shared_test_" + suffix}
	password := randomHex(tb, 12)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{env.role}.Sanitize()+" LOGIN PASSWORD '"+password+"'"); err != nil {
		tb.Fatalf("create app role (SILO_TEST_POSTGRES_URL must name a superuser): %v", err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		for _, stmt := range []string{
			"DROP SCHEMA IF EXISTS " + pgx.Identifier{env.shared}.Sanitize() + " CASCADE",
			// Drops the tenants' schemas the role created, and its grants.
			"DROP OWNED BY " + pgx.Identifier{env.role}.Sanitize() + " CASCADE",
			"DROP ROLE " + pgx.Identifier{env.role}.Sanitize(),
		} {
			if _, err := admin.Exec(ctx, stmt); err != nil {
				tb.Errorf("cleanup: %s: %v", stmt, err)
			}
		}
	})
	cfg.SharedSchema = env.shared
	env.cfg = cfg
	if err := Setup(ctx, adminURL, env.role, cfg); err != nil {
		tb.Fatal(err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		tb.Fatalf("SILO_TEST_POSTGRES_URL must be a postgres:// URL: %v", err)
	}
	u.User = url.UserPassword(env.role, password)
	env.appURL = u.String()
	env.e, err = Open(ctx, env.appURL, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(env.e.Close)
	env.projects, env.tasks = NewProjectService(env.e), NewTaskService(env.e)
	return env
}

// tenant provisions a new tenant in placement p and returns a context
// carrying it, as the server's resolver would.
func (env *testEnv) tenant(tb testing.TB, p silo.Strategy) context.Context {
	tb.Helper()
	t := &silo.Tenant{ID: silo.TenantID(silo.NewID()), Slug: "t" + randomHex(tb, 4), Strategy: p, Status: silo.TenantActive}
	if p == StrategySchema {
		if err := env.e.CreateSchemaTenant(context.Background(), t.ID); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		if err := env.e.DropTenant(context.Background(), t.ID, p); err != nil {
			tb.Errorf("drop tenant: %v", err)
		}
	})
	return silo.NewContextWithTenant(context.Background(), t)
}

func tenantOf(ctx context.Context) *silo.Tenant { return silo.TenantFromContext(ctx) }

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// wantCode fails unless err carries code.
func wantCode(tb testing.TB, err error, code, what string) {
	tb.Helper()
	if got := silo.ErrorCode(err); got != code {
		tb.Fatalf("%s: code %q (%v), want %q", what, got, err, code)
	}
}

// must(f())(t) returns f's value, failing t on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

var placements = []silo.Strategy{StrategySchema, StrategyPGShared}

func TestMethodSetsMatchServer(t *testing.T) {
	for _, c := range []struct{ iface, impl reflect.Type }{
		{reflect.TypeFor[server.ProjectService](), reflect.TypeFor[*ProjectService]()},
		{reflect.TypeFor[server.TaskService](), reflect.TypeFor[*TaskService]()},
	} {
		var want, got []string
		for i := range c.iface.NumMethod() {
			want = append(want, c.iface.Method(i).Name)
		}
		for i := range c.impl.NumMethod() {
			got = append(got, c.impl.Method(i).Name)
		}
		sort.Strings(want)
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s has methods %v, want exactly %v", c.impl, got, want)
		}
	}
}

func TestSchemaName(t *testing.T) {
	id := silo.TenantID(silo.NewID())
	name, err := SchemaName(id)
	if err != nil || name != "tenant_"+string(id) || len(name) > 63 {
		t.Fatalf("SchemaName(%q) = %q, %v", id, name, err)
	}
	for _, bad := range []silo.TenantID{"", "A", "x\"; DROP SCHEMA public; --", "a/b", silo.TenantID(make([]byte, 57))} {
		if _, err := SchemaName(bad); silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
			t.Errorf("SchemaName(%q): %v, want tenant_not_found", bad, err)
		}
	}
}
