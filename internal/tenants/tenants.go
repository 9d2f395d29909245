// Package tenants runs a tenant's lifecycle across the catalog and the tenant
// files: signup, deletion, and the sweep that finishes what a crash left
// half-done. The ordering of its steps is what keeps a half-created or
// half-deleted tenant from ever being served.
package tenants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// Service creates and deletes tenants.
type Service struct {
	catalog         *catalog.Catalog
	store           *tenantdb.Store
	pg              Postgres // nil without --postgres
	defaultStrategy silo.Strategy
	log             *slog.Logger

	// deleting names the tenants a Delete of this process is working on.
	// Deletes run in the serving process only (the CLI refuses one beside
	// a server), so this is every delete under way.
	mu       sync.Mutex
	deleting map[silo.TenantID]bool
}

// Postgres provisions tenants placed in PostgreSQL. (The store drops them,
// through its External side.)
type Postgres interface {
	CreateSchemaTenant(ctx context.Context, id silo.TenantID) error
	// Reachable fails (unavailable) while PostgreSQL cannot serve.
	Reachable(ctx context.Context) error
}

// SetPostgres enables the PostgreSQL placements.
func (s *Service) SetPostgres(pg Postgres) { s.pg = pg }

// New returns a Service.
func New(c *catalog.Catalog, s *tenantdb.Store, defaultStrategy silo.Strategy, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if defaultStrategy == "" {
		defaultStrategy = silo.StrategyDatabase
	}
	return &Service{catalog: c, store: s, defaultStrategy: defaultStrategy, log: log}
}

// NewTenant is a signup request.
type NewTenant struct {
	Slug     string
	Name     string
	Strategy silo.Strategy // "" means the default
}

// Create signs a tenant up and returns it with its owner token, which is
// shown only now.
//
// The file is written first, complete, under a name only the catalog knows;
// the catalog row and token follow in one transaction. A crash before the
// commit leaves an orphan file that no request can reach (Sweep removes it);
// a crash after leaves a whole tenant.
func (s *Service) Create(ctx context.Context, nt NewTenant) (*silo.Tenant, string, error) {
	if err := silo.ValidateNewSlug(nt.Slug); err != nil {
		return nil, "", err
	}
	name := nt.Name
	if strings.TrimSpace(name) == "" {
		name = nt.Slug
	}
	name, err := silo.CleanText(name, "name", silo.EINVALIDNAME)
	if err != nil {
		return nil, "", err
	}
	strategy := nt.Strategy
	if strategy == "" {
		strategy = s.defaultStrategy
	}
	if !strategy.Valid() {
		return nil, "", silo.Errorf(silo.EINVALIDSTRATEGY, "Unknown strategy %q; the strategies are %q.", strategy, silo.Strategies)
	}
	if strategy.Postgres() && s.pg == nil {
		return nil, "", silo.Errorf(silo.EINVALIDSTRATEGY, "The %q strategy needs PostgreSQL, which this server is not connected to (--postgres).", strategy)
	}
	// A cheap early answer for a taken slug; the unique index decides races.
	if _, err := s.catalog.TenantBySlugAnyStatus(ctx, nt.Slug); err == nil {
		return nil, "", silo.Errorf(silo.ESLUGTAKEN, "The slug %q is taken.", nt.Slug)
	} else if silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
		return nil, "", err
	}
	t := &silo.Tenant{
		ID:            silo.TenantID(uuid.Must(uuid.NewV7()).String()),
		Slug:          nt.Slug,
		Name:          name,
		Strategy:      strategy,
		Status:        silo.TenantActive,
		SchemaVersion: s.store.Migrator().Latest(),
	}
	// Shared tenants need nothing provisioned: their rows carry their id.
	switch strategy {
	case silo.StrategyDatabase:
		if err := s.store.Provision(ctx, t.ID); err != nil {
			return nil, "", fmt.Errorf("provision: %w", err)
		}
	case silo.StrategySchema:
		if err := s.pg.CreateSchemaTenant(ctx, t.ID); err != nil {
			return nil, "", fmt.Errorf("provision schema: %w", err)
		}
	case silo.StrategyPGShared:
		// Nothing to make, but a tenant that could not be served now is
		// no signup to answer 201 for.
		if err := s.pg.Reachable(ctx); err != nil {
			return nil, "", err
		}
	}
	secret, hash := catalog.NewToken()
	if err := s.catalog.CreateTenant(ctx, t, "owner", hash); err != nil {
		// Never a tenant: nothing to back up first (a delete would sync
		// the file to a replica no catalog row names).
		var rerr error
		if t.Strategy.Postgres() {
			rerr = s.dropData(context.WithoutCancel(ctx), t)
		} else {
			rerr = s.store.RemoveOrphan(context.WithoutCancel(ctx), t.ID)
		}
		if rerr != nil {
			s.log.Error("remove data of failed signup", "tenant", t.ID, "err", rerr)
		}
		return nil, "", err
	}
	return t, secret, nil
}

