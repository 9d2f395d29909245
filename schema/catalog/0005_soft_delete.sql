-- +goose Up
-- A deleted tenant keeps its row (and so its slug, and its backup) for
-- --deleted-retention, during which `silo tenants undelete` brings it back.
ALTER TABLE tenants ADD COLUMN deleted_at INTEGER; -- unix milliseconds

-- +goose Down
ALTER TABLE tenants DROP COLUMN deleted_at;
