// Package catalog is the registry of tenants in data/catalog.db: who they
// are, where their data lives, and the hashes of their API tokens. It is the
// only map from a tenant to its file.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/silohq/silo/internal/catalog/catalogsql"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/schema"
)

// Catalog is the tenant registry.
//
// It keeps two pools on the file: readers, and a single writer connection.
// With one writer, concurrent writes queue in Go instead of in SQLite's busy
// handler, whose sleeps (up to 100 ms each) ruin signup latency under load.
type Catalog struct {
	db  *sql.DB // readers
	q   *catalogsql.Queries
	wdb *sql.DB // the one writer
	wq  *catalogsql.Queries
	now func() time.Time
	// cache of the lookups every request makes; see lookups.go
	cache *lookups
}

// Open opens (creating if needed) the catalog file at path and migrates it.
func Open(ctx context.Context, path string, o sqlite.Options) (*Catalog, error) {
	if o.MaxConns == 0 {
		o.MaxConns = 8
	}
	db, err := sqlite.Open(path, o)
	if err != nil {
		return nil, err
	}
	if err := sqlite.SetWAL(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog: %w", err)
	}
	m, err := sqlite.NewMigrator(schema.Catalog())
	if err != nil {
		db.Close()
		return nil, err
	}
	if _, _, err := m.Migrate(ctx, db, 0); err != nil {
		db.Close()
		return nil, fmt.Errorf("catalog: migrate: %w", err)
	}
	wo := o
	wo.MaxConns = 1
	wdb, err := sqlite.Open(path, wo)
	if err != nil {
		db.Close()
		return nil, err
	}
	cache, err := newLookups(ctx, db)
	if err != nil {
		db.Close()
		wdb.Close()
		return nil, err
	}
	return &Catalog{db: db, q: catalogsql.New(db), wdb: wdb, wq: catalogsql.New(wdb), now: time.Now, cache: cache}, nil
}

// Close closes the catalog.
func (c *Catalog) Close() error { return errors.Join(c.cache.close(), c.wdb.Close(), c.db.Close()) }

// CreateTenant inserts t and its first token hash in one transaction, so a
// tenant never exists without a way in. A taken slug is ESLUGTAKEN.
func (c *Catalog) CreateTenant(ctx context.Context, t *silo.Tenant, tokenName string, tokenHash []byte) error {
	now := c.now()
	t.CreatedAt, t.UpdatedAt = now, now
	tx, err := c.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := c.wq.WithTx(tx)
	_, err = q.CreateTenant(ctx, catalogsql.CreateTenantParams{
		ID: string(t.ID), Slug: t.Slug, Name: t.Name, Strategy: string(t.Strategy),
		Status: t.Status, SchemaVersion: t.SchemaVersion,
		CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli(),
	})
	if sqlite.IsUnique(err) {
		return silo.Errorf(silo.ESLUGTAKEN, "The slug %q is taken.", t.Slug)
	} else if err != nil {
		return err
	}
	if _, err := q.CreateToken(ctx, catalogsql.CreateTokenParams{
		ID: silo.NewID(), TenantID: string(t.ID), Name: tokenName, Hash: tokenHash, CreatedAt: now.UnixMilli(),
	}); err != nil {
		return err
	}
	return sqlite.Commit(ctx, tx)
}

// TenantBySlug returns the active tenant with that slug, or
// ETENANTNOTFOUND. Tenants being created or deleted are not found.
//
// The answer is cached until the catalog next changes (see lookups): the
// returned tenant is shared, and callers must not modify it.
func (c *Catalog) TenantBySlug(ctx context.Context, slug string) (*silo.Tenant, error) {
	gen, err := c.cache.fresh(ctx)
	if err != nil {
		return nil, err
	}
	if t := c.cache.tenant(slug); t != nil {
		return t, nil
	}
	row, err := c.q.GetTenantBySlug(ctx, slug)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && row.Status != silo.TenantActive) {
		return nil, silo.Errorf(silo.ETENANTNOTFOUND, "No tenant %q.", slug)
	} else if err != nil {
		return nil, err
	}
	t := fromRow(row)
	c.cache.putTenant(gen, slug, t)
	return t, nil
}

// TenantBySlugAnyStatus returns the tenant with that slug whatever its
// status: the operator's tools must see half-deleted tenants too.
func (c *Catalog) TenantBySlugAnyStatus(ctx context.Context, slug string) (*silo.Tenant, error) {
	row, err := c.q.GetTenantBySlug(ctx, slug)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, silo.Errorf(silo.ETENANTNOTFOUND, "No tenant %q.", slug)
	} else if err != nil {
		return nil, err
	}
	return fromRow(row), nil
}

