package tenantdb

import (
	"context"
	"database/sql"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
)

// TaskService reads and writes the tasks of the tenant in the context.
type TaskService struct{ store *Store }

// NewTaskService returns a TaskService over store.
func NewTaskService(store *Store) *TaskService { return &TaskService{store: store} }

// CreateTask adds a task to a project of this tenant.
func (s *TaskService) CreateTask(ctx context.Context, projectID string, nt silo.NewTask) (*silo.Task, error) {
	title, err := silo.CleanText(nt.Title, "title", silo.EINVALIDTITLE)
	if err != nil {
		return nil, err
	}
	var t *silo.Task
	err = s.store.withWrite(ctx, func(sc *scope) error {
		// The project must be this tenant's: the foreign key alone would
		// accept another tenant's project id in a shared file.
		return sc.tx(ctx, func(q *tenantsql.Queries) error {
			if _, err := q.GetProject(ctx, tenantsql.GetProjectParams{TenantID: sc.tenantID, ID: projectID}); err != nil {
				return notFound(err, "Project")
			}
			now := nowMilli()
			row, err := q.CreateTask(ctx, tenantsql.CreateTaskParams{
				ID: silo.NewID(), TenantID: sc.tenantID, ProjectID: projectID, Title: title,
				Done: boolInt(nt.Done), DueAt: milliOrNull(nt.DueAt), CreatedAt: now, UpdatedAt: now,
			})
			t = taskFromRow(row)
			return err
		})
	})
	return t, err
}

// Task returns one task, or ENOTFOUND.
func (s *TaskService) Task(ctx context.Context, id string) (*silo.Task, error) {
	var t *silo.Task
	err := s.store.withScope(ctx, func(sc *scope) error {
		row, err := sc.q.GetTask(ctx, tenantsql.GetTaskParams{TenantID: sc.tenantID, ID: id})
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
	after, limit, err := silo.PageArgs(page)
	if err != nil {
		return nil, "", err
	}
	var out []*silo.Task
	var next string
	err = s.store.withScope(ctx, func(sc *scope) error {
		if _, err := sc.q.GetProject(ctx, tenantsql.GetProjectParams{TenantID: sc.tenantID, ID: projectID}); err != nil {
			return notFound(err, "Project")
		}
		rows, err := sc.q.ListTasks(ctx, tenantsql.ListTasksParams{TenantID: sc.tenantID, ProjectID: projectID, After: after, Limit: limit + 1})
		if err != nil {
			return err
		}
		if int64(len(rows)) > limit {
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
	arg := tenantsql.UpdateTaskParams{ID: id, UpdatedAt: nowMilli()}
	if upd.Title != nil {
		title, err := silo.CleanText(*upd.Title, "title", silo.EINVALIDTITLE)
		if err != nil {
			return nil, err
		}
		arg.Title = sql.NullString{String: title, Valid: true}
	}
	if upd.Done != nil {
		arg.Done = sql.NullInt64{Int64: boolInt(*upd.Done), Valid: true}
	}
	if upd.SetDueAt {
		arg.SetDueAt = sql.NullInt64{Int64: 1, Valid: true}
		arg.DueAt = milliOrNull(upd.DueAt)
	}
	var t *silo.Task
	err := s.store.withWrite(ctx, func(sc *scope) error {
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
	return s.store.withDelete(ctx, func(sc *scope) error {
		n, err := sc.q.DeleteTask(ctx, tenantsql.DeleteTaskParams{TenantID: sc.tenantID, ID: id})
		if err != nil {
			return err
		} else if n == 0 {
			return silo.Errorf(silo.ENOTFOUND, "Task not found.")
		}
		return nil
	})
}

func taskFromRow(r tenantsql.Task) *silo.Task {
	t := &silo.Task{
		ID: r.ID, ProjectID: r.ProjectID, Title: r.Title, Done: r.Done != 0,
		CreatedAt: fromMilli(r.CreatedAt), UpdatedAt: fromMilli(r.UpdatedAt),
	}
	if r.DueAt.Valid {
		due := fromMilli(r.DueAt.Int64)
		t.DueAt = &due
	}
	return t
}

func milliOrNull(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
