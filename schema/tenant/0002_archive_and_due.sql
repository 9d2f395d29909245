-- +goose Up
-- Projects can be archived (hidden from ?archived=false lists); tasks get an
-- optional due time, indexed for "what is due" queries.
ALTER TABLE projects ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN due_at INTEGER; -- unix milliseconds, NULL = no due time
CREATE INDEX tasks_tenant_due ON tasks (tenant_id, due_at) WHERE due_at IS NOT NULL;

-- +goose Down
DROP INDEX tasks_tenant_due;
ALTER TABLE tasks DROP COLUMN due_at;
ALTER TABLE projects DROP COLUMN archived;
