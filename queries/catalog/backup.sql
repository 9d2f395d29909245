-- name: MarkBackupDirty :exec
-- A registration: whatever the mark was, it now says "open at a crash".
INSERT INTO backup_dirty (tenant_id, since) VALUES (?, ?)
ON CONFLICT (tenant_id) DO UPDATE SET unbacked = 0 WHERE unbacked <> 0;

-- name: MarkBackupUnbacked :exec
INSERT INTO backup_dirty (tenant_id, since, unbacked) VALUES (?, ?, 1)
ON CONFLICT (tenant_id) DO NOTHING;

-- name: ClearBackupDirty :exec
DELETE FROM backup_dirty WHERE tenant_id = ?;

-- name: BackupDirty :many
SELECT tenant_id FROM backup_dirty WHERE unbacked = 0 ORDER BY tenant_id;

-- name: BackupUnbacked :many
SELECT tenant_id FROM backup_dirty WHERE unbacked <> 0 ORDER BY tenant_id;

-- name: BackupSeen :one
SELECT count(*) FROM backup_seen WHERE tenant_id = ?;
