package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// Backup replicates tenant files while they are open (Litestream, in
// internal/replication). Only open tenants are registered, so the cost of
// backup grows with the open tenants, not with the tenants on disk.
type Backup interface {
	// Register starts replicating an existing file; called before the
	// app opens it, so every write the app acknowledges is replicated.
	Register(ctx context.Context, path string) error
	// Unregister syncs the file to its replica, waiting, and stops
	// replicating it; called after the app closed it. On error the file
	// stays registered and nothing is lost.
	Unregister(ctx context.Context, path string) error
	// Forget stops replicating the file without waiting for its replica,
	// for a file about to be removed; an error means its last changes may
	// be missing from the replica, never that it is still registered.
	Forget(ctx context.Context, path string) error
	// Maintain compacts and applies retention to a registered file.
	Maintain(ctx context.Context, path string) error
	// Restore writes the replica of the file named name, as of at or txid
	// (zero values: the latest), to out.
	Restore(ctx context.Context, name, out string, at time.Time, txid uint64) error
	// ReplicaTXID is the newest transaction in the replica of the file
	// named name: 0 if nothing was ever replicated.
	ReplicaTXID(ctx context.Context, name string) (uint64, error)
}

// backupState tracks tenants whose final sync failed, to retry them.
type backupState struct {
	mu      sync.Mutex
	pending map[silo.TenantID]bool
	stop    chan struct{}
	done    chan struct{}
}

const (
	backupTimeout    = 30 * time.Second // one register or final sync
	backupRetryEvery = 5 * time.Second
	// backupProbeTimeout bounds the replica check before a retry.
	backupProbeTimeout = 5 * time.Second
	forgetTimeout      = 5 * time.Second // the last upload of a file being removed
)

// register is called on the open path, before the app opens the file. A
// failure (replica unreachable) does not fail the request: the tenant is
// served and its backup catches up when the replica is back.
func (s *Store) register(ctx context.Context, id silo.TenantID, path string) {
	if s.cfg.Backup == nil {
		return
	}
	// Recorded first: the tenant is served even if Register fails, and its
	// writes must then be synced after a crash (RecoverBackups) and count
	// as backed up for disaster recovery (BackupSeen).
	if s.cfg.OnBackupState != nil {
		s.cfg.OnBackupState(ctx, id, true)
	}
	rctx, cancel := context.WithTimeout(ctx, backupTimeout)
	defer cancel()
	if err := s.cfg.Backup.Register(rctx, path); err != nil {
		s.log.Warn("backup: register failed; serving, will retry", "tenant", id, "err", err)
		s.addPending(id)
	}
}

// unregister is called after the app closed the file, on a background
// worker: maintenance when due, then the final sync. If the sync fails the
// file stays registered and is retried, so a replica outage loses nothing.
func (s *Store) unregister(id silo.TenantID, path string) {
	if s.cfg.Backup == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), backupTimeout)
	defer cancel()
	// A file whose registration failed when it opened (the replica was
	// unreachable) is not registered: Unregister would do nothing and
	// succeed, and the tenant's mark would go with its writes not in the
	// replica. Register it now (a no-op if it is), so the sync is real.
	if err := s.cfg.Backup.Register(ctx, path); err != nil {
		s.log.Warn("backup: register before the final sync failed; will retry", "tenant", id, "err", err)
		s.addPending(id)
		return
	}
	if err := s.cfg.Backup.Maintain(ctx, path); err != nil {
		s.log.Warn("backup: maintenance failed", "tenant", id, "err", err)
	}
	if err := s.cfg.Backup.Unregister(ctx, path); err != nil {
		s.log.Warn("backup: final sync failed; will retry", "tenant", id, "err", err)
		s.addPending(id)
		return
	}
	if s.cfg.OnBackupState != nil {
		s.cfg.OnBackupState(ctx, id, false)
	}
}

func (s *Store) addPending(id silo.TenantID) {
	s.backup.mu.Lock()
	s.backup.pending[id] = true
	s.backup.mu.Unlock()
}

