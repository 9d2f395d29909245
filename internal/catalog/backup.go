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

// BackupDirty lists the tenants registered for backup and not cleanly
// unregistered: after a crash, those whose replica may lag.
func (c *Catalog) BackupDirty(ctx context.Context) ([]silo.TenantID, error) {
	ids, err := c.q.BackupDirty(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]silo.TenantID, len(ids))
	for i, id := range ids {
		out[i] = silo.TenantID(id)
	}
	return out, nil
}
