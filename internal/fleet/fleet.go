// Package fleet runs operations across every tenant file: migrating them to
// this binary's schema (or back), reporting where they stand, and verifying
// that their schemas have not drifted. Work is bounded in parallelism, each
// tenant is handled in one transaction of its own, and every run is written
// to the catalog's ledger, so a rerun after a crash or a failure simply
// continues with the tenants that are not done.
package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// Files is what the fleet needs of the tenant store.
type Files interface {
	Path(id silo.TenantID) (string, error)
	Migrator() *sqlite.Migrator
}

// Schemas migrates tenants placed in their own PostgreSQL schema.
type Schemas interface {
	MigrateSchemaTenant(ctx context.Context, id silo.TenantID, target int64) (from, to int64, err error)
}

// Fleet runs fleet operations over one data directory.
type Fleet struct {
	catalog *catalog.Catalog
	files   Files
	schemas Schemas // nil without PostgreSQL
	scratch string  // directory for scratch files (expected schema hashes)
	log     *slog.Logger
}

// SetSchemas makes migrations fan out over PostgreSQL schemas too, with the
// same ledger, progress, resume and rollback as files.
func (f *Fleet) SetSchemas(s Schemas) { f.schemas = s }

// New returns a Fleet.
func New(c *catalog.Catalog, files Files, scratchDir string, log *slog.Logger) *Fleet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fleet{catalog: c, files: files, scratch: scratchDir, log: log}
}

// Progress is told how a run goes; the CLI draws a bar or logs batches.
type Progress interface {
	Start(total int)
	Step(slug string, err error)
	Finish()
}

// Options select the tenants and the behaviour of a run.
type Options struct {
	Concurrency     int      // parallel tenants; default 4
	Tenants         []string // slugs; empty means every tenant
	CanaryPct       int      // 1..99 picks a stable subset; 0 or 100 means all
	ContinueOnError bool     // without it the run stops at the first failure
	Target          int64    // schema version; 0 means this binary's latest
	BusyTimeout     time.Duration
	Progress        Progress
	// SkipMissing skips, rather than fails, a tenant whose file is
	// missing: with backups on, whoever opens it next (a server, at the
	// tenant's first request) restores it from its replica and migrates
	// it then. Restoring it here could race a running server's restore.
	SkipMissing bool
}

// Result sums up a run.
type Result struct {
	Total    int // tenants selected
	Migrated int
	Current  int // already at the target: nothing to do
	Missing  int // skipped: file missing, to be restored (Options.SkipMissing)
	Failed   []Failure
	Stopped  bool // stopped at a failure or by cancellation before the end
	Elapsed  time.Duration
}

// Failure is one tenant that could not be migrated.
type Failure struct {
	Slug string
	Err  error
}

// Select returns the active tenants an operation applies to.
func (f *Fleet) Select(ctx context.Context, slugs []string, canaryPct int) ([]*silo.Tenant, error) {
	all, err := f.catalog.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, s := range slugs {
		want[s] = true
	}
	filter := len(want) > 0
	var out []*silo.Tenant
	var elsewhere []string // named, active, but not migrated here
	for _, t := range all {
		if t.Status != silo.TenantActive {
			continue
		}
		if !(t.Strategy == silo.StrategyDatabase || (t.Strategy == silo.StrategySchema && f.schemas != nil)) {
			if want[t.Slug] {
				delete(want, t.Slug)
				elsewhere = append(elsewhere, fmt.Sprintf("%s (%s)", t.Slug, t.Strategy))
			}
			continue
		}
		if filter && !want[t.Slug] {
			continue
		}
		delete(want, t.Slug) // what remains at the end was not found
		if canaryPct > 0 && canaryPct < 100 && !InCanary(t.ID, canaryPct) {
			continue
		}
		out = append(out, t)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for s := range want {
			missing = append(missing, s)
		}
		sort.Strings(missing)
		return nil, silo.Errorf(silo.ETENANTNOTFOUND, "No active tenant(s): %v.", missing)
	}
	if len(elsewhere) > 0 {
		sort.Strings(elsewhere)
		return nil, silo.Errorf(silo.EINVALID, "Not migrated one by one: %v. Tenants in shared.db or pgshared share their tables, whose schema silo migrates when it starts (pgshared: with --postgres-admin); schema tenants need --postgres.", elsewhere)
	}
	return out, nil
}