// retryLoop retries the final sync of tenants whose unregister failed. It
// holds each such tenant meanwhile, so a request never reopens a file that
// is being unregistered.
func (s *Store) retryLoop() {
	defer close(s.backup.done)
	t := time.NewTicker(backupRetryEvery)
	defer t.Stop()
	for {
		select {
		case <-s.backup.stop:
			return
		case <-t.C:
		}
		s.backup.mu.Lock()
		ids := make([]silo.TenantID, 0, len(s.backup.pending))
		for id := range s.backup.pending {
			ids = append(ids, id)
		}
		s.backup.pending = map[silo.TenantID]bool{}
		s.backup.mu.Unlock()
		for _, id := range ids {
			s.syncClosed(id)
		}
	}
}

// syncClosed registers (if needed) and unregisters a tenant's file while the
// tenant is held: its replica catches up with the file.
func (s *Store) syncClosed(id silo.TenantID) {
	path, err := s.Path(id)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), backupTimeout)
	defer cancel()
	// Ask the replica first, without the hold: while it is unreachable a
	// retry under the hold would close an open tenant and keep its
	// requests waiting (then 503) for as long as the attempt takes, every
	// retry period, for the whole outage. (A file gone needs no replica.)
	if _, err := os.Stat(path); err == nil {
		pctx, pcancel := context.WithTimeout(ctx, backupProbeTimeout)
		_, err = s.cfg.Backup.ReplicaTXID(pctx, filepath.Base(path))
		pcancel()
		if err != nil {
			s.addPending(id)
			return
		}
	}
	release, err := s.cache.Hold(ctx, id, silo.ETENANTBUSY)
	if err != nil {
		s.addPending(id)
		return
	}
	defer release()
	if sqlite.Empty(path) {
		// See syncHeld; the mark stays, so each start says so again.
		s.log.Warn("backup: tenant file is empty (truncated or replaced); not synced, restore it (silo restore)", "tenant", id)
		return
	}
	if _, err := os.Stat(path); err != nil {
		// Deleted or moved away meanwhile; it may still be registered (its
		// final sync failed before the file went): stop that.
		if err := s.cfg.Backup.Forget(ctx, path); err != nil {
			s.log.Warn("backup: forget a removed file", "tenant", id, "err", err)
		}
		// Nothing left to sync: the mark would be retried at every start.
		if s.cfg.OnBackupState != nil {
			s.cfg.OnBackupState(ctx, id, false)
		}
		return
	}
	if err := s.cfg.Backup.Register(ctx, path); err != nil {
		s.log.Warn("backup: retry register failed", "tenant", id, "err", err)
		s.addPending(id)
		return
	}
	s.unregister(id, path)
}

// syncHeld brings the replica of a tenant file the caller holds (so not
// open in the cache) up to date with the file: it registers the file, so
// that Litestream reads what changed since its last sync, or snapshots a
// file it does not know (one a move or a restore just wrote), then syncs
// and unregisters it. It is recorded as registered meanwhile, so that a
// crash is recovered at the next start; if the final sync fails the file
// stays registered and is retried, like an evicted tenant's.
func (s *Store) syncHeld(ctx context.Context, id silo.TenantID, path string) error {
	if s.cfg.Backup == nil {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil // no file, nothing to sync
	}
	if sqlite.Empty(path) {
		// Truncated: nothing of the tenant's to save, and registering it
		// would make the empty file the replica's newest state, the one a
		// restore of "the latest" brings back.
		s.log.Warn("backup: tenant file is empty (truncated or replaced); not synced", "tenant", id)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backupTimeout)
	defer cancel()
	if s.cfg.OnBackupState != nil { // first, as in register
		s.cfg.OnBackupState(ctx, id, true)
	}
	if err := s.cfg.Backup.Register(ctx, path); err != nil {
		return fmt.Errorf("backup: register: %w", err)
	}
	if err := s.cfg.Backup.Unregister(ctx, path); err != nil {
		s.addPending(id)
		return fmt.Errorf("backup: sync: %w", err)
	}
	if s.cfg.OnBackupState != nil {
		s.cfg.OnBackupState(ctx, id, false)
	}
	return nil
}

