package catalog

import (
	"context"

	"github.com/silohq/silo/internal/catalog/catalogsql"
	"github.com/silohq/silo/internal/silo"
)

// The backup state of each tenant: which files are registered with the
// embedded Litestream (and so may lag their replica after a crash), and
// which ever were.

// MarkBackupDirty records that a tenant is registered for backup.
func (c *Catalog) MarkBackupDirty(ctx context.Context, id silo.TenantID) error {
	return c.wq.MarkBackupDirty(ctx, catalogsql.MarkBackupDirtyParams{TenantID: string(id), Since: c.now().UnixMilli()})
}

// BackupSeen reports whether a tenant's file was ever registered for
// backup (by this data dir's catalog, or before it kept track).
func (c *Catalog) BackupSeen(ctx context.Context, id silo.TenantID) (bool, error) {
	n, err := c.q.BackupSeen(ctx, string(id))
	return n > 0, err
}

// ClearBackupDirty records that a tenant was cleanly unregistered.
func (c *Catalog) ClearBackupDirty(ctx context.Context, id silo.TenantID) error {
	return c.wq.ClearBackupDirty(ctx, string(id))
}

// MarkBackupUnbacked records that a tenant's file changed while backups
// were off. (A tenant already marked keeps its mark: a registration's is
// the more urgent.)
func (c *Catalog) MarkBackupUnbacked(ctx context.Context, id silo.TenantID) error {
	return c.wq.MarkBackupUnbacked(ctx, catalogsql.MarkBackupUnbackedParams{TenantID: string(id), Since: c.now().UnixMilli()})
}

// BackupDirty lists the tenants registered for backup and not cleanly
// unregistered: after a crash, those whose replica may lag.
func (c *Catalog) BackupDirty(ctx context.Context) ([]silo.TenantID, error) {
	return tenantIDs(c.q.BackupDirty(ctx))
}

// BackupUnbacked lists the tenants whose files changed while backups were
// off and whose replicas have not caught up since.
func (c *Catalog) BackupUnbacked(ctx context.Context) ([]silo.TenantID, error) {
	return tenantIDs(c.q.BackupUnbacked(ctx))
}

func tenantIDs(ids []string, err error) ([]silo.TenantID, error) {
	if err != nil {
		return nil, err
	}
	out := make([]silo.TenantID, len(ids))
	for i, id := range ids {
		out[i] = silo.TenantID(id)
	}
	return out, nil
}