// Delete removes a tenant: it stops being served at once (status
// "deleting"), then its file goes, then its catalog row. A crash midway
// leaves a tenant that is never served and that Sweep finishes deleting.
func (s *Service) Delete(ctx context.Context, slug string) error {
	t, err := s.catalog.TenantBySlugAnyStatus(ctx, slug)
	if err != nil {
		return err
	}
	// One delete of a tenant at a time: two would both finish it, the
	// second restarting the retention period, or go on with a tenant the
	// first put back in service after failing.
	id := t.ID
	s.mu.Lock()
	if s.deleting[id] {
		s.mu.Unlock()
		return silo.Errorf(silo.ECONFLICT, "Tenant %q is being deleted.", slug)
	}
	if s.deleting == nil {
		s.deleting = map[silo.TenantID]bool{}
	}
	s.deleting[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.deleting, id)
		s.mu.Unlock()
	}()
	// Read again under the claim: a delete that ended just before it
	// took the claim has changed the status read above.
	if t, err = s.catalog.TenantBySlugAnyStatus(ctx, slug); err != nil {
		return err
	}
	if t.ID != id {
		return silo.Errorf(silo.ECONFLICT, "Tenant %q changed while it was being deleted; retry.", slug)
	}
	if t.Status == silo.TenantDeleted || t.Status == silo.TenantPurging {
		// Deleting again would restart its retention period.
		if t.Strategy != silo.StrategyDatabase {
			return silo.Errorf(silo.ECONFLICT, "Tenant %q is already deleted; the retention period purges it.", slug)
		}
		return silo.Errorf(silo.ECONFLICT, "Tenant %q is already deleted (undelete it, or wait for the retention period to purge it).", slug)
	}
	if t.Strategy.Postgres() && s.pg == nil {
		// Refused before anything changes: marked "deleting", it would stop
		// being served with its data still there.
		return silo.Errorf(silo.EUNAVAILABLE, "Tenant %q lives in PostgreSQL, which this process is not connected to (--postgres).", slug)
	}
	// A tenant already "deleting" is one whose delete failed half-way or
	// crashed: this one finishes it. An active one is claimed in the
	// catalog first; losing the claim means a delete got there first.
	if t.Status == silo.TenantActive {
		if claimed, err := s.catalog.ClaimDelete(ctx, t.ID); err != nil {
			return err
		} else if !claimed {
			return silo.Errorf(silo.ECONFLICT, "Tenant %q is being deleted, or was just deleted.", slug)
		}
	}
	err = s.finishDelete(ctx, t)
	if silo.ErrorCode(err) == silo.EUNAVAILABLE && t.Status == silo.TenantActive {
		// The replica or PostgreSQL is away, and the store changed nothing
		// (it fails on those before it removes anything): serve the tenant
		// again, rather than leave it unserved until a restart finishes
		// a delete the caller was told did not happen.
		if rerr := s.catalog.SetStatus(context.WithoutCancel(ctx), t.ID, silo.TenantActive); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// dropData removes a tenant's data from wherever it is placed, PostgreSQL
// included: the store drops it under the tenant's hold, so that requests
// (PostgreSQL's too) are drained first and a move that finishes meanwhile
// cannot leave the data in its new placement.
func (s *Service) dropData(ctx context.Context, t *silo.Tenant) error {
	if t.Strategy.Postgres() && s.pg == nil {
		return silo.Errorf(silo.EUNAVAILABLE, "Tenant %q lives in PostgreSQL, which this process is not connected to (--postgres).", t.Slug)
	}
	return s.store.Remove(ctx, t)
}

// finishDelete removes a tenant's data and marks it deleted. Its row stays
// (its slug stays taken, its backup kept) until Purge, so Undelete can
// bring it back.
func (s *Service) finishDelete(ctx context.Context, t *silo.Tenant) error {
	if err := s.dropData(ctx, t); err != nil {
		return fmt.Errorf("remove tenant data: %w", err)
	}
	// The data is gone: record it even if the caller went away meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return s.catalog.MarkDeleted(ctx, t.ID)
}

// Undelete brings back a deleted tenant placed in its own file, from the
// latest state of its backup (restore). Tenants placed in shared.db cannot
// be undeleted: their rows are backed up only as part of shared.db.
func (s *Service) Undelete(ctx context.Context, slug string, restore func(ctx context.Context, name, out string) error) error {
	t, err := s.catalog.TenantBySlugAnyStatus(ctx, slug)
	if err != nil {
		return err
	}
	if t.Status == silo.TenantPurging {
		return silo.Errorf(silo.ECONFLICT, "Tenant %q is being purged (its retention period is over).", slug)
	}
	if t.Status != silo.TenantDeleted {
		return silo.Errorf(silo.ECONFLICT, "Tenant %q is not deleted.", slug)
	}
	if t.Strategy != silo.StrategyDatabase {
		return silo.Errorf(silo.ECONFLICT, "Tenant %q was placed %q; only tenants in their own file can be undeleted.", slug, t.Strategy)
	}
	if err := s.store.RestoreFile(ctx, t.ID, restore); err != nil {
		return err
	}
	if err := s.catalog.Undelete(ctx, t.ID); err != nil {
		// A purge claimed it while its file was restored (from a backup
		// that purge may have been dropping): the file is an orphan.
		if rerr := s.store.RemoveOrphan(ctx, t.ID); rerr != nil {
			s.log.Warn("undelete: remove the file of a tenant purged meanwhile", "tenant", t.Slug, "err", rerr)
		}
		if silo.ErrorCode(err) == silo.ECONFLICT {
			return silo.Errorf(silo.ECONFLICT, "Tenant %q was purged while it was being undeleted.", slug)
		}
		return err
	}
	return nil
}

// Purge forgets tenants deleted before cutoff: their backups (dropReplica,
// if not nil) and then their rows, which frees their slugs.
func (s *Service) Purge(ctx context.Context, cutoff time.Time, dropReplica func(ctx context.Context, id silo.TenantID) error) (int, error) {
	ts, err := s.catalog.DeletedBefore(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		// Claim it first: `silo tenants undelete` may run meanwhile in
		// another process, and a tenant it brought back must keep its row
		// and its backup.
		if ok, err := s.catalog.ClaimPurge(ctx, t.ID, cutoff); err != nil {
			return n, err
		} else if !ok {
			continue
		}
		if dropReplica != nil {
			if err := dropReplica(ctx, t.ID); err != nil {
				s.log.Warn("purge: drop backup", "tenant", t.Slug, "err", err)
				continue
			}
		}
		if err := s.catalog.DeleteTenant(ctx, t.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// RemoveTempFiles removes the temporary files (a signup's copy of the
// template, a restore's download) that a crash left beside the tenants'
// files, once older than orphanAge. Sweep calls it at the start; a server
// calls it periodically too, since a restart soon after a crash finds them
// too young, and a restore's is as large as its tenant.
func (s *Service) RemoveTempFiles() error {
	return s.store.RemoveTempFiles(orphanAge)
}

// orphanAge is how old a file without a catalog row must be before Sweep
// removes it, so that it never races a signup in progress in another process.
const orphanAge = 10 * time.Minute

// Move moves a tenant to another placement online; see tenantdb.Store.Move
// for the guarantees. The catalog journals the move before any data is
// copied and flips the placement at its commit point.
func (s *Service) Move(ctx context.Context, slug string, to silo.Strategy) (tenantdb.MoveStats, error) {
	t, err := s.catalog.TenantBySlug(ctx, slug)
	if err != nil {
		return tenantdb.MoveStats{}, err
	}
	if (t.Strategy.Postgres() || to.Postgres()) && s.pg == nil {
		return tenantdb.MoveStats{}, silo.Errorf(silo.EINVALIDSTRATEGY, "Moves to and from PostgreSQL placements need --postgres.")
	}
	if to != t.Strategy {
		// After disaster recovery a tenant's file comes back on its first
		// use; a move is one.
		if err := s.store.EnsureFile(ctx, t); err != nil {
			return tenantdb.MoveStats{}, err
		}
	}
	// A move into the tenant's file starts a new period of the file's
	// backup, which also holds the periods before the tenant left it: the
	// transactions from the next one on are this period's.
	var fileTXID uint64
	if to == silo.StrategyDatabase {
		if txid, err := s.store.ReplicaTXID(ctx, t.ID); err == nil {
			fileTXID = txid + 1
		}
	}
	st, err := s.store.Move(ctx, t, to, tenantdb.MoveSteps{
		Journal: func(ctx context.Context) error { return s.catalog.SetMovingTo(ctx, t.ID, to) },
		Commit: func(ctx context.Context, from silo.Strategy) error {
			return s.catalog.FlipStrategy(ctx, t.ID, from, to, fileTXID)
		},
		Abort:   func(ctx context.Context) error { return s.catalog.SetMovingTo(ctx, t.ID, "") },
		Dropped: func(ctx context.Context) error { return s.catalog.ClearDropFrom(ctx, t.ID) },
		Pending: func(ctx context.Context) (silo.Strategy, error) {
			now, err := s.catalog.Tenant(ctx, t.ID)
			if err != nil {
				return "", err
			}
			return now.DropFrom, nil
		},
	})
	if err != nil {
		return st, err // rolled back before the commit point (or a test's simulated crash)
	}
	s.log.Info("moved tenant", "tenant", slug, "from", st.From, "to", st.To, "projects", st.Projects, "tasks", st.Tasks, "pause", st.Pause)
	return st, nil
}

// Info is a tenant with the size of its data.
type Info struct {
	*silo.Tenant
	Bytes int64
}

// ListWithSizes returns every tenant with its placement's size.
func (s *Service) ListWithSizes(ctx context.Context) ([]Info, error) {
	ts, err := s.catalog.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(ts))
	pgDown := false
	for i, t := range ts {
		out[i] = Info{Tenant: t}
		gone := t.Status == silo.TenantDeleted || t.Status == silo.TenantPurging
		if gone || (pgDown && t.Strategy.Postgres()) {
			continue // no data left; or PostgreSQL is away (size 0)
		}
		n, err := s.store.Size(ctx, t)
		if err != nil && t.Strategy.Postgres() {
			// The list of every tenant must not fail for PostgreSQL, nor
			// wait for its connect timeout once per tenant.
			s.log.Warn("tenant sizes: PostgreSQL unreachable; its tenants show 0", "err", err)
			pgDown = true
			continue
		} else if err != nil {
			return nil, err
		}
		out[i].Bytes = n
	}
	return out, nil
}

// Sweep finishes deletions a crash interrupted, rolls back or finishes
// interrupted moves, and removes tenant files that no catalog row names
// (signups a crash interrupted).
func (s *Service) Sweep(ctx context.Context) error {
	ts, err := s.catalog.Tenants(ctx)
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, s.store.Cleanup(ctx, ts, func(ctx context.Context, id silo.TenantID) error {
		return s.catalog.SetMovingTo(ctx, id, "")
	}, s.catalog.ClearDropFrom))
	for _, t := range ts {
		if t.Status == silo.TenantDeleting {
			s.log.Info("finishing interrupted delete", "tenant", t.ID, "slug", t.Slug)
			errs = append(errs, s.finishDelete(ctx, t))
		}
	}
	known, err := s.catalog.TenantIDs(ctx)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(s.store.Dir())
	if err != nil {
		return err
	}
	errs = append(errs, s.RemoveTempFiles())
	// A catalog that names no tenant at all beside tenant files is a lost
	// catalog (replaced by a new one), not a fleet of interrupted signups:
	// keep the files for whoever restores it.
	if len(known) == 0 {
		n := 0
		for _, e := range entries {
			if tenantdb.IsTenantFile(e.Name()) {
				n++
			}
		}
		if n > 1 {
			s.log.Error("the catalog names no tenant, but tenant files are there: not removing them as orphans (was the catalog lost or replaced?)", "files", n, "dir", s.store.Dir())
			return errors.Join(errs...)
		}
	}
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".db")
		// Only a file named as signups name them is an orphan: anything
		// else there (a copy an operator restored with --to) is not ours.
		if !ok || known[silo.TenantID(id)] || !tenantdb.IsTenantFile(name) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < orphanAge {
			continue
		}
		s.log.Info("removing orphan tenant file", "file", name)
		if err := s.store.RemoveOrphan(ctx, silo.TenantID(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(s.store.Dir(), name), err))
		}
	}
	return errors.Join(errs...)
}