// forget makes sure Litestream no longer replicates a held tenant's file
// before the file is removed or replaced: normally it is not registered
// (closing the handle unregistered it), but a final sync that failed
// leaves it registered, and removing a file under Litestream's open
// connections would keep them on the deleted file, and keep a later file
// at the same path from being registered.
func (s *Store) forget(ctx context.Context, id silo.TenantID, path string) {
	if s.cfg.Backup == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgetTimeout)
	defer cancel()
	if err := s.cfg.Backup.Forget(ctx, path); err != nil {
		s.log.Warn("backup: stop replicating a file being removed or replaced", "tenant", id, "err", err)
	}
}

// syncBeforeReplacing syncs a held tenant's file before a restore or a
// delete replaces or removes it, so that nothing the replica lacks is lost.
// A file that cannot be read (corrupt: the very reason to restore it) or a
// full disk leaves nothing Litestream could upload: that is logged and the
// caller goes on. Any other failure is the replica's, and the caller stops.
func (s *Store) syncBeforeReplacing(ctx context.Context, id silo.TenantID, path string) error {
	err := s.syncHeld(ctx, id, path)
	if err == nil {
		return nil
	}
	// The check decides whether the file's writes may be let go: it must
	// not read as "unreadable" because the caller gave up meanwhile.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readableTimeout)
	defer cancel()
	if errors.Is(err, syscall.ENOSPC) || unreadable(cctx, path) {
		s.log.Warn("backup: cannot sync a tenant file that is unreadable, or the disk is full; going on without", "tenant", id, "err", err)
		return nil
	}
	s.log.Warn("backup: sync before replacing a tenant file failed", "tenant", id, "err", err)
	return silo.Errorf(silo.EUNAVAILABLE, "The tenant's backup cannot be brought up to date now (the server log has the detail); nothing was changed; retry when the replica is reachable.")
}

// readableTimeout bounds the quick_check of a tenant file whose sync failed.
const readableTimeout = 2 * time.Minute

// unreadable reports whether path is not a SQLite file that passes
// quick_check. A check that ctx cut short found nothing: false.
func unreadable(ctx context.Context, path string) bool {
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 1, MustExist: true, BusyTimeout: time.Second})
	if err != nil {
		return ctx.Err() == nil
	}
	defer db.Close()
	var res string
	err = db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res)
	if ctx.Err() != nil {
		return false
	}
	return err != nil || res != "ok"
}

