package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgURLs gives the test its own app role and returns its URL and the
// admin's (SILO_TEST_POSTGRES_URL), skipping without PostgreSQL.
func pgURLs(t testing.TB) (app, admin string) {
	t.Helper()
	admin = os.Getenv("SILO_TEST_POSTGRES_URL")
	if admin == "" {
		t.Skip("PostgreSQL tests skipped: set SILO_TEST_POSTGRES_URL to a superuser's URL; .ci/run does this")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b := make([]byte, 5)
	rand.Read(b)
	role := "silo_app_cli_" + hex.EncodeToString(b)
	if _, err := pool.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN PASSWORD 'pw'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP OWNED BY "+pgx.Identifier{role}.Sanitize()+" CASCADE")
		pool.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{role}.Sanitize())
	})
	u, _ := url.Parse(admin)
	u.User = url.UserPassword(role, "pw")
	return u.String(), admin
}

// TestMigrateSchemas: `silo migrate` fans out over PostgreSQL schemas as
// over files, with the same ledger and status, down and up again.
func TestMigrateSchemas(t *testing.T) {
	app, admin := pgURLs(t)
	data := t.TempDir()
	ctx := context.Background()
	silo := func(args ...string) (string, error) {
		var out syncBuffer
		err := run(ctx, append(args, "--data", data, "--postgres", app), noEnv, &out, io.Discard)
		return out.String(), err
	}
	for i := range 5 {
		args := []string{"tenants", "create", fmt.Sprintf("pgs%d", i), "--strategy", "schema"}
		if i == 0 {
			args = append(args, "--postgres-admin", admin) // setup once, as the owner
		}
		if _, err := silo(args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := silo("tenants", "create", "file0"); err != nil {
		t.Fatal(err)
	}
	if out, err := silo("migrate", "down", "--to", "1"); err != nil || !strings.Contains(out, "6 tenants: 6 migrated") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if out, _ := silo("migrate", "status"); !strings.Contains(out, "1        6") {
		t.Fatalf("status after down:\n%s", out)
	}
	if out, err := silo("migrate", "--concurrency", "3"); err != nil || !strings.Contains(out, "6 migrated") {
		t.Fatalf("up: %v\n%s", err, out)
	}
	if out, _ := silo("migrate", "status"); !strings.Contains(out, "2        6") || !strings.Contains(out, "failed: none") {
		t.Fatalf("status after up:\n%s", out)
	}
	// verify compares files; the schemas are counted apart, not passed
	// off as verified (it said "6 tenants verified").
	if out, err := silo("migrate", "verify"); err != nil || !strings.Contains(out, "1 tenants verified") || !strings.Contains(out, "5 not checked") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}
