// Package tenantdb owns the tenants' SQLite files: where they live, how a new
// one is provisioned from a template, the cache of open handles, and the
// tenant-scoped services that run sqlc queries on them.
package tenantdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
	"github.com/silohq/silo/schema"
)

// Config configures a Store.
type Config struct {
	Dir           string         // the data directory; files live in Dir/tenants
	SQLite        sqlite.Options // how each tenant file is opened
	Cache         CacheConfig
	MigrateOnOpen bool // migrate a file that is behind on its first open
	Logger        *slog.Logger
	// OnMigrate, if set, is told of every migration run on open, for the
	// catalog's ledger.
	OnMigrate func(ctx context.Context, m silo.MigrationRun)
	// MoveHook, if set, is called at each step of a move ("journaled",
	// "copied", "verified", "committed"). Tests use it to inject failures;
	// returning ErrSimulatedCrash stops the move as a crash would, without
	// any rollback or cleanup.
	MoveHook func(step string) error
	// Backup, if set, replicates each tenant file while it is open.
	Backup Backup
	// OnBackupState records that a tenant was registered for backup (true)
	// or cleanly unregistered (false), for the crash-recovery sweep.
	OnBackupState func(ctx context.Context, id silo.TenantID, registered bool)
	// BackupSeen, if set, reports whether a tenant's file was ever
	// registered for backup; a missing file whose replica is empty is
	// re-created empty only if it was not. Unset: assume it was.
	BackupSeen func(ctx context.Context, id silo.TenantID) (bool, error)
	// OnUnbackedWrite, for a store without Backup, records that a
	// tenant's file is about to change with no replica following it
	// (--no-backup). Called before the change, once per tenant per
	// process. The next start with backups syncs the tenants recorded
	// (as after a crash), and disaster recovery knows they had data;
	// otherwise a tenant written now and never opened after backups came
	// back would keep its replica's older state, or none, for good.
	OnUnbackedWrite func(ctx context.Context, id silo.TenantID)
}

// ErrSimulatedCrash, returned by a MoveHook, abandons a move where it is.
var ErrSimulatedCrash = errors.New("simulated crash")

// Store is the set of tenant files under one data directory.
type Store struct {
	cfg      Config
	dir      string
	migrator *sqlite.Migrator
	template *template
	cache    *Cache
	shared   *sql.DB // data/shared.db: the rows of every tenant placed "shared"
	log      *slog.Logger

	mu      sync.Mutex
	moved   map[silo.TenantID]silo.Strategy // placements changed by moves in this process
	deleted map[silo.TenantID]time.Time     // tenants deleted by this process, and when (until undeleted)

	backup   backupState
	unbacked sync.Map     // silo.TenantID -> true: OnUnbackedWrite called
	quota    atomic.Int64 // bytes per tenant file; 0: no quota
	external External     // PostgreSQL's placements, for moves; nil without
}

// Open prepares the tenants directory and the provisioning template.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, dir: filepath.Join(cfg.Dir, "tenants"), log: cfg.Logger}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, err
	}
	m, err := sqlite.NewMigrator(schema.Tenant())
	if err != nil {
		return nil, err
	}
	s.migrator = m
	if s.template, err = loadTemplate(ctx, filepath.Join(cfg.Dir, "templates"), m, cfg.SQLite); err != nil {
		return nil, fmt.Errorf("tenantdb: template: %w", err)
	}
	if s.shared, err = s.openShared(ctx); err != nil {
		return nil, fmt.Errorf("tenantdb: shared.db: %w", err)
	}
	s.moved = make(map[silo.TenantID]silo.Strategy)
	s.deleted = make(map[silo.TenantID]time.Time)
	s.cache = NewCache(cfg.Cache, s.openTenant, s.closeTenant)
	s.backup = backupState{pending: map[silo.TenantID]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Backup != nil {
		go s.retryLoop()
	} else {
		close(s.backup.done)
	}
	return s, nil
}

