-- name: CreateToken :one
INSERT INTO tokens (id, tenant_id, name, hash, created_at)
VALUES (?, ?, ?, ?, ?)
RETURNING *;

-- name: ActiveTokenHashes :many
SELECT hash FROM tokens WHERE tenant_id = ? AND revoked_at IS NULL;

-- name: ListTokens :many
SELECT * FROM tokens WHERE tenant_id = ? ORDER BY created_at, id;

-- name: RevokeToken :execrows
UPDATE tokens SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL;
