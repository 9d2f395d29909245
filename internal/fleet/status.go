package fleet

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// Status is where the fleet stands.
type Status struct {
	Latest   int64           // this binary's schema version
	Versions map[int64]int64 // schema version → active tenants there
	Failed   []catalog.FailedMigration
}

// Status reports how many tenants sit at each version (the catalog's mirror,
// kept by every migration) and which tenants' latest migration failed.
func (f *Fleet) Status(ctx context.Context) (Status, error) {
	counts, err := f.catalog.VersionCounts(ctx)
	if err != nil {
		return Status{}, err
	}
	failed, err := f.catalog.FailedMigrations(ctx)
	if err != nil {
		return Status{}, err
	}
	return Status{Latest: f.files.Migrator().Latest(), Versions: counts, Failed: failed}, nil
}

// Drift is a tenant whose file does not match the schema of its version.
type Drift struct {
	Slug     string
	Version  int64
	Got      string // schema hash found ("" if the file could not be read)
	Expected string
	Err      error
}

func (d Drift) String() string {
	if d.Err != nil {
		return fmt.Sprintf("%s: %v", d.Slug, d.Err)
	}
	return fmt.Sprintf("%s: schema at version %d hashes %.12s, expected %.12s", d.Slug, d.Version, d.Got, d.Expected)
}

// Verify hashes each selected tenant's schema (sqlite_schema) and compares
// it with the schema a fresh file has at the same version. It returns the
// tenants that differ or could not be read, sorted by slug, how many were
// checked, and how many selected were not: tenants in a PostgreSQL schema
// (with --postgres), whose version is what its migrator records and which
// have no file to compare; they must not pass for verified.
func (f *Fleet) Verify(ctx context.Context, opts Options) (drifts []Drift, checked, skipped int, err error) {
	ts, err := f.Select(ctx, opts.Tenants, opts.CanaryPct)
	if err != nil {
		return nil, 0, 0, err
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = 4
	}
	m := f.files.Migrator()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for _, t := range ts {
		if t.Strategy != silo.StrategyDatabase {
			skipped++
			continue
		}
		checked++
		g.Go(func() error {
			d := Drift{Slug: t.Slug}
			d.Version, d.Got, d.Err = f.hashFile(gctx, t.ID, opts.BusyTimeout)
			if d.Err == nil {
				d.Expected, d.Err = m.ExpectedHash(gctx, f.scratch, d.Version)
			}
			if d.Err != nil || d.Got != d.Expected {
				mu.Lock()
				drifts = append(drifts, d)
				mu.Unlock()
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, 0, err
	}
	sort.Slice(drifts, func(i, j int) bool { return drifts[i].Slug < drifts[j].Slug })
	return drifts, checked, skipped, nil
}

// hashFile reads the schema version and hash of a tenant's file. A file
// that a server without backups holds open (exclusively) cannot be read and
// is reported as such, not as drift.
func (f *Fleet) hashFile(ctx context.Context, id silo.TenantID, busy time.Duration) (version int64, hash string, err error) {
	defer func() {
		if sqlite.IsBusy(err) {
			err = fmt.Errorf("not verified: the file is held open by a running server (without backups it holds its open tenants exclusively): %w", err)
		}
	}()
	path, err := f.files.Path(id)
	if err != nil {
		return 0, "", err
	}
	if _, err := os.Stat(path); err != nil {
		return 0, "", err
	}
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 1, BusyTimeout: busy, MustExist: true})
	if err != nil {
		return 0, "", err
	}
	defer db.Close()
	if version, err = sqlite.UserVersion(ctx, db); err != nil {
		return 0, "", err
	}
	hash, err = sqlite.SchemaHash(ctx, db)
	return version, hash, err
}
