-- The PostgreSQL twin of queries/tenant/tasks.sql.

-- name: CreateTask :one
INSERT INTO tasks (id, tenant_id, project_id, title, done, due_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING *;

-- name: GetTask :one
SELECT * FROM tasks WHERE tenant_id = $1 AND id = $2;

-- name: ListTasks :many
SELECT * FROM tasks
WHERE tenant_id = @tenant_id AND project_id = @project_id AND id > @after
ORDER BY id
LIMIT sqlc.arg(max_rows);

-- name: UpdateTask :one
UPDATE tasks
SET title = coalesce(sqlc.narg(title), title),
    done = coalesce(sqlc.narg(done), done),
    due_at = CASE WHEN @set_due_at::boolean THEN sqlc.narg(due_at)::bigint ELSE due_at END,
    -- Only a real change moves updated_at (see UpdateProject).
    updated_at = CASE
        WHEN coalesce(sqlc.narg(title), title) IS DISTINCT FROM title
          OR coalesce(sqlc.narg(done), done) IS DISTINCT FROM done
          OR (@set_due_at::boolean AND sqlc.narg(due_at)::bigint IS DISTINCT FROM due_at)
        THEN @updated_at ELSE updated_at END
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: DeleteTask :execrows
DELETE FROM tasks WHERE tenant_id = $1 AND id = $2;