// InCanary reports whether a tenant falls in a canary of pct percent. The
// choice hashes the immutable id, so it is the same on every run and a
// larger percentage contains every smaller one.
func InCanary(id silo.TenantID, pct int) bool {
	h := sha256.Sum256([]byte(id))
	return int(binary.BigEndian.Uint16(h[:2])%100) < pct
}

// Migrate brings the selected tenants to opts.Target.
func (f *Fleet) Migrate(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	m := f.files.Migrator()
	target := opts.Target
	if target == 0 {
		target = m.Latest()
	}
	if !m.Known(target) {
		// Refused before any tenant is touched: per tenant it would only
		// fail, once for each, and fill the ledger.
		return Result{}, silo.Errorf(silo.EINVALID, "Unknown schema version %d; this binary knows 1 to %d.", target, m.Latest())
	}
	ts, err := f.Select(ctx, opts.Tenants, opts.CanaryPct)
	if err != nil {
		return Result{}, err
	}
	// Tenants whose last run failed: a success now is recorded even if it
	// had nothing to do (a file restored at its current version), or
	// "migrate status" would name them failed for good.
	lastFailed, err := f.catalog.FailedMigrations(ctx)
	if err != nil {
		return Result{}, err
	}
	failedBefore := make(map[silo.TenantID]bool, len(lastFailed))
	for _, m := range lastFailed {
		failedBefore[m.Tenant] = true
	}
	res := Result{Total: len(ts)}
	if opts.Concurrency < 1 {
		opts.Concurrency = 4
	}
	prog := opts.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	prog.Start(len(ts))
	defer prog.Finish()

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	errStop := errors.New("stopped at first failure")
	for _, t := range ts {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // admitted just as the run stopped: leave it for a rerun
			}
			run, err := f.migrateOne(gctx, t, target, opts.BusyTimeout, opts.SkipMissing, failedBefore[t.ID])
			if err != nil && gctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // interrupted, and rolled back: not a failure of the tenant
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errSkippedMissing):
				res.Missing++
				err = nil
			case err != nil:
				res.Failed = append(res.Failed, Failure{Slug: t.Slug, Err: err})
			case run.From == run.To:
				res.Current++
			default:
				res.Migrated++
			}
			prog.Step(t.Slug, err)
			if err != nil && !opts.ContinueOnError {
				return errStop
			}
			return nil
		})
	}
	gerr := g.Wait()
	res.Elapsed = time.Since(start)
	sort.Slice(res.Failed, func(i, j int) bool { return res.Failed[i].Slug < res.Failed[j].Slug })
	if gerr != nil || ctx.Err() != nil || res.Migrated+res.Current+res.Missing+len(res.Failed) < res.Total {
		res.Stopped = true
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// errSkippedMissing is migrateOne's answer for a missing file it skipped.
var errSkippedMissing = errors.New("tenant file missing; skipped")

// migrateOne migrates one tenant file in one transaction and records the
// run in the ledger. A tenant already at the target costs one header read.
func (f *Fleet) migrateOne(ctx context.Context, t *silo.Tenant, target int64, busy time.Duration, skipMissing, failedBefore bool) (silo.MigrationRun, error) {
	run := silo.MigrationRun{Tenant: t.ID, Target: target, StartedAt: time.Now()}
	if t.Strategy == silo.StrategySchema {
		// One transaction per schema, as per file.
		run.From, run.To, run.Err = f.schemas.MigrateSchemaTenant(ctx, t.ID, target)
		if errors.Is(run.Err, pg.ErrSchemaMissing) {
			// Moved out of its schema (or deleted) since the run listed
			// it: nothing of it is left here to migrate.
			return run, errSkippedMissing
		}
	} else if path, err := f.files.Path(t.ID); err != nil {
		return run, err
	} else if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && skipMissing {
		return run, errSkippedMissing // nothing to record: nothing ran
	} else if err != nil {
		run.Err = fmt.Errorf("tenant file: %w", err)
	} else {
		run.From, run.To, run.Err = f.migrateFile(ctx, path, target, busy)
	}
	run.FinishedAt = time.Now()
	if run.Err == nil && run.From == run.To && t.SchemaVersion == run.To && !failedBefore {
		return run, nil // nothing happened; keep the ledger for real work
	}
	if errors.Is(run.Err, context.Canceled) && ctx.Err() != nil {
		return run, run.Err // the run was stopped; the tenant did not fail
	}
	// The ledger outlives a cancelled run: record with a context of its own.
	if err := f.catalog.RecordMigration(context.WithoutCancel(ctx), run); err != nil {
		return run, errors.Join(run.Err, fmt.Errorf("ledger: %w", err))
	}
	if run.Err != nil {
		f.log.Warn("migration failed", "tenant", t.Slug, "from", run.From, "target", target, "err", run.Err)
	}
	return run, run.Err
}

func (f *Fleet) migrateFile(ctx context.Context, path string, target int64, busy time.Duration) (from, to int64, err error) {
	// A closed file whose WAL is empty has its version in its header: a
	// tenant already at the target costs one small read, not an open.
	quiet := walEmpty(path)
	if quiet {
		if v, err := sqlite.HeaderUserVersion(path); err == nil && v == target {
			return v, v, nil
		}
	}
	if target == f.files.Migrator().Latest() && !quiet {
		// A server without backups holds the files it has open exclusively
		// (internal/tenantdb), so this open would wait out the busy timeout
		// and fail. Such a file is current when migrating up to this
		// binary's latest version if its header says so: the server keeps a
		// file open only once it is at its latest version, and writes a
		// migration it made on open through to the header. So try briefly
		// first, and fall back to the header when the file is held.
		from, to, err = f.migrateOpen(ctx, path, target, 50*time.Millisecond, false)
		if !sqlite.IsBusy(err) {
			return from, to, err
		}
		if v, herr := sqlite.HeaderUserVersion(path); herr == nil && v == target {
			return v, v, nil
		}
	}
	return f.migrateOpen(ctx, path, target, busy, quiet)
}

// migrateOpen opens path and migrates it to target in one transaction.
// exclusive (unix-excl) is for a file nobody else has open: no -shm file is
// created and deleted for each tenant, which on ext4 costs a journal commit
// that serialises the whole fleet. Another process that opens the file
// meanwhile waits (busy_timeout).
func (f *Fleet) migrateOpen(ctx context.Context, path string, target int64, busy time.Duration, exclusive bool) (from, to int64, err error) {
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 1, BusyTimeout: busy, Exclusive: exclusive, MustExist: true})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// Commit without syncing, then checkpoint with syncing: the changes are
	// on disk (WAL synced, then the database file) before this returns and
	// before the ledger says so, at two fsyncs instead of three.
	if _, err := db.ExecContext(ctx, "PRAGMA synchronous=OFF"); err != nil {
		return 0, 0, err
	}
	// A tenant's file starts from a migrated template: at version 0 it was
	// truncated or replaced, and migrating it would make it an empty tenant.
	if v, err := sqlite.UserVersion(ctx, db); err != nil {
		return 0, 0, err
	} else if v == 0 {
		return 0, 0, sqlite.ErrNoSchema
	}
	from, to, err = f.files.Migrator().Migrate(ctx, db, target)
	if err != nil || from == to {
		return from, to, err
	}
	// Committed: finish even if the run is being stopped meanwhile (another
	// tenant failed, or ^C), so that the caller records the new version. A
	// cancelled context here used to make a committed migration look
	// interrupted: the file upgraded, the catalog and ledger not told.
	done := context.WithoutCancel(ctx)
	if _, err := db.ExecContext(done, "PRAGMA synchronous=NORMAL"); err != nil {
		return from, to, err
	}
	if _, err := db.ExecContext(done, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return from, to, err
	}
	return from, to, nil
}

// walEmpty reports whether path has no WAL content (no file, or empty).
func walEmpty(path string) bool {
	fi, err := os.Stat(path + "-wal")
	return errors.Is(err, os.ErrNotExist) || (err == nil && fi.Size() == 0)
}

type nopProgress struct{}

func (nopProgress) Start(int)          {}
func (nopProgress) Step(string, error) {}
func (nopProgress) Finish()            {}
