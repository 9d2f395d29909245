-- +goose Up
-- As schema/postgres/tenant/0002. Adding columns leaves the policies as
-- they are.
ALTER TABLE projects ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE tasks ADD COLUMN due_at BIGINT;
CREATE INDEX tasks_tenant_due ON tasks (tenant_id, due_at) WHERE due_at IS NOT NULL;

-- +goose Down
DROP INDEX tasks_tenant_due;
ALTER TABLE tasks DROP COLUMN due_at;
ALTER TABLE projects DROP COLUMN archived;
