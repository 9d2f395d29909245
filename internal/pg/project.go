package pg

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/silohq/silo/internal/pg/pgsql"
	"github.com/silohq/silo/internal/silo"
)

// ProjectService reads and writes the projects of the tenant in the
// context, in either PostgreSQL placement. It has the method set of
// server.ProjectService and answers with the same codes as tenantdb's.
type ProjectService struct{ e *Engine }

// NewProjectService returns a ProjectService over e.
func NewProjectService(e *Engine) *ProjectService { return &ProjectService{e: e} }

// CreateProject creates a project; a name taken in this tenant is ECONFLICT.
func (s *ProjectService) CreateProject(ctx context.Context, name string) (*silo.Project, error) {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	name, err := silo.CleanText(name, "name", silo.EINVALIDNAME)
	if err != nil {
		return nil, err
	}
	var p *silo.Project
	err = s.e.withScope(ctx, func(sc *scope) error {
		now := nowMilli()
		row, err := sc.q.CreateProject(ctx, pgsql.CreateProjectParams{
			ID: silo.NewID(), TenantID: sc.tenantID, Name: name, CreatedAt: now, UpdatedAt: now,
		})
		if isUnique(err) {
			return silo.Errorf(silo.ECONFLICT, "A project named %q exists.", name)
		} else if err != nil {
			return err
		}
		p = projectFromRow(row)
		return nil
	})
	return p, err
}

// Project returns one project, or ENOTFOUND: an id of another tenant is
// indistinguishable from one that never existed.
func (s *ProjectService) Project(ctx context.Context, id string) (*silo.Project, error) {
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	var p *silo.Project
	err := s.e.withScope(ctx, func(sc *scope) error {
		row, err := sc.q.GetProject(ctx, pgsql.GetProjectParams{TenantID: sc.tenantID, ID: id})
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
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	after, limit, err := pageArgs(page)
	if err != nil {
		return nil, "", err
	}
	var out []*silo.Project
	var next string
	err = s.e.withScope(ctx, func(sc *scope) error {
		arg := pgsql.ListProjectsParams{TenantID: sc.tenantID, After: after, MaxRows: limit + 1}
		if f.Archived != nil {
			arg.Archived = pgtype.Bool{Bool: *f.Archived, Valid: true}
		}
		rows, err := sc.q.ListProjects(ctx, arg)
		if err != nil {
			return err
		}
		if len(rows) > int(limit) {
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
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	arg := pgsql.UpdateProjectParams{ID: id, UpdatedAt: nowMilli()}
	if upd.Name != nil {
		name, err := silo.CleanText(*upd.Name, "name", silo.EINVALIDNAME)
		if err != nil {
			return nil, err
		}
		arg.Name = pgtype.Text{String: name, Valid: true}
	}
	if upd.Archived != nil {
		arg.Archived = pgtype.Bool{Bool: *upd.Archived, Valid: true}
	}
	var p *silo.Project
	err := s.e.withScope(ctx, func(sc *scope) error {
		arg.TenantID = sc.tenantID
		row, err := sc.q.UpdateProject(ctx, arg)
		if isUnique(err) {
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
	ctx, cancel := s.e.bound(ctx)
	defer cancel()
	return s.e.withScope(ctx, func(sc *scope) error {
		n, err := sc.q.DeleteProject(ctx, pgsql.DeleteProjectParams{TenantID: sc.tenantID, ID: id})
		if err != nil {
			return err
		} else if n == 0 {
			return silo.Errorf(silo.ENOTFOUND, "Project not found.")
		}
		return nil
	})
}

func projectFromRow(r pgsql.Project) *silo.Project {
	return &silo.Project{ID: r.ID, Name: r.Name, Archived: r.Archived, CreatedAt: fromMilli(r.CreatedAt), UpdatedAt: fromMilli(r.UpdatedAt)}
}

// notFound says what (capitalized: "Project") was not found; other errors
// pass through.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return silo.Errorf(silo.ENOTFOUND, "%s not found.", what)
	}
	return err
}
