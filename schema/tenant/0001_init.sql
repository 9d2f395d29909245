-- +goose Up
-- Every tenant-owned table carries tenant_id and every query filters on it,
-- even inside a tenant's own file: it is a second wall behind the file, and it
-- lets the shared placement run the very same queries.
CREATE TABLE projects (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL, -- unix milliseconds
    updated_at INTEGER NOT NULL
);
-- Names are unique per tenant, never across tenants.
CREATE UNIQUE INDEX projects_tenant_name ON projects (tenant_id, name);
CREATE INDEX projects_tenant_id ON projects (tenant_id, id);

CREATE TABLE tasks (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX tasks_tenant_project ON tasks (tenant_id, project_id, id);

-- +goose Down
DROP TABLE tasks;
DROP TABLE projects;
