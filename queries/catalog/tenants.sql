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

-- name: SetTenantStatus :exec
UPDATE tenants SET status = ?, updated_at = ? WHERE id = ?;

-- name: SetTenantSchemaVersion :exec
UPDATE tenants SET schema_version = ?, updated_at = ? WHERE id = ?;

-- name: DeleteTenant :exec
DELETE FROM tenants WHERE id = ?;

-- name: SetTenantMovingTo :exec
UPDATE tenants SET moving_to = ?, updated_at = ? WHERE id = ?;

-- name: FlipTenantStrategy :execrows
-- The commit point of a move: the new placement, and the journal cleared.
UPDATE tenants SET strategy = @strategy, moving_to = NULL, drop_from = sqlc.narg(drop_from), updated_at = @updated_at
WHERE id = @id AND strategy = @from_strategy;

-- name: ClearDropFrom :exec
UPDATE tenants SET drop_from = NULL WHERE id = ?;

-- name: MarkTenantDeleted :exec
UPDATE tenants SET status = 'deleted', deleted_at = @deleted_at, updated_at = @deleted_at WHERE id = @id;

-- name: UndeleteTenant :execrows
UPDATE tenants SET status = 'active', deleted_at = NULL, updated_at = @updated_at
WHERE id = @id AND status = 'deleted';

-- name: DeletedBefore :many
SELECT * FROM tenants WHERE status = 'deleted' AND deleted_at < ? ORDER BY deleted_at;
