-- +goose Up
-- Marks written while backups were off (--no-backup): the file changed with
-- no replica following. The next start with backups syncs them too, but in
-- the background, after it starts serving: unlike a tenant open at a crash,
-- such a tenant is in no danger of losing acknowledged writes, and there may
-- be many (every tenant written during the period).
ALTER TABLE backup_dirty ADD COLUMN unbacked INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE backup_dirty DROP COLUMN unbacked;
