-- +goose Up
-- As schema/tenant/0002: projects can be archived; tasks get an optional due
-- time (unix milliseconds, NULL = none), indexed for "what is due" queries.
-- Version numbers match schema/tenant's, so a tenant's schema version means
-- the same columns on either engine.
ALTER TABLE projects ADD COLUMN archived BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE tasks ADD COLUMN due_at BIGINT;
CREATE INDEX tasks_tenant_due ON tasks (tenant_id, due_at) WHERE due_at IS NOT NULL;

-- +goose Down
DROP INDEX tasks_tenant_due;
ALTER TABLE tasks DROP COLUMN due_at;
ALTER TABLE projects DROP COLUMN archived;
