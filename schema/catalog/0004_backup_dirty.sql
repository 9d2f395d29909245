-- +goose Up
-- Tenants registered for backup and not yet cleanly unregistered: after a
-- crash these may be a few transactions behind in the replica, so the next
-- start syncs them before serving.
CREATE TABLE backup_dirty (
    tenant_id TEXT    NOT NULL PRIMARY KEY,
    since     INTEGER NOT NULL -- unix milliseconds
);

-- +goose Down
DROP TABLE backup_dirty;