// openShared opens data/shared.db, creating it and bringing it to this
// binary's schema: one file, so it is migrated here rather than by the fleet.
func (s *Store) openShared(ctx context.Context) (*sql.DB, error) {
	o := s.cfg.SQLite
	o.MaxConns = 8
	db, err := sqlite.Open(s.sharedPath(), o)
	if err != nil {
		return nil, err
	}
	if err := sqlite.SetWAL(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	if _, _, err := s.migrator.Migrate(ctx, db, 0); err != nil {
		db.Close()
		return nil, err
	}
	// shared.db is always open, so it stays registered for backup for the
	// process's lifetime, like the catalog.
	if s.cfg.Backup != nil {
		if err := s.cfg.Backup.Register(ctx, s.sharedPath()); err != nil {
			s.log.Warn("backup: shared.db is not replicated", "err", err)
		}
	}
	return db, nil
}

func (s *Store) sharedPath() string { return filepath.Join(s.cfg.Dir, "shared.db") }

// Close closes every open tenant file, waiting up to ctx for borrowers,
// then the shared file.
func (s *Store) Close(ctx context.Context) error {
	err := s.cache.Close(ctx)
	close(s.backup.stop)
	<-s.backup.done
	err = errors.Join(err, s.shared.Close())
	if s.cfg.Backup != nil {
		err = errors.Join(err, s.cfg.Backup.Unregister(ctx, s.sharedPath()))
	}
	return err
}

// placement is where t's rows are now: a move made in this process after
// t was read from the catalog wins over t.Strategy.
func (s *Store) placement(t *silo.Tenant) silo.Strategy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.moved[t.ID]; ok {
		return p
	}
	return t.Strategy
}

// setDeleted records that tenant id was deleted in this process, and when
// (or, with false, that it was undeleted here): a request that resolved the
// tenant before the delete must then find it gone, not write to the shared
// file or restore its file from the backup.
func (s *Store) setDeleted(id silo.TenantID, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deleted {
		s.deleted[id] = time.Now()
	} else {
		delete(s.deleted, id)
	}
}

// isDeleted reports whether t, as the caller resolved it, was deleted by
// this process since. A tenant undeleted by another process (the CLI) is
// resolved from a catalog row updated after the delete: that clears it.
func (s *Store) isDeleted(t *silo.Tenant) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.deleted[t.ID]
	if !ok {
		return false
	}
	if t.UpdatedAt.UnixMilli() > at.UnixMilli() {
		delete(s.deleted, t.ID)
		return false
	}
	return true
}

func (s *Store) setPlacement(id silo.TenantID, p silo.Strategy) {
	s.mu.Lock()
	s.moved[id] = p
	s.mu.Unlock()
}

// Cache exposes the handle cache, for stats and for holds.
func (s *Store) Cache() *Cache { return s.cache }

// Migrator is the tenant schema's migrator.
func (s *Store) Migrator() *sqlite.Migrator { return s.migrator }

