package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/silohq/silo/internal/migration"
)

// Migration is one numbered migration file.
type Migration = migration.File

// Migrator applies embedded migrations to SQLite files.
//
// It is written here rather than taken from pressly/goose because a tenant
// file must move between versions atomically: goose's Provider commits each
// migration separately and reads the current version outside its
// transaction, so a failure in a two-step upgrade leaves a tenant at an
// intermediate version, and two processes (a server migrating on open and
// `silo migrate`) can both decide to apply the same step. Migrate instead
// takes the file's write lock (BEGIN IMMEDIATE), reads the version inside
// that transaction, applies every step and records the new version in
// PRAGMA user_version, all in one commit. user_version lives in the file
// header, so checking a file's version on open costs no schema parse.
type Migrator struct {
	migrations []Migration // ascending by version

	mu     sync.Mutex
	hashes map[int64]string // ExpectedHash's results
}

// NewMigrator parses the numbered .sql files of fsys.
func NewMigrator(fsys fs.FS) (*Migrator, error) {
	files, err := migration.Parse(fsys)
	if err != nil {
		return nil, err
	}
	return &Migrator{migrations: files, hashes: map[int64]string{}}, nil
}

// Latest is the version this binary's migrations reach.
func (m *Migrator) Latest() int64 { return m.migrations[len(m.migrations)-1].Version }

// Versions lists every known version in ascending order.
func (m *Migrator) Versions() []int64 {
	out := make([]int64, len(m.migrations))
	for i, mg := range m.migrations {
		out[i] = mg.Version
	}
	return out
}

// ErrAhead is wrapped by Migrate when a file is at a version this binary
// does not know (it was migrated by a newer binary).
var ErrAhead = fmt.Errorf("file is ahead of this binary's schema")

// Migrate moves db to version target (0 means Latest), up or down, in one
// transaction: on any error the file stays exactly at its previous version.
// It returns the version before and after.
func (m *Migrator) Migrate(ctx context.Context, db *sql.DB, target int64) (from, to int64, err error) {
	if target == 0 {
		target = m.Latest()
	}
	if target < 0 || (target > 0 && !m.known(target)) {
		return 0, 0, fmt.Errorf("unknown schema version %d", target)
	}
	// The pool's DSN has _txlock=immediate: BeginTx takes the write lock
	// first, so the version read below cannot change before the commit.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&from); err != nil {
		return 0, 0, err
	}
	if from == target {
		return from, from, nil
	}
	if from != 0 && !m.known(from) {
		return from, from, fmt.Errorf("%w: at version %d, this binary knows up to %d", ErrAhead, from, m.Latest())
	}
	for _, step := range m.plan(from, target) {
		script, dir := step.Up, "up"
		if target < from {
			script, dir = step.Down, "down"
		}
		if _, err := tx.ExecContext(ctx, script); err != nil {
			return from, from, fmt.Errorf("migration %s (%s): %w", step.Name, dir, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version=%d", target)); err != nil {
		return from, from, err
	}
	if err := tx.Commit(); err != nil {
		return from, from, err
	}
	return from, target, nil
}

// Known reports whether v is one of the migrator's versions.
func (m *Migrator) Known(v int64) bool { return m.known(v) }

func (m *Migrator) known(v int64) bool {
	for _, mg := range m.migrations {
		if mg.Version == v {
			return true
		}
	}
	return false
}

// plan lists the steps from one version to another, in the order to run.
func (m *Migrator) plan(from, to int64) []Migration {
	var steps []Migration
	if to > from {
		for _, mg := range m.migrations {
			if mg.Version > from && mg.Version <= to {
				steps = append(steps, mg)
			}
		}
		return steps
	}
	for i := len(m.migrations) - 1; i >= 0; i-- {
		if mg := m.migrations[i]; mg.Version <= from && mg.Version > to {
			steps = append(steps, mg)
		}
	}
	return steps
}

// SchemaHash is a digest of a file's schema (sqlite_schema, SQLite's own
// tables and Litestream's excepted: Litestream adds _litestream_seq and
// _litestream_lock to every file it replicates): two files at the same
// version hash alike unless one has drifted.
func SchemaHash(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, `SELECT type, name, tbl_name, coalesce(sql, '')
		FROM sqlite_schema
		WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_litestream\_%' ESCAPE '\'
		ORDER BY type, name`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var typ, name, tbl, sqlText string
		if err := rows.Scan(&typ, &name, &tbl, &sqlText); err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", typ, name, tbl, strings.Join(strings.Fields(sqlText), " "))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ExpectedHash is the SchemaHash of a fresh file migrated to version,
// computed once per version in a scratch file under dir.
func (m *Migrator) ExpectedHash(ctx context.Context, dir string, version int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.hashes[version]; ok {
		return h, nil
	}
	path := fmt.Sprintf("%s/.schema-v%d-%p.db", dir, version, m)
	db, err := Open(path, Options{MaxConns: 1})
	if err != nil {
		return "", err
	}
	defer RemoveFiles(path)
	defer db.Close()
	if version > 0 {
		if _, _, err := m.Migrate(ctx, db, version); err != nil {
			return "", err
		}
	}
	h, err := SchemaHash(ctx, db)
	if err != nil {
		return "", err
	}
	m.hashes[version] = h
	return h, nil
}
