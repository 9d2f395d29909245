package pg

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/silohq/silo/internal/pg/pgsql"
	"github.com/silohq/silo/internal/silo"
)

// TaskService reads and writes the tasks of the tenant in the context, in
// either PostgreSQL placement. It has the method set of server.TaskService.
type TaskService struct{ e *Engine }

// NewTaskService returns a TaskService over e.
func NewTaskService(e *Engine) *TaskService { return &TaskService{e: e} }

// CreateTask adds a task to a project of this tenant.
func (s *TaskService) CreateTask(ctx context.Context, projectID string, nt silo.NewTask) (*silo.Task, error) {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	title, err := silo.CleanText(nt.Title, "title", silo.EINVALIDTITLE)
	if err != nil {
		return nil, err
	}
	var t *silo.Task
	err = s.e.withScope(ctx, func(sc *scope) error {
		// The project must be this tenant's. The composite foreign key
		// (tenant_id, project_id) would refuse another tenant's project
		// too, but as a constraint error; this answers ENOTFOUND.
		if _, err := sc.q.GetProject(ctx, pgsql.GetProjectParams{TenantID: sc.tenantID, ID: projectID}); err != nil {
			return notFound(err, "Project")
		}
		now := nowMilli()
		row, err := sc.q.CreateTask(ctx, pgsql.CreateTaskParams{
			ID: silo.NewID(), TenantID: sc.tenantID, ProjectID: projectID, Title: title,
			Done: nt.Done, DueAt: milliOrNull(nt.DueAt), CreatedAt: now, UpdatedAt: now,
		})
		if pgCode(err) == codeForeignKeyViolation {
			// The project was deleted after the check above.
			return silo.Errorf(silo.ENOTFOUND, "Project not found.")
		} else if err != nil {
			return err
		}
		t = taskFromRow(row)
		return nil
	})
	return t, err
}

// Task returns one task, or ENOTFOUND.
func (s *TaskService) Task(ctx context.Context, id string) (*silo.Task, error) {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	var t *silo.Task
	err := s.e.withScope(ctx, func(sc *scope) error {
		row, err := sc.q.GetTask(ctx, pgsql.GetTaskParams{TenantID: sc.tenantID, ID: id})
		if err != nil {
			return notFound(err, "Task")
		}
		t = taskFromRow(row)
		return nil
	})
	return t, err
}

// Tasks returns a page of a project's tasks; an unknown project is ENOTFOUND.
func (s *TaskService) Tasks(ctx context.Context, projectID string, page silo.Page) ([]*silo.Task, string, error) {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	after, limit, err := pageArgs(page)
	if err != nil {
		return nil, "", err
	}
	var out []*silo.Task
	var next string
	err = s.e.withScope(ctx, func(sc *scope) error {
		if _, err := sc.q.GetProject(ctx, pgsql.GetProjectParams{TenantID: sc.tenantID, ID: projectID}); err != nil {
			return notFound(err, "Project")
		}
		rows, err := sc.q.ListTasks(ctx, pgsql.ListTasksParams{TenantID: sc.tenantID, ProjectID: projectID, After: after, MaxRows: limit + 1})
		if err != nil {
			return err
		}
		if len(rows) > int(limit) {
			rows = rows[:limit]
			next = silo.EncodeCursor(rows[len(rows)-1].ID)
		}
		out = make([]*silo.Task, len(rows))
		for i, r := range rows {
			out[i] = taskFromRow(r)
		}
		return nil
	})
	return out, next, err
}

// UpdateTask applies upd to a task.
func (s *TaskService) UpdateTask(ctx context.Context, id string, upd silo.TaskUpdate) (*silo.Task, error) {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	arg := pgsql.UpdateTaskParams{ID: id, UpdatedAt: nowMilli()}
	if upd.Title != nil {
		title, err := silo.CleanText(*upd.Title, "title", silo.EINVALIDTITLE)
		if err != nil {
			return nil, err
		}
		arg.Title = pgtype.Text{String: title, Valid: true}
	}
	if upd.Done != nil {
		arg.Done = pgtype.Bool{Bool: *upd.Done, Valid: true}
	}
	if upd.SetDueAt {
		arg.SetDueAt = true
		arg.DueAt = milliOrNull(upd.DueAt)
	}
	var t *silo.Task
	err := s.e.withScope(ctx, func(sc *scope) error {
		arg.TenantID = sc.tenantID
		row, err := sc.q.UpdateTask(ctx, arg)
		if err != nil {
			return notFound(err, "Task")
		}
		t = taskFromRow(row)
		return nil
	})
	return t, err
}

// DeleteTask deletes a task.
func (s *TaskService) DeleteTask(ctx context.Context, id string) error {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	return s.e.withScope(ctx, func(sc *scope) error {
		n, err := sc.q.DeleteTask(ctx, pgsql.DeleteTaskParams{TenantID: sc.tenantID, ID: id})
		if err != nil {
			return err
		} else if n == 0 {
			return silo.Errorf(silo.ENOTFOUND, "Task not found.")
		}
		return nil
	})
}

func taskFromRow(r pgsql.Task) *silo.Task {
	t := &silo.Task{
		ID: r.ID, ProjectID: r.ProjectID, Title: r.Title, Done: r.Done,
		CreatedAt: fromMilli(r.CreatedAt), UpdatedAt: fromMilli(r.UpdatedAt),
	}
	if r.DueAt.Valid {
		due := fromMilli(r.DueAt.Int64)
		t.DueAt = &due
	}
	return t
}

func milliOrNull(t *time.Time) pgtype.Int8 {
	if t == nil {
		return pgtype.Int8{}
	}
	return pgtype.Int8{Int64: t.UnixMilli(), Valid: true}
}
