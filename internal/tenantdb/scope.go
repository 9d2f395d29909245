package tenantdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb/tenantsql"
)

// scope is a borrowed tenant handle bound to the tenant id from the request
// context. Services reach tenant data only through withScope and withWrite,
// so no query can run without the tenant's id or against another tenant's
// file.
type scope struct {
	tenantID string
	db       interface {
		BeginTx(context.Context, *sql.TxOptions) (*sql.Tx, error)
	}
	q *tenantsql.Queries
}

// withScope borrows the handle of the tenant in ctx for the length of fn:
// its own file, or the shared file. This is the one path from a request to
// tenant data, and the scope it hands out is bound to that tenant's id.
func (s *Store) withScope(ctx context.Context, fn func(sc *scope) error) error {
	return s.with(ctx, accessRead, fn)
}

// access is what a service call does to the tenant's data.
type access int

const (
	accessRead   access = iota
	accessWrite         // adds or changes rows: the quota applies
	accessDelete        // only removes rows: the quota does not apply
)

// withWrite is withScope for writes that add or change data: with a storage
// quota set, the write runs on one connection whose max_page_count is the
// current quota, so a write that would grow the file past it fails
// (quota_exceeded) and changes nothing, and a raised quota applies to the
// very next write. SQLite keeps max_page_count at least the file's current
// size, so a quota lowered below what a tenant already stores would only
// stop the file growing; such a tenant's writes are refused outright until
// deletes bring its data (pages in use, free pages not counted) under it.
func (s *Store) withWrite(ctx context.Context, fn func(sc *scope) error) error {
	return s.with(ctx, accessWrite, fn)
}

// withDelete is withScope for writes that only remove data. The quota
// never refuses them: they are how a tenant over its quota gets back under
// it (the space they free is reused by later writes).
func (s *Store) withDelete(ctx context.Context, fn func(sc *scope) error) error {
	return s.with(ctx, accessDelete, fn)
}

func (s *Store) with(ctx context.Context, a access, fn func(sc *scope) error) error {
	t := silo.TenantFromContext(ctx)
	if t == nil {
		return silo.Errorf(silo.EUNAUTHORIZED, "No tenant.")
	}
	db, p, release, err := s.borrow(ctx, t)
	if err != nil {
		return err
	}
	defer release()
	if a != accessRead && p == silo.StrategyDatabase {
		s.noteUnbacked(ctx, t.ID)
	}
	// The quota is per tenant file. The placement is the one the request
	// was admitted to, not one read before: a move into the shared file
	// that finished while the request waited must not cap shared.db.
	if limit := s.quota.Load(); a == accessWrite && limit > 0 && p == silo.StrategyDatabase {
		return s.check(t, underQuota(ctx, db, limit, s.dir, func(conn *sql.Conn) error {
			return fn(&scope{tenantID: string(t.ID), db: conn, q: tenantsql.New(conn)})
		}))
	}
	return s.check(t, fn(&scope{tenantID: string(t.ID), db: db, q: tenantsql.New(db)}))
}

// check formats a service's error and, if the tenant's file itself failed,
// discards its handle so the next request reopens the file. A file that was
// only busy (another handle held its lock past the timeout) keeps its
// handle: reopening would not help, and with backups it would make
// Litestream unregister and register it again.
func (s *Store) check(t *silo.Tenant, err error) error {
	err = sqlite.FormatError(err)
	if sqlite.IsStorage(err) && !sqlite.IsBusy(err) && s.placement(t) == silo.StrategyDatabase {
		s.cache.Discard(t.ID)
	}
	return err
}

// underQuota runs fn on one connection of db capped at limit bytes, and
// refuses it if the file's live pages are already past the cap.
func underQuota(ctx context.Context, db *sql.DB, limit int64, dir string, fn func(conn *sql.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	pages := max(1, limit/pageSize)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count=%d", pages)); err != nil {
		return err
	}
	// Give the pool back a connection without a limit, or none: a capped
	// connection left in the pool would refuse a later write of this
	// tenant under a quota that was since raised or removed.
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA max_page_count=4294967294"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	var used int64
	if err := conn.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())").Scan(&used); err != nil {
		return err
	}
	// At the quota exactly (as a write that hit it leaves the file) writes
	// that fit in place still go through; max_page_count stops growth.
	if used > pages {
		return errQuota
	}
	err = fn(conn)
	// SQLite says "full" for max_page_count and for a full disk alike.
	// The failed write rolled back, so the file's size does not tell
	// which; the disk's free space does: if the file could have grown to
	// its quota on it, the quota stopped the write.
	if sqlite.IsFull(err) {
		var n int64
		if qerr := conn.QueryRowContext(context.WithoutCancel(ctx), "PRAGMA page_count").Scan(&n); qerr == nil {
			if free, ferr := diskFree(dir); ferr != nil || free >= (pages-n)*pageSize {
				return errQuota
			}
		}
	}
	return err
}

