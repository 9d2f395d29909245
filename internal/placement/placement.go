// Package placement routes each request's data access to the engine of the
// tenant's placement: SQLite (its own file, or shared.db) or PostgreSQL (its
// own schema, or shared tables under Row-Level Security). Both engines
// offer the same services, so the HTTP layer cannot tell them apart.
package placement

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/silohq/silo/internal/silo"
)

// The services every engine offers.
type (
	ProjectService = silo.ProjectService
	TaskService    = silo.TaskService
)

// Admitter admits requests to tenants, as the SQLite store does: it knows
// a placement that a move changed, and holds requests while a move runs.
type Admitter interface {
	Admit(ctx context.Context, t *silo.Tenant) (silo.Strategy, func(), error)
}

// route picks the engine of the tenant in ctx. For PostgreSQL it admits the
// request first (so a move can hold and drain it) and returns a context
// whose tenant carries the placement as of admission; done must be called.
func route[S any](ctx context.Context, adm Admitter, sqlite, pg S, hasPG bool) (S, context.Context, func(), error) {
	var zero S
	t := silo.TenantFromContext(ctx)
	if t == nil {
		return zero, ctx, nil, silo.Errorf(silo.EUNAUTHORIZED, "No tenant.")
	}
	p, leave, err := adm.Admit(ctx, t)
	if err != nil {
		return zero, ctx, nil, err
	}
	if !p.Postgres() {
		leave() // the SQLite store admits its own requests
		return sqlite, ctx, func() {}, nil
	}
	if !hasPG {
		leave()
		return zero, ctx, nil, silo.Errorf(silo.EUNAVAILABLE, "This tenant lives in PostgreSQL, which this server is not connected to (--postgres).")
	}
	if p != t.Strategy {
		moved := *t
		moved.Strategy = p
		ctx = silo.NewContextWithTenant(ctx, &moved)
	}
	return pg, ctx, leave, nil
}

// Projects routes project calls by placement.
type Projects struct {
	adm        Admitter
	sqlite, pg ProjectService
}

// NewProjects returns a router; pg may be nil.
func NewProjects(adm Admitter, sqlite, pg ProjectService) *Projects {
	return &Projects{adm, sqlite, pg}
}

func (p *Projects) to(ctx context.Context) (ProjectService, context.Context, func(), error) {
	return route(ctx, p.adm, p.sqlite, p.pg, p.pg != nil)
}

// CreateProject routes to the tenant's engine.
func (p *Projects) CreateProject(ctx context.Context, name string) (*silo.Project, error) {
	s, ctx, done, err := p.to(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.CreateProject(ctx, name)
}

// Project routes to the tenant's engine.
func (p *Projects) Project(ctx context.Context, id string) (*silo.Project, error) {
	if !storable(id) {
		return nil, notFound("Project")
	}
	s, ctx, done, err := p.to(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.Project(ctx, id)
}

// Projects routes to the tenant's engine.
func (p *Projects) Projects(ctx context.Context, page silo.Page, f silo.ProjectFilter) ([]*silo.Project, string, error) {
	s, ctx, done, err := p.to(ctx)
	if err != nil {
		return nil, "", err
	}
	defer done()
	return s.Projects(ctx, page, f)
}

// UpdateProject routes to the tenant's engine.
func (p *Projects) UpdateProject(ctx context.Context, id string, upd silo.ProjectUpdate) (*silo.Project, error) {
	if !storable(id) {
		return nil, notFound("Project")
	}
	if upd.Empty() {
		// Nothing to write: answer the row as it is, as a read (a tenant
		// over its quota gets it too, and a missing id 404).
		return p.Project(ctx, id)
	}
	s, ctx, done, err := p.to(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.UpdateProject(ctx, id, upd)
}

// DeleteProject routes to the tenant's engine.
func (p *Projects) DeleteProject(ctx context.Context, id string) error {
	if !storable(id) {
		return notFound("Project")
	}
	s, ctx, done, err := p.to(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.DeleteProject(ctx, id)
}

// Tasks routes task calls by placement.
type Tasks struct {
	adm        Admitter
	sqlite, pg TaskService
}

// NewTasks returns a router; pg may be nil.
func NewTasks(adm Admitter, sqlite, pg TaskService) *Tasks { return &Tasks{adm, sqlite, pg} }

func (t *Tasks) to(ctx context.Context) (TaskService, context.Context, func(), error) {
	return route(ctx, t.adm, t.sqlite, t.pg, t.pg != nil)
}

// CreateTask routes to the tenant's engine.
func (t *Tasks) CreateTask(ctx context.Context, projectID string, nt silo.NewTask) (*silo.Task, error) {
	if !storable(projectID) {
		return nil, notFound("Project")
	}
	s, ctx, done, err := t.to(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.CreateTask(ctx, projectID, nt)
}

// Task routes to the tenant's engine.
func (t *Tasks) Task(ctx context.Context, id string) (*silo.Task, error) {
	if !storable(id) {
		return nil, notFound("Task")
	}
	s, ctx, done, err := t.to(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.Task(ctx, id)
}

// Tasks routes to the tenant's engine.
func (t *Tasks) Tasks(ctx context.Context, projectID string, page silo.Page) ([]*silo.Task, string, error) {
	if !storable(projectID) {
		return nil, "", notFound("Project")
	}
	s, ctx, done, err := t.to(ctx)
	if err != nil {
		return nil, "", err
	}
	defer done()
	return s.Tasks(ctx, projectID, page)
}

// UpdateTask routes to the tenant's engine.
func (t *Tasks) UpdateTask(ctx context.Context, id string, upd silo.TaskUpdate) (*silo.Task, error) {
	if !storable(id) {
		return nil, notFound("Task")
	}
	if upd.Empty() {
		return t.Task(ctx, id) // nothing to write: a read, as for projects
	}
	s, ctx, done, err := t.to(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.UpdateTask(ctx, id, upd)
}

// DeleteTask routes to the tenant's engine.
func (t *Tasks) DeleteTask(ctx context.Context, id string) error {
	if !storable(id) {
		return notFound("Task")
	}
	s, ctx, done, err := t.to(ctx)
	if err != nil {
		return err
	}
	defer done()
	return s.DeleteTask(ctx, id)
}

// storable reports whether an id from a request can reach every engine:
// PostgreSQL's text refuses NUL bytes and invalid UTF-8 with an error,
// where SQLite simply finds nothing. Silo's ids are UUIDs, so such an id
// names nothing, in any placement.
func storable(id string) bool {
	return utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

// notFound is the engines' answer for an id that names nothing.
func notFound(what string) error {
	return silo.Errorf(silo.ENOTFOUND, "%s not found.", what)
}
