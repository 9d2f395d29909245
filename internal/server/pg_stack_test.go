package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/silohq/silo/internal/pg"
)

const pgSkip = "PostgreSQL placements skipped: start PostgreSQL and set SILO_TEST_POSTGRES_URL to a superuser's URL " +
	"(e.g. postgres://silo:silo@127.0.0.1:5432/silo_test?sslmode=disable); .ci/run does this"

// havePostgres reports whether the PostgreSQL placements can be tested.
func havePostgres() bool { return os.Getenv("SILO_TEST_POSTGRES_URL") != "" }

// placements lists the placements to run a table-driven test over: the
// SQLite ones always, the PostgreSQL ones with a server to test against.
func placements(t *testing.T) []string {
	if havePostgres() {
		return []string{"database", "shared", "schema", "pgshared"}
	}
	t.Log(pgSkip)
	return []string{"database", "shared"}
}

// testPostgres gives the test its own app role (not a superuser, not the
// owner of the shared tables) and shared schema, set up as in production
// with pg.Setup, and drops them at the end.
func testPostgres(t *testing.T) *pg.Engine {
	t.Helper()
	adminURL := os.Getenv("SILO_TEST_POSTGRES_URL")
	if adminURL == "" {
		t.Skip(pgSkip)
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	b := make([]byte, 6)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	role, shared, password := "silo_app_srv_"+suffix, "silo_shared_srv_"+suffix, "pw"+suffix
	if _, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, stmt := range []string{
			"DROP SCHEMA IF EXISTS " + pgx.Identifier{shared}.Sanitize() + " CASCADE",
			"DROP OWNED BY " + pgx.Identifier{role}.Sanitize() + " CASCADE",
			"DROP ROLE " + pgx.Identifier{role}.Sanitize(),
		} {
			if _, err := admin.Exec(context.Background(), stmt); err != nil {
				t.Errorf("cleanup %s: %v", stmt, err)
			}
		}
	})
	cfg := pg.Config{SharedSchema: shared}
	if err := pg.Setup(ctx, adminURL, role, cfg); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(adminURL)
	u.User = url.UserPassword(role, password)
	e, err := pg.Open(ctx, u.String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}
