-- +goose Up
-- The registry of tenants. It alone maps a tenant to where its data lives:
-- the file name derives from the immutable id, never from a slug.
CREATE TABLE tenants (
    id             TEXT    NOT NULL PRIMARY KEY,
    slug           TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    strategy       TEXT    NOT NULL DEFAULT 'database',
    status         TEXT    NOT NULL DEFAULT 'active',
    schema_version INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL, -- unix milliseconds
    updated_at     INTEGER NOT NULL
);

-- API tokens, stored only as SHA-256 hashes of 256-bit random secrets.
CREATE TABLE tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);

-- +goose Down
DROP TABLE tokens;
DROP TABLE tenants;
