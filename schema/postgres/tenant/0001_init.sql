-- +goose Up
-- A schema-per-tenant tenant's tables, created inside the tenant's own
-- schema (the migrator runs each file with search_path set to it). The
-- columns are those of schema/tenant, so a move between engines copies rows
-- of the same shape, and every table carries tenant_id so that the one
-- PostgreSQL query set serves both the `schema` and the `pgshared`
-- placement (schema/postgres/shared has the same tables).
--
-- Keys lead with tenant_id: that is what Citus asks of a table distributed
-- by tenant_id, and a task can only point at a project of its own tenant.
-- Ids compare bytewise (COLLATE "C"), as in SQLite, so cursors page in the
-- same order on both engines. Times are unix milliseconds, as in SQLite.
CREATE TABLE projects (
    id         TEXT COLLATE "C" NOT NULL,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Names are unique per tenant, never across tenants.
CREATE UNIQUE INDEX projects_tenant_name ON projects (tenant_id, name);

CREATE TABLE tasks (
    id         TEXT COLLATE "C" NOT NULL,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    title      TEXT    NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_tenant_project ON tasks (tenant_id, project_id, id);

-- +goose Down
DROP TABLE tasks;
DROP TABLE projects;
