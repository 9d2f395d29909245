package pg

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migration is one numbered file in goose's format (-- +goose Up / Down),
// the format sqlc reads too.
type migration struct {
	version  int64
	name     string
	up, down string
}

// migrations is an ascending list of migrations.
type migrations []migration

// parseMigrations reads the numbered .sql files of fsys.
func parseMigrations(fsys fs.FS) (migrations, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms migrations
	seen := map[int64]string{}
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number and '_'", n)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", other, n, v)
		}
		seen[v] = n
		src, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		up, down, err := splitMigration(string(src))
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", n, err)
		}
		ms = append(ms, migration{version: v, name: n, up: up, down: down})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// splitMigration returns the Up and Down sections of a goose-format file.
// Each section runs as one multi-statement script (the simple protocol),
// so StatementBegin/End need no handling.
func splitMigration(src string) (up, down string, err error) {
	var cur *strings.Builder
	var upB, downB strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "-- +goose"); ok {
			switch f := strings.Fields(d); {
			case len(f) > 0 && f[0] == "Up":
				cur = &upB
			case len(f) > 0 && f[0] == "Down":
				cur = &downB
			case len(f) > 0 && (f[0] == "StatementBegin" || f[0] == "StatementEnd"):
			default:
				return "", "", fmt.Errorf("unsupported directive %q", line)
			}
			continue
		}
		if cur != nil {
			cur.WriteString(line)
			cur.WriteByte('\n')
		}
	}
	if strings.TrimSpace(upB.String()) == "" {
		return "", "", fmt.Errorf("no '-- +goose Up' section")
	}
	return upB.String(), downB.String(), sc.Err()
}

// latest is the version the migrations reach.
func (ms migrations) latest() int64 { return ms[len(ms)-1].version }

func (ms migrations) known(v int64) bool {
	if v == 0 {
		return true
	}
	for _, m := range ms {
		if m.version == v {
			return true
		}
	}
	return false
}

// versionTable records a schema's applied migrations. It lives in the
// schema it describes, so dropping a tenant's schema drops its history.
const versionTable = "silo_migrations"

// migrate moves schema (a plain, unquoted name) to version target in the
// one transaction tx, creating the schema if needed. PostgreSQL's DDL is
// transactional, so a failure leaves the schema exactly where it was, and
// a transaction-scoped advisory lock on the schema's name makes concurrent
// migrators (a server and `silo migrate`, or two test runs sharing a
// database) take turns instead of applying a step twice.
func (ms migrations) migrate(ctx context.Context, tx pgx.Tx, schema string, target int64) (from, to int64, err error) {
	if !ms.known(target) {
		return 0, 0, fmt.Errorf("schema %s: unknown target version %d", schema, target)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "silo.migrate."+schema); err != nil {
		return 0, 0, err
	}
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
		return 0, 0, err
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
		if from < m.version && m.version <= target {
			if _, err := tx.Exec(ctx, m.up); err != nil {
				return from, from, fmt.Errorf("schema %s: %s up: %w", schema, m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+versionTable+" (version) VALUES ($1)", m.version); err != nil {
				return from, from, err
			}
		}
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; target < m.version && m.version <= from {
			if _, err := tx.Exec(ctx, m.down); err != nil {
				return from, from, fmt.Errorf("schema %s: %s down: %w", schema, m.name, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+versionTable+" WHERE version = $1", m.version); err != nil {
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