// RecoverBackups brings the replicas of the given tenants up to date with
// their files: after a crash, the tenants that were open may be a few
// transactions behind. Run it before serving.
func (s *Store) RecoverBackups(ctx context.Context, ids []silo.TenantID) error {
	if s.cfg.Backup == nil {
		return nil
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, id := range ids {
		if ctx.Err() != nil {
			break // stopping: the rest stay marked for the next start
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.syncClosed(id)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Those that failed are pending, retried in the background: say so,
	// or an unreachable replica at the start goes unnoticed.
	s.backup.mu.Lock()
	failed := 0
	for _, id := range ids {
		if s.backup.pending[id] {
			failed++
		}
	}
	s.backup.mu.Unlock()
	if failed > 0 {
		return fmt.Errorf("%d of %d tenants could not be synced to their replicas now; retrying in the background", failed, len(ids))
	}
	return nil
}

// RestoreIfMissing restores t's file from its replica if the file is
// missing (a new machine, an empty data dir), and reports whether it did.
func (s *Store) RestoreIfMissing(ctx context.Context, t *silo.Tenant) (bool, error) {
	if s.cfg.Backup == nil {
		return false, silo.Errorf(silo.EUNAVAILABLE, "Backups are off.")
	}
	path, err := s.Path(t.ID)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	release, err := s.cache.Hold(ctx, t.ID, silo.ETENANTRESTORING)
	if err != nil {
		return false, err
	}
	defer release()
	if s.placement(t) != silo.StrategyDatabase {
		return false, nil // moved meanwhile
	}
	if s.isDeleted(t) {
		return false, nil // deleted while the caller held an older view
	}
	if _, err := os.Stat(path); err == nil {
		return false, nil // someone restored it first
	}
	txid, err := s.cfg.Backup.ReplicaTXID(ctx, filepath.Base(path))
	if err != nil {
		return false, silo.Errorf(silo.EUNAVAILABLE, "The tenant's file is missing and its backup cannot be read now; retry later.")
	}
	if txid == 0 {
		seen := true
		if s.cfg.BackupSeen != nil {
			if seen, err = s.cfg.BackupSeen(ctx, t.ID); err != nil {
				return false, err
			}
		}
		if seen {
			// It was registered, so it had a replica: this one is not it
			// (a wrong URL?) or it was lost. Re-creating the tenant empty
			// would hide that, and replicate the empty file over its
			// history once the right replica is back.
			return false, silo.Errorf(silo.EUNAVAILABLE, "The tenant's file is missing and its backup is empty; check the replica settings.")
		}
		// Never registered: the tenant signed up and its file was never
		// opened (every open registers it first). It had no data to lose.
		s.log.Warn("backup: missing file of a tenant never backed up; re-creating it empty", "tenant", t.Slug)
		return true, s.template.copyTo(path)
	}
	s.log.Info("backup: restoring missing tenant file from its replica", "tenant", t.Slug)
	return true, s.restoreInto(ctx, path, time.Time{}, 0)
}

// ReplicaTXID is the newest transaction in the backup of tenant id's file
// (0 if it has none); backups off is an error.
func (s *Store) ReplicaTXID(ctx context.Context, id silo.TenantID) (uint64, error) {
	if s.cfg.Backup == nil {
		return 0, silo.Errorf(silo.EUNAVAILABLE, "Backups are off.")
	}
	path, err := s.Path(id)
	if err != nil {
		return 0, err
	}
	return s.cfg.Backup.ReplicaTXID(ctx, filepath.Base(path))
}

// EnsureFile restores t's file from its replica if t is placed in its own
// file, backups are on and the file is missing (see RestoreIfMissing).
func (s *Store) EnsureFile(ctx context.Context, t *silo.Tenant) error {
	if s.cfg.Backup == nil || s.placement(t) != silo.StrategyDatabase {
		return nil
	}
	_, err := s.RestoreIfMissing(ctx, t)
	return err
}

// RestoreFile puts back the file of a tenant that has none (an undelete),
// restoring the latest state of its replica with restore. It is for
// processes that do not run the backup themselves (the CLI beside a
// server): nothing is registered here.
func (s *Store) RestoreFile(ctx context.Context, id silo.TenantID, restore func(ctx context.Context, name, out string) error) error {
	path, err := s.Path(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return silo.Errorf(silo.ECONFLICT, "The tenant's file exists.")
	}
	release, err := s.cache.Hold(ctx, id, silo.ETENANTRESTORING)
	if err != nil {
		return err
	}
	defer release()
	if err := s.restoreWith(path, func(tmp string) error { return restore(ctx, filepath.Base(path), tmp) }); err != nil {
		return err
	}
	s.setDeleted(id, false)
	return nil
}

// RestoreInPlace replaces a database-placed tenant's file with its replica
// as of at or txid. The tenant is held meanwhile: requests wait, then get
// 503 tenant_restoring.
func (s *Store) RestoreInPlace(ctx context.Context, t *silo.Tenant, at time.Time, txid uint64) error {
	if s.cfg.Backup == nil {
		return silo.Errorf(silo.EUNAVAILABLE, "Backups are off.")
	}
	if s.placement(t) != silo.StrategyDatabase {
		return silo.Errorf(silo.ECONFLICT, "Only tenants placed in their own file can be restored; this one is %q.", s.placement(t))
	}
	release, err := s.cache.Hold(ctx, t.ID, silo.ETENANTRESTORING)
	if err != nil {
		return err
	}
	defer release()
	// A move may have finished while this waited for the hold: restoring
	// the file then would leave the tenant's live rows as they are and a
	// stray file behind.
	if p := s.placement(t); p != silo.StrategyDatabase {
		return silo.Errorf(silo.ECONFLICT, "Only tenants placed in their own file can be restored; this one is %q.", p)
	}
	if s.isDeleted(t) { // deleted while this waited: undelete it instead
		return silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	// The hold closed the app's handle; the closer unregistered it. Wait
	// for a retry that may still hold it registered.
	path, err := s.Path(t.ID)
	if err != nil {
		return err
	}
	if err := s.cfg.Backup.Unregister(ctx, path); err != nil {
		s.log.Warn("backup: final sync before a restore failed", "tenant", t.Slug, "err", err)
		return silo.Errorf(silo.EUNAVAILABLE, "The tenant's backup cannot be brought up to date now (the server log has the detail); nothing was changed; retry when the replica is reachable.")
	}
	// The file may hold writes its replica lacks even when it was not
	// registered (a crash of a process that had it open, a move that
	// wrote it): sync them first, so that "the latest" means the latest,
	// and so that the state being replaced stays in the backup's history.
	if err := s.syncBeforeReplacing(ctx, t.ID, path); err != nil {
		return err
	}
	s.forget(ctx, t.ID, path)
	if err := s.restoreInto(ctx, path, at, txid); err != nil {
		return err
	}
	// Until Litestream reads the restored file, the replica's newest state
	// is the one just replaced: a crash, or a restore of "the latest",
	// would bring it back. Make the restored state the newest now.
	if err := s.syncHeld(ctx, t.ID, path); err != nil {
		s.log.Warn("backup: sync after restore failed; retrying", "tenant", t.Slug, "err", err)
		s.addPending(t.ID)
	}
	return nil
}

// restoreInto restores the replica of path into path: into a temporary
// file first, so a failed restore leaves the old file alone.
func (s *Store) restoreInto(ctx context.Context, path string, at time.Time, txid uint64) error {
	return s.restoreWith(path, func(tmp string) error {
		return s.cfg.Backup.Restore(ctx, filepath.Base(path), tmp, at, txid)
	})
}

// restoreWith restores into a temporary file with restore, then replaces
// path with it. The old file's -wal and Litestream's state describe the old
// history and go first; the rename then swaps the files in one step, so the
// tenant has a file (the old one or the restored one) whatever happens.
func (s *Store) restoreWith(path string, restore func(tmp string) error) error {
	tmp := filepath.Join(filepath.Dir(path), tempPrefixRestore+filepath.Base(path))
	_ = sqlite.RemoveFiles(tmp)
	if err := restore(tmp); err != nil {
		_ = sqlite.RemoveFiles(tmp)
		if se := (*silo.Error)(nil); errors.As(err, &se) {
			return err // says what went wrong (no backup, no state at that point)
		}
		s.log.Warn("backup: restore failed", "file", filepath.Base(path), "err", err)
		return silo.Errorf(silo.EUNAVAILABLE, "The backup cannot be read now (the server log has the detail); nothing was changed; retry later.")
	}
	if err := errors.Join(sqlite.RemoveCompanions(path), os.RemoveAll(localStateDir(path))); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	_ = sqlite.RemoveCompanions(tmp)
	return syncDir(filepath.Dir(path))
}

// localStateDir is where Litestream keeps its state beside a file
// (.<file>-litestream). Its name is known here rather than asked of the
// Backup so that a process without one (the CLI deleting a tenant) still
// removes it.
func localStateDir(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"-litestream")
}
