package tenantdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
)

// MoveStats describes a finished move.
type MoveStats struct {
	From, To silo.Strategy
	Projects int
	Tasks    int
	Hash     string        // content hash of the copied rows, equal on both sides
	Pause    time.Duration // how long the tenant's requests were held
}

// MoveSteps are the catalog's part of a move: Journal records that the move
// started (so a restart can roll it back) and Commit flips the placement
// from the one the move copied from. Commit is the move's commit point:
// before it the source is authoritative, after it the target is.
type MoveSteps struct {
	Journal func(ctx context.Context) error
	Commit  func(ctx context.Context, from silo.Strategy) error
	// Abort clears the journal of a move that failed before its commit
	// point; it runs with the tenant still held, so it never clears the
	// journal of a move that started after this one.
	Abort func(ctx context.Context) error
	// Dropped records that the source is gone (after the commit).
	Dropped func(ctx context.Context) error
	// Pending returns the source of an earlier move still to be removed
	// (its removal failed: PostgreSQL away), or "". Nil: none.
	Pending func(ctx context.Context) (silo.Strategy, error)
}

// Move moves tenant t's rows to placement to, online: it holds the tenant
// (its requests wait, up to the cache's HoldWait, then get tenant_moving),
// copies every row in one transaction of the target, verifies row counts and
// a content hash per table, commits through steps, and only then releases
// the tenant and removes the source. Any failure before the commit point
// removes the partial copy and leaves the tenant where it was.
func (s *Store) Move(ctx context.Context, t *silo.Tenant, to silo.Strategy, steps MoveSteps) (MoveStats, error) {
	from := s.placement(t)
	st := MoveStats{From: from, To: to}
	if !to.Valid() {
		return st, silo.Errorf(silo.EINVALIDSTRATEGY, "Unknown placement %q.", to)
	}
	if from == to {
		return st, silo.Errorf(silo.ECONFLICT, "The tenant is already placed %q.", to)
	}
	release, err := s.cache.Hold(ctx, t.ID, silo.ETENANTMOVING)
	if err != nil {
		return st, err
	}
	start := time.Now()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	// Another move of this tenant may have finished while this one waited
	// for the hold. Going on from the placement read before the wait would
	// drop the target that move just filled (as leftovers), then copy from
	// the source it emptied: the tenant's data gone. Decide again, now that
	// nothing else can move it.
	if now := s.placement(t); now != from {
		if now == to {
			return st, silo.Errorf(silo.ECONFLICT, "The tenant is already placed %q.", to)
		}
		from, st.From = now, now
	}
	if s.isDeleted(t) {
		// Deleted while this waited: copying now would bring its data back
		// (from the shared file, emptied) into a new placement.
		return st, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	// The source an earlier move could not remove goes first: this move's
	// commit records its own source in its place, and the old one would
	// then be left for good (rows no catalog row names); or it is this
	// move's target, which must start empty.
	if steps.Pending != nil {
		pending, err := steps.Pending(ctx)
		if err != nil {
			return st, err
		}
		if pending != "" && pending != from {
			if err := s.dropAny(ctx, t.ID, pending); err != nil {
				s.log.Warn("remove the source an earlier move left", "tenant", t.ID, "from", pending, "err", err)
				return st, silo.Errorf(silo.EUNAVAILABLE, "The tenant's previous placement (%s) still holds its old rows and cannot be cleared now; nothing was moved; retry when it is reachable.", pending)
			}
			if steps.Dropped != nil {
				if err := steps.Dropped(ctx); err != nil {
					return st, err
				}
			}
		}
	}
	crashed := false
	hook := func(step string) error {
		if s.cfg.MoveHook == nil {
			return nil
		}
		err := s.cfg.MoveHook(step)
		crashed = errors.Is(err, ErrSimulatedCrash)
		return err
	}
	if err := steps.Journal(ctx); err != nil {
		return st, fmt.Errorf("journal: %w", err)
	}
	if err := hook("journaled"); err != nil {
		return st, err
	}
	committed := false
	defer func() {
		if !committed && !crashed {
			// Roll back: the source is untouched; drop the partial target.
			if err := s.dropAny(context.WithoutCancel(ctx), t.ID, to); err != nil {
				s.log.Error("roll back move", "tenant", t.ID, "err", err)
			} else if steps.Abort != nil {
				if err := steps.Abort(context.WithoutCancel(ctx)); err != nil {
					s.log.Error("clear move journal", "tenant", t.ID, "err", err)
				}
			}
		}
	}()
	src, err := s.side(ctx, t.ID, from)
	if err != nil {
		return st, err
	}
	defer src.close()
	dst, err := s.side(ctx, t.ID, to)
	if err != nil {
		return st, err
	}
	defer dst.close()
	if err := dst.drop(ctx); err != nil { // leftovers of an earlier attempt
		return st, err
	}
	if err := dst.prepare(ctx); err != nil {
		return st, err
	}
	ps, ts, err := src.read(ctx)
	if err != nil {
		return st, fmt.Errorf("read source: %w", err)
	}
	st.Projects, st.Tasks = len(ps), len(ts)
	if err := dst.write(ctx, ps, ts); err != nil {
		return st, fmt.Errorf("copy: %w", err)
	}
	if err := hook("copied"); err != nil {
		return st, err
	}
	srcHash := hashRows(ps, ts)
	dps, dts, err := dst.read(ctx)
	if err != nil {
		return st, fmt.Errorf("read target: %w", err)
	}
	if dstHash := hashRows(dps, dts); srcHash != dstHash {
		return st, fmt.Errorf("verify: content hash %s at the source, %s at the target", srcHash, dstHash)
	}
	st.Hash = srcHash
	dst.close() // a new file is complete and checkpointed before the flip
	if err := hook("verified"); err != nil {
		return st, err
	}
	if to == silo.StrategyDatabase && s.cfg.Backup != nil && s.cfg.OnBackupState != nil {
		// Recorded before the commit: a crash between the commit and the
		// sync below would leave the new file out of its backup until
		// its first request; recorded, the next start syncs it first. (A
		// commit that fails leaves the mark: the start finds no file and
		// moves on.)
		s.cfg.OnBackupState(ctx, t.ID, true)
	}
	if to == silo.StrategyDatabase {
		s.noteUnbacked(ctx, t.ID) // the new file, with backups off
	}
	if err := steps.Commit(ctx, from); err != nil {
		return st, fmt.Errorf("commit: %w", err)
	}
	committed = true
	if err := hook("committed"); err != nil {
		return st, err
	}
	s.setPlacement(t.ID, to)
	src.close()
	if to == silo.StrategyDatabase && s.cfg.Backup != nil {
		// The new file is backed up before any request may change it:
		// otherwise its replica would keep the tenant's history from
		// before it left its file, and a restore of "the latest" (or
		// disaster recovery) would bring that back, until a request
		// opened the file.
		if path, err := s.Path(t.ID); err == nil {
			if err := s.syncHeld(ctx, t.ID, path); err != nil {
				s.log.Warn("backup: sync of a moved tenant's new file failed; retrying", "tenant", t.ID, "err", err)
				s.addPending(t.ID)
			}
		}
	}
	// The source is now unreferenced: drop it before releasing the tenant.
	// Dropped later, it could race a second move queued on the hold that
	// copies back into that same placement. A crash before this leaves
	// leftovers that Cleanup removes. Past the commit, the caller going
	// away must not stop the cleanup halfway.
	done := context.WithoutCancel(ctx)
	if err := src.drop(done); err != nil {
		s.log.Error("remove source of a move; the next start retries", "tenant", t.ID, "from", from, "err", err)
	} else if steps.Dropped != nil {
		if err := steps.Dropped(done); err != nil {
			s.log.Error("record a move's cleanup", "tenant", t.ID, "err", err)
		}
	}
	released = true
	release()
	st.Pause = time.Since(start)
	return st, nil
}

// openPlacement opens tenant id's rows in a placement, bypassing the cache
// (the caller holds the tenant).
func (s *Store) openPlacement(ctx context.Context, id silo.TenantID, p silo.Strategy) (*sql.DB, func(), error) {
	switch p {
	case silo.StrategyShared:
		return s.shared, func() {}, nil
	case silo.StrategyDatabase:
		path, err := s.Path(id)
		if err != nil {
			return nil, nil, err
		}
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Errorf("tenant file: %w", err)
		}
		db, err := sqlite.Open(path, s.cfg.SQLite)
		if err != nil {
			return nil, nil, err
		}
		if err := s.gate(ctx, id, db); err != nil {
			db.Close()
			return nil, nil, err
		}
		closed := false
		return db, func() {
			if !closed {
				closed = true
				db.Close()
			}
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown placement %q", p)
}

// dropPlacement deletes tenant id's data from one placement.
func (s *Store) dropPlacement(ctx context.Context, id silo.TenantID, p silo.Strategy) error {
	switch p {
	case silo.StrategyShared:
		return s.deleteSharedRows(ctx, id)
	case silo.StrategyDatabase:
		path, err := s.Path(id)
		if err != nil {
			return err
		}
		// Litestream's local state describes this file's history; a file
		// made here later (a move back) starts a new one.
		s.forget(ctx, id, path)
		return errors.Join(sqlite.RemoveFiles(path), os.RemoveAll(localStateDir(path)))
	}
	return nil
}

// External is a placement outside SQLite (PostgreSQL's): what a move needs
// of it. Rows travel in tenantsql's types.
type External interface {
	Prepare(ctx context.Context, id silo.TenantID, p silo.Strategy) error
	Drop(ctx context.Context, id silo.TenantID, p silo.Strategy) error
	ReadRows(ctx context.Context, id silo.TenantID, p silo.Strategy) ([]tenantsql.Project, []tenantsql.Task, error)
	WriteRows(ctx context.Context, id silo.TenantID, p silo.Strategy, ps []tenantsql.Project, ts []tenantsql.Task) error
	Size(ctx context.Context, id silo.TenantID, p silo.Strategy) (int64, error)
}

// SetExternal connects the PostgreSQL placements, for moves.
func (s *Store) SetExternal(x External) { s.external = x }

// side is one end of a move: a tenant's rows in one placement.
type side struct {
	prepare func(ctx context.Context) error
	drop    func(ctx context.Context) error
	read    func(ctx context.Context) ([]tenantsql.Project, []tenantsql.Task, error)
	write   func(ctx context.Context, ps []tenantsql.Project, ts []tenantsql.Task) error
	close   func()
}

func (s *Store) side(ctx context.Context, id silo.TenantID, p silo.Strategy) (*side, error) {
	if p.Postgres() {
		x := s.external
		if x == nil {
			return nil, silo.Errorf(silo.EINVALIDSTRATEGY, "The %q placement needs PostgreSQL (--postgres).", p)
		}
		return &side{
			prepare: func(ctx context.Context) error { return x.Prepare(ctx, id, p) },
			drop:    func(ctx context.Context) error { return x.Drop(ctx, id, p) },
			read: func(ctx context.Context) ([]tenantsql.Project, []tenantsql.Task, error) {
				return x.ReadRows(ctx, id, p)
			},
			write: func(ctx context.Context, ps []tenantsql.Project, ts []tenantsql.Task) error {
				return x.WriteRows(ctx, id, p, ps, ts)
			},
			close: func() {},
		}, nil
	}
	// SQLite: the shared file is always open; a tenant's own file is opened
	// on first use, bypassing the cache (the caller holds the tenant).
	var db *sql.DB
	closeDB := func() {}
	handle := func(ctx context.Context) (*sql.DB, error) {
		if db != nil {
			return db, nil
		}
		h, c, err := s.openPlacement(ctx, id, p)
		if err != nil {
			return nil, err
		}
		db, closeDB = h, c
		return db, nil
	}
	return &side{
		prepare: func(ctx context.Context) error {
			if p == silo.StrategyDatabase {
				return s.Provision(ctx, id)
			}
			return nil
		},
		drop: func(ctx context.Context) error {
			closeDB()
			db = nil
			return s.dropPlacement(ctx, id, p)
		},
		read: func(ctx context.Context) ([]tenantsql.Project, []tenantsql.Task, error) {
			h, err := handle(ctx)
			if err != nil {
				return nil, nil, err
			}
			return readRows(ctx, h, string(id))
		},
		write: func(ctx context.Context, ps []tenantsql.Project, ts []tenantsql.Task) error {
			h, err := handle(ctx)
			if err != nil {
				return err
			}
			return writeRows(ctx, h, ps, ts)
		},
		close: func() { closeDB(); db = nil },
	}, nil
}

// dropAny deletes a tenant's data from any placement.
func (s *Store) dropAny(ctx context.Context, id silo.TenantID, p silo.Strategy) error {
	sd, err := s.side(ctx, id, p)
	if err != nil {
		return err
	}
	return sd.drop(ctx)
}

// readRows reads a tenant's rows from one snapshot of an SQLite file.
func readRows(ctx context.Context, db *sql.DB, tenantID string) ([]tenantsql.Project, []tenantsql.Task, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	q := tenantsql.New(tx)
	ps, err := q.AllProjects(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	ts, err := q.AllTasks(ctx, tenantID)
	return ps, ts, err
}

// writeRows inserts rows into an SQLite file in one transaction.
func writeRows(ctx context.Context, db *sql.DB, ps []tenantsql.Project, ts []tenantsql.Task) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := tenantsql.New(tx)
	for _, p := range ps {
		if err := q.InsertProjectRow(ctx, tenantsql.InsertProjectRowParams{
			ID: p.ID, TenantID: p.TenantID, Name: p.Name, Archived: p.Archived, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		}); err != nil {
			return err
		}
	}
	for _, t := range ts {
		if err := q.InsertTaskRow(ctx, tenantsql.InsertTaskRowParams{
			ID: t.ID, TenantID: t.TenantID, ProjectID: t.ProjectID, Title: t.Title, Done: t.Done,
			DueAt: t.DueAt, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		}); err != nil {
			return err
		}
	}
	return sqlite.Commit(ctx, tx)
}

// hashRows digests a tenant's rows, table by table, in id order: equal
// hashes mean equal row counts and equal contents.
func hashRows(ps []tenantsql.Project, ts []tenantsql.Task) string {
	h := sha256.New()
	fmt.Fprintf(h, "projects %d\n", len(ps))
	for _, p := range ps {
		fmt.Fprintf(h, "%q %q %q %d %d %d\n", p.ID, p.TenantID, p.Name, p.Archived, p.CreatedAt, p.UpdatedAt)
	}
	fmt.Fprintf(h, "tasks %d\n", len(ts))
	for _, t := range ts {
		fmt.Fprintf(h, "%q %q %q %q %d %v %d %d %d\n", t.ID, t.TenantID, t.ProjectID, t.Title, t.Done, t.DueAt.Valid, t.DueAt.Int64, t.CreatedAt, t.UpdatedAt)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Cleanup makes every tenant's data live in exactly one place after a
// crash: a move that had not reached its commit point is rolled back (its
// partial target dropped, via rollback), and the source left behind by a
// move that had is removed.
func (s *Store) Cleanup(ctx context.Context, tenants []*silo.Tenant, clearJournal, clearDropFrom func(ctx context.Context, id silo.TenantID) error) error {
	var errs []error
	shared := map[string]bool{}
	ids, err := tenantsql.New(s.shared).TenantIDsWithRows(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		shared[id] = true
	}
	for _, t := range tenants {
		switch {
		case t.MovingTo != "":
			s.log.Info("rolling back an interrupted move", "tenant", t.Slug, "to", t.MovingTo)
			if err := s.dropAny(ctx, t.ID, t.MovingTo); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, clearJournal(ctx, t.ID))
		case t.DropFrom != "" && t.DropFrom != t.Strategy:
			// A move committed but its source was not (known to be) removed:
			// the journal says which placement to clear, in any engine.
			s.log.Info("removing the source a finished move left", "tenant", t.Slug, "from", t.DropFrom)
			if err := s.dropAny(ctx, t.ID, t.DropFrom); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, clearDropFrom(ctx, t.ID))
		default:
			if t.Strategy != silo.StrategyShared && shared[string(t.ID)] {
				s.log.Info("removing shared rows left by a finished move", "tenant", t.Slug)
				errs = append(errs, s.deleteSharedRows(ctx, t.ID))
			}
			if t.Strategy != silo.StrategyDatabase {
				if path, err := s.Path(t.ID); err == nil {
					if _, err := os.Stat(path); err == nil {
						s.log.Info("removing the file left by a finished move", "tenant", t.Slug)
						errs = append(errs, sqlite.RemoveFiles(path))
					}
				}
			}
		}
	}
	errs = append(errs, s.cleanupSchemas(ctx, tenants))
	return errors.Join(errs...)
}

// cleanupSchemas drops the PostgreSQL schema of a tenant that a finished
// move took elsewhere. Only tenants the catalog knows are touched: a schema
// of an unknown id may belong to a signup in progress in another process.
// (Rows a finished move left in the pgshared tables are not found here: the
// app's role cannot list other tenants' rows under row-level security.)
func (s *Store) cleanupSchemas(ctx context.Context, tenants []*silo.Tenant) error {
	lister, ok := s.external.(interface {
		SchemaTenants(ctx context.Context) ([]silo.TenantID, error)
	})
	if !ok || s.external == nil {
		return nil
	}
	ids, err := lister.SchemaTenants(ctx)
	if err != nil {
		return err
	}
	byID := make(map[silo.TenantID]*silo.Tenant, len(tenants))
	for _, t := range tenants {
		byID[t.ID] = t
	}
	var errs []error
	for _, id := range ids {
		if t := byID[id]; t != nil && t.Strategy != silo.StrategySchema && t.MovingTo != silo.StrategySchema {
			s.log.Info("removing the schema left by a finished move", "tenant", t.Slug)
			errs = append(errs, s.external.Drop(ctx, id, silo.StrategySchema))
		}
	}
	return errors.Join(errs...)
}

// Size estimates the bytes a tenant's data takes: its file (with WAL), or
// its rows in the shared file.
func (s *Store) Size(ctx context.Context, t *silo.Tenant) (int64, error) {
	if p := s.placement(t); p.Postgres() {
		if s.external == nil {
			return 0, nil // not connected: unknown (the list still shows the tenant)
		}
		return s.external.Size(ctx, t.ID, p)
	}
	if s.placement(t) == silo.StrategyShared {
		row, err := tenantsql.New(s.shared).TenantSize(ctx, string(t.ID))
		return row.Bytes, err
	}
	path, err := s.Path(t.ID)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}
