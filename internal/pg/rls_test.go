package pg

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/silohq/silo/internal/silo"
)

// TestRLS proves that in the shared tables a query that forgot its tenant
// filter still sees and touches only the tenant set in the transaction, and
// nothing when none is set, for the app role.
func TestRLS(t *testing.T) {
	env := mustEnv(t, Config{})
	ctx := context.Background()
	a, b := env.tenant(t, StrategyPGShared), env.tenant(t, StrategyPGShared)
	for _, c := range []struct {
		ctx context.Context
		n   int
	}{{a, 3}, {b, 2}} {
		for j := range c.n {
			p := must(env.projects.CreateProject(c.ctx, "p"+string(rune('a'+j))))(t)
			must(env.tasks.CreateTask(c.ctx, p.ID, silo.NewTask{Title: "t"}))(t)
		}
	}
	aID, bID := string(tenantOf(a).ID), string(tenantOf(b).ID)
	projects := pgx.Identifier{env.shared, "projects"}.Sanitize()
	tasks := pgx.Identifier{env.shared, "tasks"}.Sanitize()

	// asApp runs fn in a transaction of the app role's pool with
	// app.tenant_id set to tenant ("" leaves it unset) and rolls back.
	asApp := func(tenant string, fn func(tx pgx.Tx)) {
		t.Helper()
		tx, err := env.e.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if tenant != "" {
			if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenant); err != nil {
				t.Fatal(err)
			}
		}
		fn(tx)
	}
	count := func(tx pgx.Tx, table string) int {
		t.Helper()
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The rows exist: the superuser (which bypasses RLS) sees all five.
	var n int
	if err := env.admin.QueryRow(ctx, "SELECT count(*) FROM "+projects+" WHERE tenant_id IN ($1, $2)", aID, bID).Scan(&n); err != nil || n != 5 {
		t.Fatalf("admin sees %d projects (%v), want 5", n, err)
	}
	asApp(aID, func(tx pgx.Tx) {
		if p, k := count(tx, projects), count(tx, tasks); p != 3 || k != 3 {
			t.Fatalf("unfiltered count as A: %d projects, %d tasks; want 3, 3", p, k)
		}
	})
	asApp(bID, func(tx pgx.Tx) {
		if p, k := count(tx, projects), count(tx, tasks); p != 2 || k != 2 {
			t.Fatalf("unfiltered count as B: %d projects, %d tasks; want 2, 2", p, k)
		}
	})
	asApp("", func(tx pgx.Tx) {
		if p, k := count(tx, projects), count(tx, tasks); p != 0 || k != 0 {
			t.Fatalf("unfiltered count with no tenant set: %d projects, %d tasks; want 0", p, k)
		}
	})
	asApp(silo.NewID(), func(tx pgx.Tx) {
		if p := count(tx, projects); p != 0 {
			t.Fatalf("unfiltered count as an unknown tenant: %d", p)
		}
	})

	// Writes without a filter reach only the current tenant's rows.
	asApp(bID, func(tx pgx.Tx) {
		tag, err := tx.Exec(ctx, "UPDATE "+projects+" SET name = name || ' (pwned)'")
		if err != nil || tag.RowsAffected() != 2 {
			t.Fatalf("unfiltered UPDATE as B: %v rows, %v; want 2", tag.RowsAffected(), err)
		}
		tag, err = tx.Exec(ctx, "DELETE FROM "+tasks)
		if err != nil || tag.RowsAffected() != 2 {
			t.Fatalf("unfiltered DELETE as B: %v rows, %v; want 2", tag.RowsAffected(), err)
		}
	})
	// Nor can B write a row in A's name (WITH CHECK), nor re-key its own.
	asApp(bID, func(tx pgx.Tx) {
		_, err := tx.Exec(ctx, "INSERT INTO "+projects+" (id, tenant_id, name, created_at, updated_at) VALUES ($1, $2, 'x', 0, 0)", silo.NewID(), aID)
		if pgCode(err) != "42501" {
			t.Fatalf("B inserts a row of A: %v, want a row-level security violation", err)
		}
	})
	asApp(bID, func(tx pgx.Tx) {
		_, err := tx.Exec(ctx, "UPDATE "+projects+" SET tenant_id = $1", aID)
		if pgCode(err) != "42501" {
			t.Fatalf("B moves its rows to A: %v, want a row-level security violation", err)
		}
	})
	// The app role does not own the tables, so it cannot lift the policies.
	for _, stmt := range []string{
		"ALTER TABLE " + projects + " DISABLE ROW LEVEL SECURITY",
		"ALTER TABLE " + projects + " NO FORCE ROW LEVEL SECURITY",
		"DROP POLICY tenant_isolation ON " + projects,
	} {
		asApp(bID, func(tx pgx.Tx) {
			if _, err := tx.Exec(ctx, stmt); pgCode(err) != "42501" {
				t.Fatalf("app role: %s: %v, want insufficient privilege", stmt, err)
			}
		})
	}
	// A's rows are untouched.
	list, _, err := env.projects.Projects(a, silo.Page{}, silo.ProjectFilter{})
	if err != nil || len(list) != 3 || list[0].Name != "pa" {
		t.Fatalf("A after B's attempts: %+v, %v", list, err)
	}
}

// TestOpenRefusesBypass: connecting as a role that RLS does not bind is an
// error, not a silently open wall.
func TestOpenRefusesBypass(t *testing.T) {
	env := mustEnv(t, Config{})
	if e, err := Open(context.Background(), env.adminURL, env.cfg); err == nil {
		e.Close()
		t.Fatal("Open as a superuser succeeded")
	}
	if err := Setup(context.Background(), env.adminURL, "silo_no_such_role_"+randomHex(t, 4), env.cfg); err == nil {
		t.Fatal("Setup for a missing role succeeded")
	}
	// Nor as the tables' owner, which could lift the policies.
	if _, err := env.admin.Exec(context.Background(), "ALTER TABLE "+pgx.Identifier{env.shared, "tasks"}.Sanitize()+" OWNER TO "+pgx.Identifier{env.role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if e, err := Open(context.Background(), env.appURL, env.cfg); err == nil {
		e.Close()
		t.Fatal("Open as the owner of a shared table succeeded")
	}
	if _, err := env.admin.Exec(context.Background(), "ALTER TABLE "+pgx.Identifier{env.shared, "tasks"}.Sanitize()+" OWNER TO CURRENT_USER"); err != nil {
		t.Fatal(err)
	}
	// Setup is idempotent.
	if err := Setup(context.Background(), env.adminURL, env.role, env.cfg); err != nil {
		t.Fatal(err)
	}
}
