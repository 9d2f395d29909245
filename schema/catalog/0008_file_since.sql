-- +goose Up
-- When a tenant last moved into its own file (NULL: it has been in its file
-- since signup), and the first transaction of its file's backup from then
-- on. The backup of <id>.db keeps the file's earlier periods too, so a
-- point-in-time restore to a moment the tenant's rows were elsewhere (in
-- shared.db, or PostgreSQL) would silently bring back an older state; such
-- restores are refused.
ALTER TABLE tenants ADD COLUMN file_since INTEGER;      -- unix milliseconds
ALTER TABLE tenants ADD COLUMN file_since_txid INTEGER; -- NULL: unknown

-- +goose Down
ALTER TABLE tenants DROP COLUMN file_since_txid;
ALTER TABLE tenants DROP COLUMN file_since;
