-- name: CreateTenant :one
INSERT INTO tenants (id, slug, name, strategy, status, schema_version, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
RETURNING *;

-- name: GetTenantBySlug :one
SELECT * FROM tenants WHERE slug = ?;

-- name: GetTenant :one
SELECT * FROM tenants WHERE id = ?;

-- name: ListTenants :many
SELECT * FROM tenants ORDER BY slug;

-- name: ListTenantIDs :many
SELECT id FROM tenants;

-- name: CountSharedTenants :one
-- Tenants whose rows shared.db holds: deleted ones have none left.
SELECT count(*) FROM tenants WHERE strategy = 'shared' AND status IN ('active', 'deleting');

-- name: SetTenantStatus :exec
UPDATE tenants SET status = ?, updated_at = ? WHERE id = ?;

-- name: ClaimDelete :execrows
-- Only one delete of a tenant may run: the one that moves it out of active.
UPDATE tenants SET status = 'deleting', updated_at = @updated_at
WHERE id = @id AND status = 'active';

-- name: SetTenantSchemaVersion :exec
UPDATE tenants SET schema_version = ?, updated_at = ? WHERE id = ?;

-- name: ClaimPurge :execrows
-- Purge claims a deleted tenant before it drops the tenant's backup; an
-- undelete that has not flipped the status back by then loses the race,
-- and a tenant undeleted and deleted again since the list is not claimed
-- (its retention starts anew).
UPDATE tenants SET status = 'purging', updated_at = @updated_at
WHERE id = @id AND status IN ('deleted', 'purging') AND deleted_at < @cutoff;

-- name: DeletePurgedTenant :execrows
DELETE FROM tenants WHERE id = ? AND status = 'purging';

-- name: SetTenantMovingTo :exec
UPDATE tenants SET moving_to = ?, updated_at = ? WHERE id = ?;

-- name: FlipTenantStrategy :execrows
-- The commit point of a move: the new placement, and the journal cleared.
-- A move into the tenant's own file starts a new period of its backup.
UPDATE tenants SET strategy = @strategy, moving_to = NULL, drop_from = sqlc.narg(drop_from), updated_at = @updated_at,
    file_since = CASE WHEN @strategy = 'database' THEN @updated_at ELSE file_since END,
    file_since_txid = CASE WHEN @strategy = 'database' THEN sqlc.narg(file_since_txid) ELSE file_since_txid END
WHERE id = @id AND strategy = @from_strategy;

-- name: ClearDropFrom :exec
UPDATE tenants SET drop_from = NULL WHERE id = ?;

-- name: MarkTenantDeleted :exec
UPDATE tenants SET status = 'deleted', deleted_at = @deleted_at, updated_at = @deleted_at WHERE id = @id;

-- name: UndeleteTenant :execrows
UPDATE tenants SET status = 'active', deleted_at = NULL, updated_at = @updated_at
WHERE id = @id AND status = 'deleted';

-- name: DeletedBefore :many
SELECT * FROM tenants WHERE status IN ('deleted', 'purging') AND deleted_at < ? ORDER BY deleted_at;
