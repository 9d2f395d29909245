package pg

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
)

// TestScenario runs internal/server's API scenario at the service level,
// for each PostgreSQL placement: the answers and codes must be those of
// the SQLite services.
func TestScenario(t *testing.T) {
	env := mustEnv(t, Config{})
	for _, p := range placements {
		t.Run(string(p), func(t *testing.T) { testScenario(t, env, p) })
	}
}

func testScenario(t *testing.T, env *testEnv, p silo.Strategy) {
	ps, ts := env.projects, env.tasks
	acme := env.tenant(t, p)

	// Projects: create, reject bad and duplicate names.
	var ids []string
	for i := range 5 {
		pr := must(ps.CreateProject(acme, fmt.Sprintf("  P%d ", i)))(t)
		if pr.Name != fmt.Sprintf("P%d", i) || pr.ID == "" || pr.Archived || pr.CreatedAt.IsZero() || !pr.CreatedAt.Equal(pr.UpdatedAt) {
			t.Fatalf("create project: %+v", pr)
		}
		ids = append(ids, pr.ID)
	}
	_, err := ps.CreateProject(acme, "P0")
	wantCode(t, err, silo.ECONFLICT, "duplicate name")
	for _, bad := range []string{"", "   ", "a\x01b", strings.Repeat("x", silo.MaxTextLen+1), "\xff"} {
		_, err := ps.CreateProject(acme, bad)
		wantCode(t, err, silo.EINVALIDNAME, fmt.Sprintf("name %q", bad))
	}

	// Paging: 5 projects in pages of 2 take 3 pages, in creation order,
	// with tenantdb's cursors.
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		list, next, err := ps.Projects(acme, silo.Page{Limit: 2, Cursor: cursor}, silo.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range list {
			seen = append(seen, pr.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Fatalf("5 projects in pages of 2 took %d pages", pages+1)
			}
			break
		}
		if after, err := silo.DecodeCursor(next); err != nil || after != list[len(list)-1].ID {
			t.Fatalf("cursor %q decodes to %q, %v", next, after, err)
		}
		cursor = next
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("paging returned %v, want %v", seen, ids)
	}
	if list, next, err := ps.Projects(acme, silo.Page{}, silo.ProjectFilter{}); err != nil || len(list) != 5 || next != "" {
		t.Fatalf("default page: %d projects, next %q, %v", len(list), next, err)
	}
	for _, limit := range []int{-1, silo.MaxPageLimit + 1} {
		_, _, err := ps.Projects(acme, silo.Page{Limit: limit}, silo.ProjectFilter{})
		wantCode(t, err, silo.EINVALIDLIMIT, fmt.Sprintf("limit %d", limit))
	}
	_, _, err = ps.Projects(acme, silo.Page{Cursor: "!!not base64"}, silo.ProjectFilter{})
	wantCode(t, err, silo.EINVALIDCURSOR, "bad cursor")
	_, _, err = ts.Tasks(acme, ids[0], silo.Page{Limit: -5})
	wantCode(t, err, silo.EINVALIDLIMIT, "task limit")

	// Get, patch, rename onto a taken name, archive and filter.
	if pr := must(ps.Project(acme, ids[0]))(t); pr.Name != "P0" {
		t.Fatalf("get: %+v", pr)
	}
	time.Sleep(2 * time.Millisecond) // updated_at has millisecond precision
	apollo := "Apollo"
	pr := must(ps.UpdateProject(acme, ids[0], silo.ProjectUpdate{Name: &apollo}))(t)
	if pr.Name != "Apollo" || !pr.UpdatedAt.After(pr.CreatedAt) {
		t.Fatalf("patch: %+v", pr)
	}
	taken := "P1"
	_, err = ps.UpdateProject(acme, ids[0], silo.ProjectUpdate{Name: &taken})
	wantCode(t, err, silo.ECONFLICT, "patch to a taken name")
	empty := " "
	_, err = ps.UpdateProject(acme, ids[0], silo.ProjectUpdate{Name: &empty})
	wantCode(t, err, silo.EINVALIDNAME, "patch to an empty name")
	yes, no := true, false
	if pr := must(ps.UpdateProject(acme, ids[1], silo.ProjectUpdate{Archived: &yes}))(t); !pr.Archived || pr.Name != "P1" {
		t.Fatalf("archive: %+v", pr)
	}
	if list := projectIDs(t, ps, acme, &yes); strings.Join(list, ",") != ids[1] {
		t.Fatalf("archived=true lists %v, want [%s]", list, ids[1])
	}
	if list := projectIDs(t, ps, acme, &no); len(list) != 4 || strings.Contains(strings.Join(list, ","), ids[1]) {
		t.Fatalf("archived=false lists %v", list)
	}
	_, err = ps.UpdateProject(acme, "nope", silo.ProjectUpdate{Name: &apollo})
	wantCode(t, err, silo.ENOTFOUND, "patch unknown project")

	// Delete.
	if err := ps.DeleteProject(acme, ids[4]); err != nil {
		t.Fatal(err)
	}
	_, err = ps.Project(acme, ids[4])
	wantCode(t, err, silo.ENOTFOUND, "get deleted")
	wantCode(t, ps.DeleteProject(acme, ids[4]), silo.ENOTFOUND, "delete twice")

	// Tasks: create with a due time, patch, clear it, page, delete.
	due := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	task := must(ts.CreateTask(acme, ids[0], silo.NewTask{Title: " launch ", DueAt: &due}))(t)
	if task.ProjectID != ids[0] || task.Title != "launch" || task.Done || task.DueAt == nil || !task.DueAt.Equal(due) {
		t.Fatalf("create task: %+v", task)
	}
	done := true
	if got := must(ts.UpdateTask(acme, task.ID, silo.TaskUpdate{Done: &done}))(t); !got.Done || got.Title != "launch" || got.DueAt == nil || !got.DueAt.Equal(due) {
		t.Fatalf("patch task: %+v", got)
	}
	if got := must(ts.UpdateTask(acme, task.ID, silo.TaskUpdate{SetDueAt: true}))(t); got.DueAt != nil || !got.Done {
		t.Fatalf("clear due: %+v", got)
	}
	later := due.Add(time.Hour)
	if got := must(ts.UpdateTask(acme, task.ID, silo.TaskUpdate{SetDueAt: true, DueAt: &later}))(t); got.DueAt == nil || !got.DueAt.Equal(later) {
		t.Fatalf("set due: %+v", got)
	}
	if got := must(ts.Task(acme, task.ID))(t); got.Title != "launch" || !got.Done {
		t.Fatalf("get task: %+v", got)
	}
	for _, bad := range []string{"", "\x00"} {
		_, err := ts.CreateTask(acme, ids[0], silo.NewTask{Title: bad})
		wantCode(t, err, silo.EINVALIDTITLE, fmt.Sprintf("title %q", bad))
		_, err = ts.UpdateTask(acme, task.ID, silo.TaskUpdate{Title: &bad})
		wantCode(t, err, silo.EINVALIDTITLE, fmt.Sprintf("patch title %q", bad))
	}
	_, err = ts.CreateTask(acme, "nope", silo.NewTask{Title: "x"})
	wantCode(t, err, silo.ENOTFOUND, "task in unknown project")
	_, _, err = ts.Tasks(acme, "nope", silo.Page{})
	wantCode(t, err, silo.ENOTFOUND, "tasks of unknown project")
	_, err = ts.Task(acme, "nope")
	wantCode(t, err, silo.ENOTFOUND, "unknown task")
	_, err = ts.UpdateTask(acme, "nope", silo.TaskUpdate{Done: &done})
	wantCode(t, err, silo.ENOTFOUND, "patch unknown task")

	taskIDs := []string{task.ID}
	for i := range 2 {
		taskIDs = append(taskIDs, must(ts.CreateTask(acme, ids[0], silo.NewTask{Title: fmt.Sprintf("t%d", i), Done: true}))(t).ID)
	}
	var gotTasks []string
	cursor = ""
	for {
		list, next, err := ts.Tasks(acme, ids[0], silo.Page{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list {
			gotTasks = append(gotTasks, tk.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if strings.Join(gotTasks, ",") != strings.Join(taskIDs, ",") {
		t.Fatalf("task paging returned %v, want %v", gotTasks, taskIDs)
	}
	if list, _, err := ts.Tasks(acme, ids[2], silo.Page{}); err != nil || len(list) != 0 {
		t.Fatalf("tasks of an empty project: %v %v", list, err)
	}
	if err := ts.DeleteTask(acme, taskIDs[2]); err != nil {
		t.Fatal(err)
	}
	wantCode(t, ts.DeleteTask(acme, taskIDs[2]), silo.ENOTFOUND, "delete task twice")

	// Deleting a project deletes its tasks.
	if err := ps.DeleteProject(acme, ids[0]); err != nil {
		t.Fatal(err)
	}
	_, err = ts.Task(acme, task.ID)
	wantCode(t, err, silo.ENOTFOUND, "task of a deleted project")

	// Without a tenant nothing runs.
	_, _, err = ps.Projects(context.Background(), silo.Page{}, silo.ProjectFilter{})
	wantCode(t, err, silo.EUNAUTHORIZED, "no tenant")
	_, err = ts.Task(context.Background(), task.ID)
	wantCode(t, err, silo.EUNAUTHORIZED, "no tenant")
}

func projectIDs(tb testing.TB, ps *ProjectService, ctx context.Context, archived *bool) []string {
	tb.Helper()
	list, _, err := ps.Projects(ctx, silo.Page{Limit: silo.MaxPageLimit}, silo.ProjectFilter{Archived: archived})
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.ID
	}
	return out
}
