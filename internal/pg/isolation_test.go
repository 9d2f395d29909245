package pg

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/silohq/silo/internal/silo"
)

// TestIsolation: two tenants in each placement (and across placements)
// never see, patch or delete each other's ids, and lists never mix.
func TestIsolation(t *testing.T) {
	env := mustEnv(t, Config{})
	type owned struct {
		ctx       context.Context
		name      string
		project   string
		task      string
		projectsN int
	}
	var all []*owned
	for _, p := range placements {
		for i := range 2 {
			ctx := env.tenant(t, p)
			o := &owned{ctx: ctx, name: fmt.Sprintf("%s-%d", p, i), projectsN: 2 + i}
			for j := range o.projectsN {
				// The same names in every tenant: unique per tenant only.
				pr := must(env.projects.CreateProject(ctx, fmt.Sprintf("Apollo %d", j)))(t)
				if j == 0 {
					o.project = pr.ID
				}
			}
			o.task = must(env.tasks.CreateTask(ctx, o.project, silo.NewTask{Title: "secret"}))(t).ID
			all = append(all, o)
		}
	}

	pwned := "pwned"
	yes := true
	for _, a := range all {
		for _, b := range all {
			if a == b {
				continue
			}
			what := func(op string) string { return fmt.Sprintf("%s %s of %s", b.name, op, a.name) }
			_, err := env.projects.Project(b.ctx, a.project)
			wantCode(t, err, silo.ENOTFOUND, what("get project"))
			_, err = env.projects.UpdateProject(b.ctx, a.project, silo.ProjectUpdate{Name: &pwned, Archived: &yes})
			wantCode(t, err, silo.ENOTFOUND, what("patch project"))
			wantCode(t, env.projects.DeleteProject(b.ctx, a.project), silo.ENOTFOUND, what("delete project"))
			_, err = env.tasks.Task(b.ctx, a.task)
			wantCode(t, err, silo.ENOTFOUND, what("get task"))
			_, _, err = env.tasks.Tasks(b.ctx, a.project, silo.Page{})
			wantCode(t, err, silo.ENOTFOUND, what("list tasks"))
			_, err = env.tasks.CreateTask(b.ctx, a.project, silo.NewTask{Title: "x"})
			wantCode(t, err, silo.ENOTFOUND, what("add task"))
			_, err = env.tasks.UpdateTask(b.ctx, a.task, silo.TaskUpdate{Title: &pwned, SetDueAt: true})
			wantCode(t, err, silo.ENOTFOUND, what("patch task"))
			wantCode(t, env.tasks.DeleteTask(b.ctx, a.task), silo.ENOTFOUND, what("delete task"))
		}
	}
	// Lists hold exactly the tenant's own rows, and nothing was changed.
	for _, o := range all {
		list, _, err := env.projects.Projects(o.ctx, silo.Page{}, silo.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != o.projectsN || list[0].ID != o.project || list[0].Name != "Apollo 0" || list[0].Archived {
			t.Fatalf("%s lists %d projects (first %+v), want its own %d", o.name, len(list), list[0], o.projectsN)
		}
		tasks, _, err := env.tasks.Tasks(o.ctx, o.project, silo.Page{})
		if err != nil || len(tasks) != 1 || tasks[0].ID != o.task || tasks[0].Title != "secret" {
			t.Fatalf("%s's tasks: %+v, %v", o.name, tasks, err)
		}
	}

	// A schema tenant's rows are in its own schema, and nowhere else.
	for _, o := range all {
		ten := tenantOf(o.ctx)
		var schemas []string
		rows, err := env.admin.Query(context.Background(),
			`SELECT table_schema FROM information_schema.tables WHERE table_name = 'projects' AND table_schema IN ($1, $2)`,
			"tenant_"+string(ten.ID), env.shared)
		if err != nil {
			t.Fatal(err)
		}
		schemas, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range schemas {
			var n int
			q := "SELECT count(*) FROM " + pgx.Identifier{s, "projects"}.Sanitize() + " WHERE tenant_id = $1"
			if err := env.admin.QueryRow(context.Background(), q, string(ten.ID)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			inShared := s == env.shared
			if want := map[bool]int{true: o.projectsN, false: 0}[(ten.Strategy == StrategyPGShared) == inShared]; n != want {
				t.Fatalf("%s has %d rows in schema %s, want %d", o.name, n, s, want)
			}
		}
	}
}

// TestMissingSchema: a schema tenant whose schema is gone is
// tenant_not_found, as a SQLite tenant whose file is gone.
func TestMissingSchema(t *testing.T) {
	env := mustEnv(t, Config{})
	ten := &silo.Tenant{ID: silo.TenantID(silo.NewID()), Strategy: StrategySchema}
	ctx := silo.NewContextWithTenant(context.Background(), ten)
	_, _, err := env.projects.Projects(ctx, silo.Page{}, silo.ProjectFilter{})
	wantCode(t, err, silo.ETENANTNOTFOUND, "never created")
	_, err = env.projects.CreateProject(ctx, "x")
	wantCode(t, err, silo.ETENANTNOTFOUND, "create in a missing schema")
	bad := silo.NewContextWithTenant(context.Background(), &silo.Tenant{ID: "../etc", Strategy: StrategySchema})
	_, err = env.projects.Project(bad, "x")
	wantCode(t, err, silo.ETENANTNOTFOUND, "malformed id")
	sqlite := silo.NewContextWithTenant(context.Background(), &silo.Tenant{ID: ten.ID, Strategy: silo.StrategyDatabase})
	if _, err := env.projects.Project(sqlite, "x"); silo.ErrorCode(err) != silo.EINTERNAL {
		t.Fatalf("a SQLite tenant on the PostgreSQL engine: %v, want an internal error", err)
	}
}
