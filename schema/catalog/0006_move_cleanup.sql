-- +goose Up
-- Set by a move's commit (the placement it left) and cleared once that
-- source is removed: a restart removes what a crash left, in any engine.
ALTER TABLE tenants ADD COLUMN drop_from TEXT;

-- +goose Down
ALTER TABLE tenants DROP COLUMN drop_from;
