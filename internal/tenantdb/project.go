package tenantdb

import (
	"context"
	"database/sql"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
)

// ProjectService reads and writes the projects of the tenant in the context.
type ProjectService struct{ store *Store }

// NewProjectService returns a ProjectService over store.
func NewProjectService(store *Store) *ProjectService { return &ProjectService{store: store} }

// CreateProject creates a project; a name taken in this tenant is ECONFLICT.
func (s *ProjectService) CreateProject(ctx context.Context, name string) (*silo.Project, error) {
	name, err := silo.CleanText(name, "name", silo.EINVALIDNAME)
	if err != nil {
		return nil, err
	}
	var p *silo.Project
	err = s.store.withWrite(ctx, func(sc *scope) error {
		now := nowMilli()
		row, err := sc.q.CreateProject(ctx, tenantsql.CreateProjectParams{
			ID: silo.NewID(), TenantID: sc.tenantID, Name: name, CreatedAt: now, UpdatedAt: now,
		})
		if sqlite.IsUnique(err) {
			return silo.Errorf(silo.ECONFLICT, "A project named %q exists.", name)
		}
		p = projectFromRow(row)
		return err
	})
	return p, err
}

// Project returns one project, or ENOTFOUND: an id of another tenant is
// indistinguishable from one that never existed.
func (s *ProjectService) Project(ctx context.Context, id string) (*silo.Project, error) {
	var p *silo.Project
	err := s.store.withScope(ctx, func(sc *scope) error {
		row, err := sc.q.GetProject(ctx, tenantsql.GetProjectParams{TenantID: sc.tenantID, ID: id})
		if err != nil {
			return notFound(err, "Project")
		}
		p = projectFromRow(row)
		return nil
	})
	return p, err
}

// Projects returns a page of projects in creation order and the cursor of
// the next page ("" after the last).
func (s *ProjectService) Projects(ctx context.Context, page silo.Page, f silo.ProjectFilter) ([]*silo.Project, string, error) {
	after, limit, err := silo.PageArgs(page)
	if err != nil {
		return nil, "", err
	}
	var out []*silo.Project
	var next string
	err = s.store.withScope(ctx, func(sc *scope) error {
		arg := tenantsql.ListProjectsParams{TenantID: sc.tenantID, After: after, Limit: limit + 1}
		if f.Archived != nil {
			arg.Archived = boolInt(*f.Archived)
		}
		rows, err := sc.q.ListProjects(ctx, arg)
		if err != nil {
			return err
		}
		if int64(len(rows)) > limit {
			rows = rows[:limit]
			next = silo.EncodeCursor(rows[len(rows)-1].ID)
		}
		out = make([]*silo.Project, len(rows))
		for i, r := range rows {
			out[i] = projectFromRow(r)
		}
		return nil
	})
	return out, next, err
}

// UpdateProject applies upd to a project.
func (s *ProjectService) UpdateProject(ctx context.Context, id string, upd silo.ProjectUpdate) (*silo.Project, error) {
	arg := tenantsql.UpdateProjectParams{ID: id, UpdatedAt: nowMilli()}
	if upd.Name != nil {
		name, err := silo.CleanText(*upd.Name, "name", silo.EINVALIDNAME)
		if err != nil {
			return nil, err
		}
		arg.Name = sql.NullString{String: name, Valid: true}
	}
	if upd.Archived != nil {
		arg.Archived = sql.NullInt64{Int64: boolInt(*upd.Archived), Valid: true}
	}
	var p *silo.Project
	err := s.store.withWrite(ctx, func(sc *scope) error {
		arg.TenantID = sc.tenantID
		row, err := sc.q.UpdateProject(ctx, arg)
		if sqlite.IsUnique(err) {
			return silo.Errorf(silo.ECONFLICT, "A project named %q exists.", arg.Name.String)
		} else if err != nil {
			return notFound(err, "Project")
		}
		p = projectFromRow(row)
		return nil
	})
	return p, err
}

// DeleteProject deletes a project and its tasks.
func (s *ProjectService) DeleteProject(ctx context.Context, id string) error {
	return s.store.withDelete(ctx, func(sc *scope) error {
		n, err := sc.q.DeleteProject(ctx, tenantsql.DeleteProjectParams{TenantID: sc.tenantID, ID: id})
		if err != nil {
			return err
		} else if n == 0 {
			return silo.Errorf(silo.ENOTFOUND, "Project not found.")
		}
		return nil
	})
}

func projectFromRow(r tenantsql.Project) *silo.Project {
	return &silo.Project{ID: r.ID, Name: r.Name, Archived: r.Archived != 0, CreatedAt: fromMilli(r.CreatedAt), UpdatedAt: fromMilli(r.UpdatedAt)}
}

// notFound says what (capitalized: "Project") was not found; other errors
// pass through.
func notFound(err error, what string) error {
	if silo.ErrorCode(sqlite.FormatError(err)) == silo.ENOTFOUND {
		return silo.Errorf(silo.ENOTFOUND, "%s not found.", what)
	}
	return err
}
