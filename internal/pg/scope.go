package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/silohq/silo/internal/pg/pgsql"
	"github.com/silohq/silo/internal/silo"
)

// scope is one request's transaction, bound to the tenant from the request
// context: its search_path and app.tenant_id are that tenant's, and its
// queries carry that tenant's id.
type scope struct {
	tenantID string
	q        *pgsql.Queries
}

// setScope sets both settings for the rest of the transaction only
// (set_config's third argument is SET LOCAL), in one round trip. pg_temp
// goes last so that no temporary table can shadow a tenant's.
const setScope = "SELECT set_config('search_path', $1, true), set_config('" + tenantSetting + "', $2, true)"

// withScope runs fn in a transaction of the tenant in ctx. This is the one
// path from a request to tenant data in PostgreSQL: no query runs without
// the tenant's search_path, app.tenant_id and id.
func (e *Engine) withScope(ctx context.Context, fn func(sc *scope) error) error {
	t := silo.TenantFromContext(ctx)
	if t == nil {
		return silo.Errorf(silo.EUNAUTHORIZED, "No tenant.")
	}
	var path string
	switch t.Strategy {
	case StrategySchema:
		name, err := SchemaName(t.ID)
		if err != nil {
			return err
		}
		if t.SchemaVersion != e.Latest() {
			if err := e.gate(ctx, t.ID); err != nil {
				return err
			}
		}
		path = pgx.Identifier{name}.Sanitize()
	case StrategyPGShared:
		path = e.shared
	default:
		return fmt.Errorf("tenant %s: placement %q is not PostgreSQL's", t.ID, t.Strategy)
	}
	pool, err := e.db()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, setScope, path+", pg_temp", string(t.ID)); err != nil {
			return err
		}
		return fn(&scope{tenantID: string(t.ID), q: pgsql.New(tx)})
	})
	if t.Strategy == StrategySchema && pgCode(err) == codeUndefinedTable {
		// The catalog knows the tenant but its schema is gone (or was
		// never created): as for a missing SQLite file.
		return silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	return formatError(err)
}

// gate checks the schema of a tenant that the catalog says is not at this
// build's version, as tenantdb's gate checks a file: one behind answers
// tenant_migrating (the queries would fail on missing columns) until
// `silo migrate --postgres` upgrades it, one ahead tenant_schema_ahead.
func (e *Engine) gate(ctx context.Context, id silo.TenantID) error {
	if _, ok := e.current.Load(id); ok {
		return nil
	}
	v, err := e.SchemaVersion(ctx, id)
	if err != nil {
		return formatError(err)
	}
	latest := e.Latest()
	switch {
	case v == latest:
		e.current.Store(id, struct{}{})
		return nil
	case v > latest:
		return silo.Errorf(silo.ESCHEMAAHEAD, "The tenant's data is at schema version %d, newer than this server's %d; run a newer silo.", v, latest)
	case v == 0:
		return silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.") // no schema: as in withScope
	}
	return silo.Errorf(silo.ETENANTMIGRATING, "The tenant's schema is at version %d, behind this server's %d; it is served again once `silo migrate --postgres URL` has upgraded it.", v, latest)
}

func nowMilli() int64 { return time.Now().UnixMilli() }

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// pageArgs validates a page exactly as tenantdb does, so a cursor means
// the same on either engine.
func pageArgs(p silo.Page) (after string, limit int32, err error) {
	after, n, err := silo.PageArgs(p)
	return after, int32(n), err
}