var errQuota = silo.Errorf(silo.EQUOTA, "The tenant's storage quota is used up; delete data or ask for a larger quota.")

// pageSize is SQLite's default page size, which tenant files use.
const pageSize = 4096

// SetTenantMaxBytes sets the storage quota of each tenant file (0: none).
// It applies to the next write, without a restart.
func (s *Store) SetTenantMaxBytes(n int64) { s.quota.Store(n) }

// TenantMaxBytes is the current storage quota (0: none).
func (s *Store) TenantMaxBytes() int64 { return s.quota.Load() }

// borrow admits a request to t's current placement, which it returns. A
// move holds the tenant and drains its requests before it changes the
// placement, so once admitted the placement cannot change under the
// request; if it changed while the request waited, the request goes to the
// new one.
func (s *Store) borrow(ctx context.Context, t *silo.Tenant) (*sql.DB, silo.Strategy, func(), error) {
	for {
		p := s.placement(t)
		var db *sql.DB
		var release func()
		var err error
		switch p {
		case silo.StrategyDatabase:
			db, release, err = s.cache.Acquire(ctx, t.ID)
			if silo.ErrorCode(err) == silo.ETENANTNOTFOUND && s.cfg.Backup == nil && s.placement(t) == p && !s.isDeleted(t) {
				// The catalog serves the tenant but its file is gone and
				// there is no backup to bring it back: data lost, not a
				// tenant that does not exist. Say so (503) and log it.
				s.log.Error("tenant file missing, and backups are off", "tenant", t.Slug, "id", t.ID)
				err = silo.Errorf(silo.ESTORAGE, "The tenant's data is unavailable; retry later.")
			}
			if silo.ErrorCode(err) == silo.ETENANTNOTFOUND && s.cfg.Backup != nil && s.placement(t) == p {
				// The catalog knows the tenant but its file is gone: a
				// new machine or an empty data dir. Restore it, once.
				if _, rerr := s.RestoreIfMissing(ctx, t); rerr != nil {
					s.log.Warn("backup: lazy restore failed", "tenant", t.Slug, "err", rerr)
					// The tenant exists; its file could not be brought
					// back now (replica unreachable, a restore under
					// way, the catalog failing): 503, not "no such
					// tenant", and no internals.
					switch silo.ErrorCode(rerr) {
					case silo.EUNAVAILABLE, silo.ETENANTRESTORING, silo.ETENANTBUSY:
						err = rerr
					default: // internal, or the replica's own not-found
						err = silo.Errorf(silo.EUNAVAILABLE, "The tenant's file is missing and cannot be restored now; retry later.")
					}
				} else {
					db, release, err = s.cache.Acquire(ctx, t.ID)
				}
			}
		case silo.StrategyShared:
			db = s.shared
			release, err = s.cache.Enter(ctx, t.ID)
		default:
			if p.Postgres() {
				// Routed here while in SQLite, then a move into
				// PostgreSQL took the tenant while this request waited
				// for it: its rows are no longer ours to serve. A retry
				// is routed to PostgreSQL.
				return nil, "", nil, silo.Errorf(silo.ETENANTMOVING, "The tenant moved while this request waited; retry.")
			}
			return nil, "", nil, fmt.Errorf("tenant %s: unknown placement %q", t.ID, p)
		}
		if s.placement(t) != p {
			// A move changed the placement while this request waited for
			// it: whatever the old placement answered is moot.
			if err == nil {
				release()
			}
			continue
		}
		if err != nil {
			return nil, "", nil, err
		}
		if s.isDeleted(t) {
			// Resolved before a delete that finished while it waited: its
			// file is gone, but the shared file and PostgreSQL would take
			// its writes, rows that nothing would ever remove.
			release()
			return nil, "", nil, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
		}
		return db, p, release, nil
	}
}

// tx runs fn in a write transaction of the scope's file.
func (sc *scope) tx(ctx context.Context, fn func(q *tenantsql.Queries) error) error {
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(sc.q.WithTx(tx)); err != nil {
		return err
	}
	return sqlite.Commit(ctx, tx)
}

func nowMilli() int64 { return time.Now().UnixMilli() }

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Admit admits a request to a tenant whose rows are outside SQLite (its
// placement is PostgreSQL's): it waits out holds as a borrow would and
// counts the request, so that a move can drain it. It returns the tenant's
// placement as of admission; call leave when the request is done.
func (s *Store) Admit(ctx context.Context, t *silo.Tenant) (silo.Strategy, func(), error) {
	for {
		p := s.placement(t)
		leave, err := s.cache.Enter(ctx, t.ID)
		if err != nil {
			return "", nil, err
		}
		if s.placement(t) == p {
			if s.isDeleted(t) { // see borrow
				leave()
				return "", nil, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
			}
			return p, leave, nil
		}
		leave()
	}
}
