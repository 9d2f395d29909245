// Package placement routes each request's data access to the engine of the
// tenant's placement: SQLite (its own file, or shared.db) or PostgreSQL (its
// own schema, or shared tables under Row-Level Security). Both engines
// offer the same services, so the HTTP layer cannot tell them apart.
package placement

import (
	"context"

	"github.com/silohq/silo/internal/silo"
)

// ProjectService is the project service every engine offers.
type ProjectService interface {
	CreateProject(ctx context.Context, name string) (*silo.Project, error)
	Project(ctx context.Context, id string) (*silo.Project, error)
	Projects(ctx context.Context, page silo.Page, f silo.ProjectFilter) ([]*silo.Project, string, error)
	UpdateProject(ctx context.Context, id string, upd silo.ProjectUpdate) (*silo.Project, error)
	DeleteProject(ctx context.Context, id string) error
}

// TaskService is the task service every engine offers.
type TaskService interface {
	CreateTask(ctx context.Context, projectID string, nt silo.NewTask) (*silo.Task, error)
	Task(ctx context.Context, id string) (*silo.Task, error)
	Tasks(ctx context.Context, projectID string, page silo.Page) ([]*silo.Task, string, error)
	UpdateTask(ctx context.Context, id string, upd silo.TaskUpdate) (*silo.Task, error)
	DeleteTask(ctx context.Context, id string) error
}

func pick[S any](ctx context.Context, sqlite, pg S, hasPG bool) (S, error) {
	t := silo.TenantFromContext(ctx)
	if t == nil {
		var zero S
		return zero, silo.Errorf(silo.EUNAUTHORIZED, "No tenant.")
	}
	if t.Strategy.Postgres() {
		if !hasPG {
			var zero S
			return zero, silo.Errorf(silo.EUNAVAILABLE, "This tenant lives in PostgreSQL, which this server is not connected to (--postgres).")
		}
		return pg, nil
	}
	return sqlite, nil
}

// Projects routes project calls by placement.
type Projects struct {
	sqlite, pg ProjectService
}

// NewProjects returns a router; pg may be nil.
func NewProjects(sqlite, pg ProjectService) *Projects { return &Projects{sqlite, pg} }

func (p *Projects) to(ctx context.Context) (ProjectService, error) {
	return pick(ctx, p.sqlite, p.pg, p.pg != nil)
}

// CreateProject routes to the tenant's engine.
func (p *Projects) CreateProject(ctx context.Context, name string) (*silo.Project, error) {
	s, err := p.to(ctx)
	if err != nil {
		return nil, err
	}
	return s.CreateProject(ctx, name)
}

// Project routes to the tenant's engine.
func (p *Projects) Project(ctx context.Context, id string) (*silo.Project, error) {
	s, err := p.to(ctx)
	if err != nil {
		return nil, err
	}
	return s.Project(ctx, id)
}

// Projects routes to the tenant's engine.
func (p *Projects) Projects(ctx context.Context, page silo.Page, f silo.ProjectFilter) ([]*silo.Project, string, error) {
	s, err := p.to(ctx)
	if err != nil {
		return nil, "", err
	}
	return s.Projects(ctx, page, f)
}

// UpdateProject routes to the tenant's engine.
func (p *Projects) UpdateProject(ctx context.Context, id string, upd silo.ProjectUpdate) (*silo.Project, error) {
	s, err := p.to(ctx)
	if err != nil {
		return nil, err
	}
	return s.UpdateProject(ctx, id, upd)
}

// DeleteProject routes to the tenant's engine.
func (p *Projects) DeleteProject(ctx context.Context, id string) error {
	s, err := p.to(ctx)
	if err != nil {
		return err
	}
	return s.DeleteProject(ctx, id)
}

// Tasks routes task calls by placement.
type Tasks struct {
	sqlite, pg TaskService
}

// NewTasks returns a router; pg may be nil.
func NewTasks(sqlite, pg TaskService) *Tasks { return &Tasks{sqlite, pg} }

func (t *Tasks) to(ctx context.Context) (TaskService, error) {
	return pick(ctx, t.sqlite, t.pg, t.pg != nil)
}

// CreateTask routes to the tenant's engine.
func (t *Tasks) CreateTask(ctx context.Context, projectID string, nt silo.NewTask) (*silo.Task, error) {
	s, err := t.to(ctx)
	if err != nil {
		return nil, err
	}
	return s.CreateTask(ctx, projectID, nt)
}

// Task routes to the tenant's engine.
func (t *Tasks) Task(ctx context.Context, id string) (*silo.Task, error) {
	s, err := t.to(ctx)
	if err != nil {
		return nil, err
	}
	return s.Task(ctx, id)
}

// Tasks routes to the tenant's engine.
func (t *Tasks) Tasks(ctx context.Context, projectID string, page silo.Page) ([]*silo.Task, string, error) {
	s, err := t.to(ctx)
	if err != nil {
		return nil, "", err
	}
	return s.Tasks(ctx, projectID, page)
}

// UpdateTask routes to the tenant's engine.
func (t *Tasks) UpdateTask(ctx context.Context, id string, upd silo.TaskUpdate) (*silo.Task, error) {
	s, err := t.to(ctx)
	if err != nil {
		return nil, err
	}
	return s.UpdateTask(ctx, id, upd)
}

// DeleteTask routes to the tenant's engine.
func (t *Tasks) DeleteTask(ctx context.Context, id string) error {
	s, err := t.to(ctx)
	if err != nil {
		return err
	}
	return s.DeleteTask(ctx, id)
}
