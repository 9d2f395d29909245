package catalog

import (
	"context"
	"database/sql"
	"time"

	"github.com/silohq/silo/internal/catalog/catalogsql"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// RecordMigration writes one run to the ledger and, if it succeeded,
// mirrors the tenant's new schema version, in one transaction.
func (c *Catalog) RecordMigration(ctx context.Context, r silo.MigrationRun) error {
	tx, err := c.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := c.wq.WithTx(tx)
	var msg sql.NullString
	if r.Err != nil {
		msg = sql.NullString{String: r.Err.Error(), Valid: true}
	}
	if err := q.RecordMigrationRun(ctx, catalogsql.RecordMigrationRunParams{
		TenantID: string(r.Tenant), FromVersion: r.From, ToVersion: r.To, TargetVersion: r.Target,
		StartedAt: r.StartedAt.UnixMilli(), FinishedAt: r.FinishedAt.UnixMilli(),
		DurationMs: r.FinishedAt.Sub(r.StartedAt).Milliseconds(), Error: msg,
	}); err != nil {
		return err
	}
	// A failed run leaves the file where it was, and may not even have read
	// its version (a missing file, an unknown target: From and To are 0),
	// so it does not change the recorded one; a run that committed and then
	// failed (its checkpoint) did change the file, and is recorded.
	if r.Err == nil || r.From != r.To {
		if err := q.SetTenantSchemaVersion(ctx, catalogsql.SetTenantSchemaVersionParams{
			SchemaVersion: r.To, UpdatedAt: c.now().UnixMilli(), ID: string(r.Tenant),
		}); err != nil {
			return err
		}
	}
	return sqlite.Commit(ctx, tx)
}

// VersionCounts returns how many active tenants sit at each schema version.
func (c *Catalog) VersionCounts(ctx context.Context) (map[int64]int64, error) {
	rows, err := c.q.SchemaVersionCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.SchemaVersion] = r.Tenants
	}
	return out, nil
}

// FailedMigration is a tenant whose latest migration run failed.
type FailedMigration struct {
	Slug       string
	Tenant     silo.TenantID
	From, To   int64
	Target     int64
	FinishedAt time.Time
	Error      string
}

// FailedMigrations lists the tenants whose latest migration failed.
func (c *Catalog) FailedMigrations(ctx context.Context) ([]FailedMigration, error) {
	rows, err := c.q.FailedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]FailedMigration, len(rows))
	for i, r := range rows {
		out[i] = FailedMigration{
			Slug: r.Slug, Tenant: silo.TenantID(r.TenantID), From: r.FromVersion, To: r.ToVersion,
			Target: r.TargetVersion, FinishedAt: time.UnixMilli(r.FinishedAt).UTC(), Error: r.Error.String,
		}
	}
	return out, nil
}
