package pg

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/silohq/silo/internal/pg/pgsql"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
)

// The methods below let tenantdb move a tenant between an SQLite placement
// and a PostgreSQL one. Rows travel in tenantsql's types, the SQLite
// shape (booleans as 0/1); both sides are hashed in that shape, so a copy
// that converts anything wrongly fails verification.

func scoped(ctx context.Context, id silo.TenantID, p silo.Strategy) context.Context {
	return silo.NewContextWithTenant(ctx, &silo.Tenant{ID: id, Strategy: p})
}

// Prepare creates what placement p needs before rows arrive: the tenant's
// schema for `schema`, nothing for `pgshared`.
func (e *Engine) Prepare(ctx context.Context, id silo.TenantID, p silo.Strategy) error {
	if p == StrategySchema {
		return e.CreateSchemaTenant(ctx, id)
	}
	return nil
}

// Size estimates the bytes of a tenant's rows in placement p, as
// tenantdb's Store.Size does for shared.db.
func (e *Engine) Size(ctx context.Context, id silo.TenantID, p silo.Strategy) (int64, error) {
	ctx, cancel := e.bound(ctx)
	defer cancel()
	var n int64
	err := e.withScope(scoped(ctx, id, p), func(sc *scope) error {
		row, err := sc.q.TenantSize(ctx, sc.tenantID)
		n = row.Bytes
		return err
	})
	return n, err
}

// Drop is DropTenant.
func (e *Engine) Drop(ctx context.Context, id silo.TenantID, p silo.Strategy) error {
	return e.DropTenant(ctx, id, p)
}

// ReadRows returns every row of a tenant in placement p, from one snapshot.
func (e *Engine) ReadRows(ctx context.Context, id silo.TenantID, p silo.Strategy) ([]tenantsql.Project, []tenantsql.Task, error) {
	var ps []tenantsql.Project
	var ts []tenantsql.Task
	err := e.withScope(scoped(ctx, id, p), func(sc *scope) error {
		rows, err := sc.q.AllProjects(ctx, sc.tenantID)
		if err != nil {
			return err
		}
		for _, r := range rows {
			ps = append(ps, tenantsql.Project{ID: r.ID, TenantID: r.TenantID, Name: r.Name, Archived: b2i(r.Archived), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt})
		}
		trows, err := sc.q.AllTasks(ctx, sc.tenantID)
		if err != nil {
			return err
		}
		for _, r := range trows {
			t := tenantsql.Task{ID: r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, Title: r.Title, Done: b2i(r.Done), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
			t.DueAt.Int64, t.DueAt.Valid = r.DueAt.Int64, r.DueAt.Valid
			ts = append(ts, t)
		}
		return nil
	})
	return ps, ts, err
}

// WriteRows inserts a tenant's rows into placement p in one transaction.
func (e *Engine) WriteRows(ctx context.Context, id silo.TenantID, p silo.Strategy, ps []tenantsql.Project, ts []tenantsql.Task) error {
	return e.withScope(scoped(ctx, id, p), func(sc *scope) error {
		for _, r := range ps {
			if err := sc.q.InsertProjectRow(ctx, pgsql.InsertProjectRowParams{
				ID: r.ID, TenantID: r.TenantID, Name: r.Name, Archived: r.Archived != 0, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			}); err != nil {
				return err
			}
		}
		for _, r := range ts {
			if err := sc.q.InsertTaskRow(ctx, pgsql.InsertTaskRowParams{
				ID: r.ID, TenantID: r.TenantID, ProjectID: r.ProjectID, Title: r.Title, Done: r.Done != 0,
				DueAt: pgtype.Int8{Int64: r.DueAt.Int64, Valid: r.DueAt.Valid}, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// SchemaTenants lists the tenants that have a schema of their own, from the
// schema names (for the cleanup after an interrupted move).
func (e *Engine) SchemaTenants(ctx context.Context) ([]silo.TenantID, error) {
	pool, err := e.db()
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\_%'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []silo.TenantID
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, silo.TenantID(strings.TrimPrefix(name, "tenant_")))
	}
	return out, rows.Err()
}
