-- +goose Up
-- One row per migration of one tenant file, by `silo migrate` or on open:
-- the fleet's history, and the source of `silo migrate status`'s failures.
CREATE TABLE migration_runs (
    id             INTEGER NOT NULL PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    from_version   INTEGER NOT NULL,
    to_version     INTEGER NOT NULL, -- where the file ended up
    target_version INTEGER NOT NULL, -- where it was asked to go
    started_at     INTEGER NOT NULL, -- unix milliseconds
    finished_at    INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    error          TEXT             -- NULL on success
);
CREATE INDEX migration_runs_tenant ON migration_runs (tenant_id, id);

-- +goose Down
DROP TABLE migration_runs;
