-- The PostgreSQL twin of queries/tenant/projects.sql. Every query names
-- tenant_id: in a tenant's own schema it is a second wall behind
-- search_path; in the shared tables it is a second wall behind Row-Level
-- Security. Table names are unqualified: the request's transaction sets
-- search_path (internal/pg), so one query set serves both placements.

-- name: CreateProject :one
INSERT INTO projects (id, tenant_id, name, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetProject :one
SELECT * FROM projects WHERE tenant_id = $1 AND id = $2;

-- name: ListProjects :many
SELECT * FROM projects
WHERE tenant_id = @tenant_id AND id > @after
  AND (sqlc.narg(archived)::boolean IS NULL OR archived = sqlc.narg(archived)::boolean)
ORDER BY id
LIMIT sqlc.arg(max_rows);

-- name: UpdateProject :one
UPDATE projects
SET name = coalesce(sqlc.narg(name), name),
    archived = coalesce(sqlc.narg(archived), archived),
    -- Only a real change moves updated_at: an empty PATCH, or one that
    -- repeats the current values, leaves the row as it was.
    updated_at = CASE
        WHEN coalesce(sqlc.narg(name), name) IS DISTINCT FROM name
          OR coalesce(sqlc.narg(archived), archived) IS DISTINCT FROM archived
        THEN @updated_at ELSE updated_at END
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: DeleteProject :execrows
DELETE FROM projects WHERE tenant_id = $1 AND id = $2;
