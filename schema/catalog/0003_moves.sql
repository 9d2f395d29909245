-- +goose Up
-- Set while a tenant is being moved between placements: the journal that
-- lets a restart roll back a move that did not reach its commit point.
ALTER TABLE tenants ADD COLUMN moving_to TEXT;

-- +goose Down
ALTER TABLE tenants DROP COLUMN moving_to;