// Tenant returns the tenant with that id, whatever its status.
func (c *Catalog) Tenant(ctx context.Context, id silo.TenantID) (*silo.Tenant, error) {
	row, err := c.q.GetTenant(ctx, string(id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, silo.Errorf(silo.ETENANTNOTFOUND, "No tenant %q.", id)
	} else if err != nil {
		return nil, err
	}
	return fromRow(row), nil
}

// Tenants lists every tenant, ordered by slug.
func (c *Catalog) Tenants(ctx context.Context) ([]*silo.Tenant, error) {
	rows, err := c.q.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*silo.Tenant, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// TenantIDs lists the id of every tenant in the catalog, whatever its status.
func (c *Catalog) TenantIDs(ctx context.Context) (map[silo.TenantID]bool, error) {
	ids, err := c.q.ListTenantIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[silo.TenantID]bool, len(ids))
	for _, id := range ids {
		out[silo.TenantID(id)] = true
	}
	return out, nil
}

// SetStatus changes a tenant's status.
func (c *Catalog) SetStatus(ctx context.Context, id silo.TenantID, status string) error {
	return c.wq.SetTenantStatus(ctx, catalogsql.SetTenantStatusParams{
		Status: status, UpdatedAt: c.now().UnixMilli(), ID: string(id),
	})
}

// ClaimDelete marks an active tenant "deleting" and reports whether this
// call did: of two deletes of one tenant, only one goes on.
func (c *Catalog) ClaimDelete(ctx context.Context, id silo.TenantID) (bool, error) {
	n, err := c.wq.ClaimDelete(ctx, catalogsql.ClaimDeleteParams{UpdatedAt: c.now().UnixMilli(), ID: string(id)})
	return n == 1, err
}

// DeleteTenant removes the row of a tenant that ClaimPurge claimed and, by
// cascade, its tokens.
func (c *Catalog) DeleteTenant(ctx context.Context, id silo.TenantID) error {
	_, err := c.wq.DeletePurgedTenant(ctx, string(id))
	return err
}

// ClaimPurge marks a tenant deleted before cutoff as being purged, and
// reports whether it still was (or was already being purged). From then on Undelete
// refuses it, so its backup can be dropped: an undelete running in another
// process either flipped the tenant back first, and the claim fails, or
// finds it claimed and gives up.
func (c *Catalog) ClaimPurge(ctx context.Context, id silo.TenantID, cutoff time.Time) (bool, error) {
	n, err := c.wq.ClaimPurge(ctx, catalogsql.ClaimPurgeParams{UpdatedAt: c.now().UnixMilli(), ID: string(id), Cutoff: sqlNullInt(cutoff.UnixMilli())})
	return n > 0, err
}

func fromRow(r catalogsql.Tenant) *silo.Tenant {
	return &silo.Tenant{
		ID:            silo.TenantID(r.ID),
		Slug:          r.Slug,
		Name:          r.Name,
		Strategy:      silo.Strategy(r.Strategy),
		Status:        r.Status,
		SchemaVersion: r.SchemaVersion,
		MovingTo:      silo.Strategy(r.MovingTo.String),
		DropFrom:      silo.Strategy(r.DropFrom.String),
		DeletedAt:     optionalMilli(r.DeletedAt),
		FileSince:     optionalMilli(r.FileSince),
		FileSinceTXID: uint64(r.FileSinceTxid.Int64),
		CreatedAt:     time.UnixMilli(r.CreatedAt).UTC(),
		UpdatedAt:     time.UnixMilli(r.UpdatedAt).UTC(),
	}
}

func sqlNullInt(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: true} }

// SetMovingTo journals the start of a move (to a placement) or its end ("").
func (c *Catalog) SetMovingTo(ctx context.Context, id silo.TenantID, to silo.Strategy) error {
	return c.wq.SetTenantMovingTo(ctx, catalogsql.SetTenantMovingToParams{
		MovingTo: sql.NullString{String: string(to), Valid: to != ""}, UpdatedAt: c.now().UnixMilli(), ID: string(id),
	})
}

// FlipStrategy is the commit point of a move: in one statement the tenant's
// placement changes from from to to and the journal is cleared.
//
// A move into the tenant's own file records when, and fileTXID, the first
// transaction its file's backup will hold from then on (0: unknown).
func (c *Catalog) FlipStrategy(ctx context.Context, id silo.TenantID, from, to silo.Strategy, fileTXID uint64) error {
	n, err := c.wq.FlipTenantStrategy(ctx, catalogsql.FlipTenantStrategyParams{
		Strategy: string(to), UpdatedAt: c.now().UnixMilli(), ID: string(id), FromStrategy: string(from),
		DropFrom:      sql.NullString{String: string(from), Valid: true},
		FileSinceTxid: sql.NullInt64{Int64: int64(fileTXID), Valid: fileTXID > 0},
	})
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("catalog: tenant %s is no longer %s", id, from)
	}
	return nil
}

func optionalMilli(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// MarkDeleted records that a tenant's data is gone; its row stays, with its
// slug, until Purge.
func (c *Catalog) MarkDeleted(ctx context.Context, id silo.TenantID) error {
	return c.wq.MarkTenantDeleted(ctx, catalogsql.MarkTenantDeletedParams{DeletedAt: sqlNullInt(c.now().UnixMilli()), ID: string(id)})
}

// Undelete makes a deleted tenant active again.
func (c *Catalog) Undelete(ctx context.Context, id silo.TenantID) error {
	n, err := c.wq.UndeleteTenant(ctx, catalogsql.UndeleteTenantParams{UpdatedAt: c.now().UnixMilli(), ID: string(id)})
	if err != nil {
		return err
	}
	if n == 0 {
		return silo.Errorf(silo.ECONFLICT, "The tenant is not deleted.")
	}
	return nil
}

// DeletedBefore lists tenants deleted before t.
func (c *Catalog) DeletedBefore(ctx context.Context, t time.Time) ([]*silo.Tenant, error) {
	rows, err := c.q.DeletedBefore(ctx, sqlNullInt(t.UnixMilli()))
	if err != nil {
		return nil, err
	}
	out := make([]*silo.Tenant, len(rows))
	for i, r := range rows {
		out[i] = fromRow(r)
	}
	return out, nil
}

// ClearDropFrom records that a finished move's source has been removed.
func (c *Catalog) ClearDropFrom(ctx context.Context, id silo.TenantID) error {
	return c.wq.ClearDropFrom(ctx, string(id))
}
