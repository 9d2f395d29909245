-- The PostgreSQL twin of queries/tenant/move.sql: copying one tenant's rows
-- between placements and checking the copy, scoped by tenant_id.
--
-- There is no TenantIDsWithRows here: a query across tenants is what the
-- shared tables' Row-Level Security exists to stop (as the app role it sees
-- at most the current tenant), so a sweep asks TenantHasRows per tenant.

-- name: AllProjects :many
SELECT * FROM projects WHERE tenant_id = $1 ORDER BY id;

-- name: AllTasks :many
SELECT * FROM tasks WHERE tenant_id = $1 ORDER BY id;

-- name: InsertProjectRow :exec
INSERT INTO projects (id, tenant_id, name, archived, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: InsertTaskRow :exec
INSERT INTO tasks (id, tenant_id, project_id, title, done, due_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: DeleteTenantTasks :exec
DELETE FROM tasks WHERE tenant_id = $1;

-- name: DeleteTenantProjects :exec
DELETE FROM projects WHERE tenant_id = $1;

-- name: TenantHasRows :one
SELECT EXISTS (SELECT 1 FROM projects WHERE tenant_id = $1) AS has_rows;

-- name: TenantSize :one
SELECT
  (SELECT count(*) FROM projects p WHERE p.tenant_id = @tenant_id) AS projects,
  (SELECT count(*) FROM tasks t WHERE t.tenant_id = @tenant_id) AS tasks,
  ((SELECT coalesce(sum(length(p.id) + length(p.name) + 40), 0) FROM projects p WHERE p.tenant_id = @tenant_id) +
   (SELECT coalesce(sum(length(t.id) + length(t.project_id) + length(t.title) + 48), 0) FROM tasks t WHERE t.tenant_id = @tenant_id))::bigint AS bytes;
