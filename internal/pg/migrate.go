package pg

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/silohq/silo/internal/migration"

	"github.com/jackc/pgx/v5"
)

// migrations is an ascending list of migrations.
type migrations []migration.File

// parseMigrations reads the numbered .sql files of fsys.
func parseMigrations(fsys fs.FS) (migrations, error) {
	return migration.Parse(fsys)
}

func (ms migrations) latest() int64 { return ms[len(ms)-1].Version }

func (ms migrations) known(v int64) bool {
	if v == 0 {
		return true
	}
	for _, m := range ms {
		if m.Version == v {
			return true
		}
	}
	return false
}

// versionTable records a schema's applied migrations. It lives in the
// schema it describes, so dropping a tenant's schema drops its history.
const versionTable = "silo_migrations"

// migrate moves schema (a plain, unquoted name) to version target in the
// one transaction tx, creating the schema if needed and create is set
// (ErrSchemaMissing otherwise). PostgreSQL's DDL is
// transactional, so a failure leaves the schema exactly where it was, and
// a transaction-scoped advisory lock on the schema's name makes concurrent
// migrators (a server and `silo migrate`, or two test runs sharing a
// database) take turns instead of applying a step twice.
func (ms migrations) migrate(ctx context.Context, tx pgx.Tx, schema string, target int64, create bool) (from, to int64, err error) {
	if !ms.known(target) {
		return 0, 0, fmt.Errorf("schema %s: unknown target version %d", schema, target)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "silo.migrate."+schema); err != nil {
		return 0, 0, err
	}
	q := pgx.Identifier{schema}.Sanitize()
	if create {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
			return 0, 0, err
		}
	} else {
		// Checked under the lock; a schema dropped after this fails the
		// statements below rather than being made again.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
			return 0, 0, err
		}
		if !exists {
			return 0, 0, ErrSchemaMissing
		}
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", q+", pg_temp"); err != nil {
		return 0, 0, err
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+versionTable+
		" (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"); err != nil {
		return 0, 0, err
	}
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versionTable).Scan(&from); err != nil {
		return 0, 0, err
	}
	if !ms.known(from) {
		return from, from, fmt.Errorf("schema %s is at version %d, which this build does not know", schema, from)
	}
	for _, m := range ms {
		if from < m.Version && m.Version <= target {
			if _, err := tx.Exec(ctx, m.Up); err != nil {
				return from, from, fmt.Errorf("schema %s: %s up: %w", schema, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version) VALUES ($1)", m.Version); err != nil {
				return from, from, err
			}
		}
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; target < m.Version && m.Version <= from {
			if _, err := tx.Exec(ctx, m.Down); err != nil {
				return from, from, fmt.Errorf("schema %s: %s down: %w", schema, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+versionTable+" WHERE version = $1", m.Version); err != nil {
				return from, from, err
			}
		}
	}
	return from, target, nil
}

// version reads schema's version; a schema without a version table is 0.
func version(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, schema string) (int64, error) {
	var v int64
	err := db.QueryRow(ctx, `SELECT CASE WHEN to_regclass($1) IS NULL THEN 0 ELSE -1 END`,
		pgx.Identifier{schema, versionTable}.Sanitize()).Scan(&v)
	if err != nil || v == 0 {
		return v, err
	}
	err = db.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+pgx.Identifier{schema, versionTable}.Sanitize()).Scan(&v)
	return v, err
}
