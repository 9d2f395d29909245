package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

// Migrator applies one set of embedded migrations to SQLite files, with
// pressly/goose's Provider: each migration runs in its own transaction
// together with its version row, so a file is never left half-way through a
// migration.
type Migrator struct {
	fsys     fs.FS
	versions []int64
}

// NewMigrator returns a Migrator for the numbered goose files in fsys.
func NewMigrator(fsys fs.FS) (*Migrator, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var versions []int64
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %q: name must start with a number and '_'", n)
		}
		versions = append(versions, v)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	return &Migrator{fsys: fsys, versions: versions}, nil
}

// Latest is the version this binary's migrations reach.
func (m *Migrator) Latest() int64 { return m.versions[len(m.versions)-1] }

// Versions lists every known version in ascending order.
func (m *Migrator) Versions() []int64 { return append([]int64(nil), m.versions...) }

func (m *Migrator) provider(db *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectSQLite3, db, m.fsys, goose.WithDisableGlobalRegistry(true))
}

// Version returns the file's version according to goose's own table, the
// source of truth; user_version is only its cached copy.
func (m *Migrator) Version(ctx context.Context, db *sql.DB) (int64, error) {
	p, err := m.provider(db)
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

// UpTo migrates db up to version (Latest if version is 0) and mirrors the
// result into user_version. It returns the version before and after.
func (m *Migrator) UpTo(ctx context.Context, db *sql.DB, version int64) (from, to int64, err error) {
	if version == 0 {
		version = m.Latest()
	}
	p, err := m.provider(db)
	if err != nil {
		return 0, 0, err
	}
	if from, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, err
	}
	if from > m.Latest() {
		return from, from, fmt.Errorf("file is at version %d, ahead of this binary's %d", from, m.Latest())
	}
	_, upErr := p.UpTo(ctx, version)
	// Whatever happened, record where the file now stands: goose commits each
	// migration separately, so a failure may leave it part of the way up.
	to, err = p.GetDBVersion(ctx)
	if err != nil {
		return from, to, err
	}
	if err := SetUserVersion(ctx, db, to); err != nil {
		return from, to, err
	}
	return from, to, upErr
}

// DownTo rolls db back to version. user_version is cleared first so that a
// crash midway can never leave a cached version above the real one.
func (m *Migrator) DownTo(ctx context.Context, db *sql.DB, version int64) (from, to int64, err error) {
	p, err := m.provider(db)
	if err != nil {
		return 0, 0, err
	}
	if from, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, err
	}
	if err := SetUserVersion(ctx, db, 0); err != nil {
		return from, from, err
	}
	_, downErr := p.DownTo(ctx, version)
	to, err = p.GetDBVersion(ctx)
	if err != nil {
		return from, to, err
	}
	if err := SetUserVersion(ctx, db, to); err != nil {
		return from, to, err
	}
	return from, to, downErr
}
