-- Queries used to copy one tenant's rows between placements and to check
-- the copy. Like every other query they are scoped by tenant_id.

-- name: AllProjects :many
SELECT * FROM projects WHERE tenant_id = ? ORDER BY id;

-- name: AllTasks :many
SELECT * FROM tasks WHERE tenant_id = ? ORDER BY id;

-- name: InsertProjectRow :exec
INSERT INTO projects (id, tenant_id, name, archived, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?);

-- name: InsertTaskRow :exec
INSERT INTO tasks (id, tenant_id, project_id, title, done, due_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: DeleteTenantTasks :exec
DELETE FROM tasks WHERE tenant_id = ?;

-- name: DeleteTenantProjects :exec
DELETE FROM projects WHERE tenant_id = ?;

-- name: TenantIDsWithRows :many
SELECT DISTINCT tenant_id FROM projects;

-- name: TenantSize :one
SELECT
  (SELECT count(*) FROM projects p WHERE p.tenant_id = @tenant_id) AS projects,
  (SELECT count(*) FROM tasks t WHERE t.tenant_id = @tenant_id) AS tasks,
  (SELECT coalesce(sum(length(p.id) + length(p.name) + 40), 0) FROM projects p WHERE p.tenant_id = @tenant_id) +
  (SELECT coalesce(sum(length(t.id) + length(t.project_id) + length(t.title) + 48), 0) FROM tasks t WHERE t.tenant_id = @tenant_id) AS bytes;
