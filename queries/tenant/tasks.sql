-- name: CreateTask :one
INSERT INTO tasks (id, tenant_id, project_id, title, done, due_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
RETURNING *;

-- name: GetTask :one
SELECT * FROM tasks WHERE tenant_id = ? AND id = ?;

-- name: ListTasks :many
SELECT * FROM tasks
WHERE tenant_id = @tenant_id AND project_id = @project_id AND id > @after
ORDER BY id
LIMIT @limit;

-- name: UpdateTask :one
UPDATE tasks
SET title = coalesce(sqlc.narg(title), title),
    done = coalesce(sqlc.narg(done), done),
    due_at = CASE WHEN @set_due_at THEN sqlc.narg(due_at) ELSE due_at END,
    -- Only a real change moves updated_at (see UpdateProject).
    updated_at = CASE
        WHEN coalesce(sqlc.narg(title), title) IS NOT title
          OR coalesce(sqlc.narg(done), done) IS NOT done
          OR (@set_due_at AND sqlc.narg(due_at) IS NOT due_at)
        THEN @updated_at ELSE updated_at END
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: DeleteTask :execrows
DELETE FROM tasks WHERE tenant_id = ? AND id = ?;
