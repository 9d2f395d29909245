-- +goose Up
-- Tenants whose file was ever registered for backup (filled by a trigger on
-- backup_dirty, which every registration writes). When a tenant's file is
-- missing and its replica holds nothing, this tells the two cases apart: a
-- tenant never registered never had data to back up and is re-created
-- empty; one that was has lost its backup, or the replica's URL is wrong
-- (disaster recovery on a new machine), and must not be silently emptied.
CREATE TABLE backup_seen (
    tenant_id TEXT NOT NULL PRIMARY KEY
);
-- Tenants from before this table: assume backed up (the safe side).
INSERT INTO backup_seen (tenant_id) SELECT id FROM tenants;

-- +goose StatementBegin
CREATE TRIGGER backup_dirty_seen AFTER INSERT ON backup_dirty
BEGIN
    INSERT INTO backup_seen (tenant_id) VALUES (NEW.tenant_id)
    ON CONFLICT (tenant_id) DO NOTHING;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER tenants_purged_seen AFTER DELETE ON tenants
BEGIN
    DELETE FROM backup_seen WHERE tenant_id = OLD.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER tenants_purged_seen;
DROP TRIGGER backup_dirty_seen;
DROP TABLE backup_seen;