// idRE is what a tenant id must look like before it becomes a file name: a
// second check behind the rule that ids are only ever generated by Silo.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// Path returns the file of tenant id. The name derives from the id alone.
func (s *Store) Path(id silo.TenantID) (string, error) {
	if !idRE.MatchString(string(id)) {
		return "", silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	return filepath.Join(s.dir, string(id)+".db"), nil
}

// Dir is the directory of tenant files.
func (s *Store) Dir() string { return s.dir }

// Provision creates tenant id's file from the template. The file appears
// under its final name only once it is complete and on disk.
func (s *Store) Provision(ctx context.Context, id silo.TenantID) error {
	path, err := s.Path(id)
	if err != nil {
		return err
	}
	return s.template.copyTo(path)
}

// Remove deletes every trace of tenant t's data, in whatever placement:
// its file with -wal and -shm, its rows in the shared file, and its rows in
// a PostgreSQL placement. It first drains the tenant's requests and closes
// its handle; requests arriving meanwhile wait and then find no tenant, and
// so do requests that resolved the tenant before (until Undeleted). With
// backups, the file is synced to its replica first, which is kept for
// undelete: if that fails, nothing is removed.
func (s *Store) Remove(ctx context.Context, t *silo.Tenant) error {
	return s.remove(ctx, t, true)
}

// RemoveOrphan is Remove for a file no catalog row names (a signup a crash
// interrupted): there is nothing to keep a backup of.
func (s *Store) RemoveOrphan(ctx context.Context, id silo.TenantID) error {
	return s.remove(ctx, &silo.Tenant{ID: id, Strategy: silo.StrategyDatabase}, false)
}

func (s *Store) remove(ctx context.Context, t *silo.Tenant, sync bool) error {
	path, err := s.Path(t.ID)
	if err != nil {
		return err
	}
	release, err := s.cache.Hold(ctx, t.ID, silo.ETENANTNOTFOUND)
	if err != nil {
		// Given up while requests still had the tenant: nothing removed.
		s.log.Warn("remove: waiting for the tenant's requests", "tenant", t.ID, "err", err)
		return silo.Errorf(silo.EUNAVAILABLE, "The tenant is still in use; nothing was deleted; retry.")
	}
	defer release()
	// Read the placement under the hold: a move that finished while this
	// waited for it has changed it, and its new placement is what to drop.
	p := s.placement(t)
	// What can fail for want of the replica or PostgreSQL fails first, with
	// nothing changed yet (a 503 the caller may undo its own steps for).
	if sync {
		if err := s.syncBeforeReplacing(ctx, t.ID, path); err != nil {
			return err
		}
	}
	// From here on data goes: the removal runs to its end even if the
	// caller goes away (an operator's client timing out), or the tenant
	// would be left with its rows half removed from shared.db until
	// another delete. Until here, giving up changed nothing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	if p.Postgres() {
		if err := s.dropAny(ctx, t.ID, p); err != nil {
			return err
		}
	}
	if sync {
		s.setDeleted(t.ID, true)
	}
	s.forget(ctx, t.ID, path)
	err = errors.Join(sqlite.RemoveFiles(path), s.deleteSharedRows(ctx, t.ID))
	// Litestream keeps its local state beside the file, as .<file>-litestream;
	// remove it even when this process runs without backups (the CLI).
	return errors.Join(err, os.RemoveAll(localStateDir(path)))
}

// removeTimeout bounds the removal of a tenant's data once under way (see
// remove), which no longer ends with its caller's context.
const removeTimeout = 10 * time.Minute

// deleteSharedRows removes tenant id's rows from the shared file.
func (s *Store) deleteSharedRows(ctx context.Context, id silo.TenantID) error {
	tx, err := s.shared.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := tenantsql.New(tx)
	if err := q.DeleteTenantTasks(ctx, string(id)); err != nil {
		return err
	}
	if err := q.DeleteTenantProjects(ctx, string(id)); err != nil {
		return err
	}
	return sqlite.Commit(ctx, tx)
}

// Acquire borrows tenant id's handle; see Cache.Acquire.
func (s *Store) Acquire(ctx context.Context, id silo.TenantID) (*sql.DB, func(), error) {
	return s.cache.Acquire(ctx, id)
}

// openTenant is the cache's miss path: open the file and make sure it is at
// this binary's schema version before anything reads it.
func (s *Store) openTenant(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
	path, err := s.Path(id)
	if err != nil {
		return nil, err
	}
	// A tenant's file is only ever created by Provision; the open below
	// never creates one (MustExist) and reports a missing file as a missing
	// tenant. With backups, find out first: Litestream must not be asked to
	// register a file that is not there.
	if s.cfg.Backup != nil {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
		} else if err != nil {
			return nil, err
		}
		// Before Litestream sees it: it would replicate the emptied file
		// as the tenant's newest state.
		if sqlite.Empty(path) {
			return nil, s.noSchema(id)
		}
		s.register(ctx, id, path)
	}
	o := s.cfg.SQLite
	o.MustExist = true
	// Without backups nothing else needs the file while it is open (holds
	// close the handle before a move, restore or delete touches the file), so
	// take it for ourselves (sqlite.Options.Owned): one connection in
	// exclusive locking mode, which keeps its lock and so spares every
	// transaction the syscalls SQLite otherwise makes to notice other
	// connections; the WAL index in its memory instead of an mmapped -shm
	// file, which removes the -shm create/map/unmap/unlink from every open
	// and close; and on Linux no walk of SQLite's list of the process's open
	// files, twice per open. The emptied WAL is kept (KeepWAL), so an open
	// creates and a close unlinks no file at all. One connection serialises
	// a tenant's requests, which costs nothing measurable even for one
	// tenant taking all the traffic (13,081 vs 13,677 req/s), and a miss
	// (open, first query, close) costs a third of the CPU;
	// docs/benchmarks.md has the figures. Another process that opens the
	// file meanwhile (the sqlite3 shell, `silo migrate down`) waits for
	// busy_timeout, then gets "database is locked", instead of racing us.
	//
	// With backups Litestream opens its own connections to the file, so the
	// ordinary VFS, locking mode and pool stay.
	if s.cfg.Backup == nil {
		o.Owned, o.KeepWAL = true, true
	}
	db, err := sqlite.Open(path, o)
	if err == nil {
		err = s.gate(ctx, id, db)
		if err != nil {
			db.Close()
		}
	}
	if err != nil {
		if s.cfg.Backup != nil {
			s.addPending(id) // unregistered later, under a hold
		}
		if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
			err = silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
		}
		return nil, sqlite.FormatError(err)
	}
	return db, nil
}

