-- Every query names tenant_id: in a tenant's own file it is a second wall,
-- in a shared file it is the wall.

-- name: CreateProject :one
INSERT INTO projects (id, tenant_id, name, created_at, updated_at)
VALUES (?, ?, ?, ?, ?)
RETURNING *;

-- name: GetProject :one
SELECT * FROM projects WHERE tenant_id = ? AND id = ?;

-- name: ListProjects :many
SELECT * FROM projects
WHERE tenant_id = @tenant_id AND id > @after
  AND (sqlc.narg(archived) IS NULL OR archived = sqlc.narg(archived))
ORDER BY id
LIMIT @limit;

-- name: UpdateProject :one
UPDATE projects
SET name = coalesce(sqlc.narg(name), name),
    archived = coalesce(sqlc.narg(archived), archived),
    -- Only a real change moves updated_at: an empty PATCH, or one that
    -- repeats the current values, leaves the row as it was.
    updated_at = CASE
        WHEN coalesce(sqlc.narg(name), name) IS NOT name
          OR coalesce(sqlc.narg(archived), archived) IS NOT archived
        THEN @updated_at ELSE updated_at END
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: DeleteProject :execrows
DELETE FROM projects WHERE tenant_id = ? AND id = ?;
