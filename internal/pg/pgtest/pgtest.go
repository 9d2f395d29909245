// Package pgtest gives tests a real PostgreSQL engine of their own: a fresh
// app role (not a superuser, not the owner of the shared tables) and shared
// schema, set up as in production with pg.Setup and dropped at the end. It
// skips the test when SILO_TEST_POSTGRES_URL is unset.
package pgtest

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

// Skip is the message of a test skipped for want of PostgreSQL.
const Skip = "PostgreSQL tests skipped: start PostgreSQL and set SILO_TEST_POSTGRES_URL to a superuser's URL " +
	"(e.g. postgres://silo:silo@127.0.0.1:5432/silo_test?sslmode=disable); .ci/run does this"

// Available reports whether SILO_TEST_POSTGRES_URL is set.
func Available() bool { return os.Getenv("SILO_TEST_POSTGRES_URL") != "" }

// Engine returns an engine connected as a fresh app role.
func Engine(tb testing.TB) *pg.Engine {
	tb.Helper()
	appURL, cfg := Role(tb)
	e, err := pg.Open(context.Background(), appURL, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Close)
	return e
}

// Role makes a fresh app role and shared schema, set up with pg.Setup, and
// returns the role's URL and the engine settings that go with it.
func Role(tb testing.TB) (appURL string, cfg pg.Config) {
	tb.Helper()
	adminURL := os.Getenv("SILO_TEST_POSTGRES_URL")
	if adminURL == "" {
		tb.Skip(Skip)
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, adminURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(admin.Close)
	b := make([]byte, 6)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	role, shared, password := "silo_app_t_"+suffix, "silo_shared_t_"+suffix, "pw"+suffix
	if _, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD '"+password+"'"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for _, stmt := range []string{
			"DROP SCHEMA IF EXISTS " + pgx.Identifier{shared}.Sanitize() + " CASCADE",
			"DROP OWNED BY " + pgx.Identifier{role}.Sanitize() + " CASCADE",
			"DROP ROLE " + pgx.Identifier{role}.Sanitize(),
		} {
			if _, err := admin.Exec(context.Background(), stmt); err != nil {
				tb.Errorf("cleanup %s: %v", stmt, err)
			}
		}
	})
	cfg = pg.Config{SharedSchema: shared}
	if err := pg.Setup(ctx, adminURL, role, cfg); err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse(adminURL)
	u.User = url.UserPassword(role, password)
	return u.String(), cfg
}