// gate checks the file's schema version, read from the file header. A file
// that is behind is migrated (one transaction) or refused; a file ahead of
// this binary is refused, never touched.
func (s *Store) gate(ctx context.Context, id silo.TenantID, db *sql.DB) error {
	latest := s.migrator.Latest()
	v, err := sqlite.UserVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", id, err)
	}
	switch {
	case v == latest:
		return nil
	case v == 0:
		return s.noSchema(id)
	case v > latest:
		return errAhead(v, latest)
	case !s.cfg.MigrateOnOpen:
		return silo.Errorf(silo.ETENANTMIGRATING, "The tenant's data is being upgraded; retry shortly.")
	}
	rec := silo.MigrationRun{Tenant: id, Target: latest, StartedAt: time.Now()}
	rec.From, rec.To, rec.Err = s.migrator.Migrate(ctx, db, latest)
	rec.FinishedAt = time.Now()
	if rec.From != rec.To || rec.Err != nil {
		s.log.Info("migrated tenant on open", "tenant", id, "from", rec.From, "to", rec.To, "err", rec.Err)
		if s.cfg.OnMigrate != nil {
			s.cfg.OnMigrate(ctx, rec)
		}
	}
	if errors.Is(rec.Err, sqlite.ErrAhead) {
		return errAhead(rec.From, latest)
	} else if rec.Err != nil {
		return fmt.Errorf("tenant %s: migrate: %w", id, rec.Err)
	}
	// Write the new version into the file's header now rather than at the
	// next checkpoint: `silo migrate` in another process reads the header of
	// a file this process holds (see internal/fleet).
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return fmt.Errorf("tenant %s: checkpoint after migrating: %w", id, err)
	}
	return nil
}

// noSchema refuses a tenant file at schema version 0, truncated or
// replaced (a tenant's file always starts from a migrated template):
// migrating it would serve the tenant empty, as if its data were gone.
func (s *Store) noSchema(id silo.TenantID) error {
	s.log.Error("tenant file holds no data: truncated or replaced; not served (restore it: silo restore)", "tenant", id)
	return silo.Errorf(silo.ESTORAGE, "The tenant's data cannot be read; an operator must restore it.")
}

func errAhead(v, latest int64) error {
	return silo.Errorf(silo.ESCHEMAAHEAD, "The tenant's data is at schema version %d, newer than this server's %d; run a newer silo.", v, latest)
}

// closeTenant runs on a background worker: the app's handle closes first,
// then the backup's final sync and unregistration, in that order (the other
// order drops SQLite's locks under the app).
func (s *Store) closeTenant(id silo.TenantID, db *sql.DB) error {
	err := db.Close()
	if err != nil {
		s.log.Error("close tenant", "tenant", id, "err", err)
	}
	if path, perr := s.Path(id); perr == nil {
		s.unregister(id, path)
	}
	return err
}

// noteUnbacked calls OnUnbackedWrite for a tenant whose file is about to
// change while backups are off, once per process.
func (s *Store) noteUnbacked(ctx context.Context, id silo.TenantID) {
	if s.cfg.Backup != nil || s.cfg.OnUnbackedWrite == nil {
		return
	}
	if _, done := s.unbacked.Load(id); done {
		return
	}
	s.cfg.OnUnbackedWrite(ctx, id)
	s.unbacked.Store(id, true)
}
