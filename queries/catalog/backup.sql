-- name: MarkBackupDirty :exec
INSERT INTO backup_dirty (tenant_id, since) VALUES (?, ?)
ON CONFLICT (tenant_id) DO NOTHING;

-- name: ClearBackupDirty :exec
DELETE FROM backup_dirty WHERE tenant_id = ?;

-- name: BackupDirty :many
SELECT tenant_id FROM backup_dirty ORDER BY tenant_id;

-- name: BackupSeen :one
SELECT count(*) FROM backup_seen WHERE tenant_id = ?;
