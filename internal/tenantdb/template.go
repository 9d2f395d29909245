package tenantdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// template is a pre-migrated, empty tenant file. Signing up copies its bytes
// instead of running every migration, so a signup costs one small file write
// whatever the length of the schema's history.
type template struct {
	version int64
	data    []byte
	// syncDir makes the new file's directory entry durable before the
	// catalog row that names it (durability full). Under durability normal
	// the catalog's own commit is not fsynced either, so a power loss can
	// lose a recent signup whole; the data itself is always synced, so a
	// copy is never torn.
	syncDir bool
}

// loadTemplate returns the template for the migrator's latest version,
// building it under dir if it does not exist yet. Each version has its own
// file, so a binary upgrade builds a fresh one and never trusts an old one.
func loadTemplate(ctx context.Context, dir string, m *sqlite.Migrator, o sqlite.Options) (*template, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("tenant-v%04d.db", m.Latest()))
	if data, err := os.ReadFile(path); err == nil && templateAt(data, m.Latest()) {
		return &template{version: m.Latest(), data: data, syncDir: o.Durability == sqlite.DurabilityFull}, nil
	} else if err == nil {
		// Truncated or replaced: every signup would get a file its first
		// open refuses (version 0) or misreads. Build it again.
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	tmp, err := os.CreateTemp(dir, ".build-*.db")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer sqlite.RemoveFiles(tmp.Name())
	db, err := sqlite.Open(tmp.Name(), o)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := sqlite.SetWAL(ctx, db); err != nil {
		return nil, err
	}
	if _, _, err := m.Migrate(ctx, db, 0); err != nil {
		return nil, err
	}
	// Closing the last connection checkpoints the WAL into the main file,
	// so the .db alone is the whole template.
	if err := db.Close(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return nil, err
	}
	t := &template{version: m.Latest(), data: data, syncDir: o.Durability == sqlite.DurabilityFull}
	if err := t.copyTo(path); err != nil {
		return nil, err
	}
	return t, nil
}

// templateAt reports whether data is a SQLite database whose header says
// schema version v (user_version, 4 big-endian bytes at offset 60).
func templateAt(data []byte, v int64) bool {
	return len(data) >= 100 && string(data[:16]) == "SQLite format 3\x00" &&
		int64(binary.BigEndian.Uint32(data[60:64])) == v
}

// copyTo writes the template to path atomically: a temporary file, fsync,
// rename, fsync of the directory. A crash leaves either no file or a whole
// one, and never overwrites an existing tenant.
func (t *template) copyTo(path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefixNew+"*.db")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(t.data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// A -wal left beside a missing file would be replayed onto the new one
	// at its first open (SQLite cannot tell whose WAL it is). Only when
	// the file is missing: a live tenant's WAL is its data.
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := sqlite.RemoveCompanions(path); err != nil {
			return err
		}
	}
	// Link fails if path exists, unlike rename: an id collision can never
	// clobber a tenant.
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	ok = true
	os.Remove(tmp)
	if t.syncDir {
		return syncDir(dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Prefixes of the temporary files a store writes beside its tenants: a
// template copy on its way to a new tenant, a restore on its way to
// replacing one. A crash can leave them behind (RemoveTempFiles).
const (
	tempPrefixNew     = ".new-"
	tempPrefixRestore = ".restore-"
)

// RemoveTempFiles removes the temporary files (and their -wal, -shm or
// Litestream .tmp companions) that a crash left in the tenants directory,
// if older than age: a younger one may belong to a signup or restore under
// way. They are not tenants, so the orphan sweep must not take them for
// ones.
func (s *Store) RemoveTempFiles(age time.Duration) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !IsTempFile(name) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		s.log.Info("removing a temporary file a crash left", "file", name)
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsTenantFile reports whether name, in the tenants directory, is named as
// the store names tenant files (<id>.db, id as silo.NewID makes them):
// what a signup, a move or a restore leaves there, and nothing an operator
// put there by hand.
func IsTenantFile(name string) bool {
	id, ok := strings.CutSuffix(name, ".db")
	return ok && silo.IsID(id)
}

// IsTempFile reports whether name, in the tenants directory, is one of the
// store's temporary files rather than a tenant's.
func IsTempFile(name string) bool {
	return strings.HasPrefix(name, tempPrefixNew) || strings.HasPrefix(name, tempPrefixRestore)
}
