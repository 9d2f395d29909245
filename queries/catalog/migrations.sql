-- name: RecordMigrationRun :exec
INSERT INTO migration_runs (tenant_id, from_version, to_version, target_version, started_at, finished_at, duration_ms, error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: SchemaVersionCounts :many
SELECT schema_version, count(*) AS tenants FROM tenants
WHERE status = 'active'
GROUP BY schema_version ORDER BY schema_version;

-- name: FailedMigrations :many
-- The tenants whose latest migration run failed.
SELECT t.slug, r.tenant_id, r.from_version, r.to_version, r.target_version, r.finished_at, r.error
FROM migration_runs r
JOIN (SELECT tenant_id, max(id) AS id FROM migration_runs GROUP BY tenant_id) last ON last.id = r.id
JOIN tenants t ON t.id = r.tenant_id
WHERE r.error IS NOT NULL
ORDER BY t.slug;
