-- +goose Up
-- The `pgshared` placement: every such tenant's rows in one set of tables,
-- in one fixed schema (silo_shared unless configured), created by an owner
-- role that the app never connects as. The migrator runs each file with
-- search_path set to that schema. Columns and keys are those of
-- schema/postgres/tenant, so the same queries serve both placements.
CREATE TABLE projects (
    id         TEXT COLLATE "C" NOT NULL,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
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

-- Row-Level Security is the wall: a row is visible to, and may be written
-- by, only the tenant named in the transaction's app.tenant_id (set with
-- set_config(..., true), i.e. SET LOCAL). With no setting current_setting
-- returns NULL (missing_ok), which matches nothing. FORCE makes the owner
-- obey the policies too; superusers and BYPASSRLS roles still do not, which
-- is why the app connects as a plain role (internal/pg.Open refuses others).
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projects
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tasks
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- +goose Down
DROP TABLE tasks;
DROP TABLE projects;
