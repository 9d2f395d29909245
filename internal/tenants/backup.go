package tenants

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/silohq/silo/internal/replication"
	"github.com/silohq/silo/internal/silo"
)

// Backups answers for tenants' continuous backups: where each replica
// stands, and restores.
type Backups struct {
	svc *Service
	rep *replication.Replicator
}

// NewBackups returns the backup operations of svc's tenants over rep.
func NewBackups(svc *Service, rep *replication.Replicator) *Backups {
	return &Backups{svc: svc, rep: rep}
}

// BackupStatus is one tenant's replica.
type BackupStatus struct {
	Slug       string
	Strategy   silo.Strategy
	TXID       uint64    // newest transaction in the replica
	UpdatedAt  time.Time // when it was written
	Registered bool      // open and being replicated now
	LocalTXID  uint64    // newest transaction seen locally, when registered
	Err        string
}

// Lag is how many transactions the replica is behind the file (0 when the
// tenant is closed: it was synced when it closed).
func (b BackupStatus) Lag() uint64 {
	if b.Registered && b.LocalTXID > b.TXID {
		return b.LocalTXID - b.TXID
	}
	return 0
}

// Status lists every active tenant's replica: its own file's, or for a
// tenant placed in shared.db, shared.db's, which backs up its rows with
// everyone else's there. (PostgreSQL placements are not Litestream's.)
func (b *Backups) Status(ctx context.Context) ([]BackupStatus, error) {
	ts, err := b.svc.catalog.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	var shared *BackupStatus // read once, at the first shared tenant
	status := func(name string) BackupStatus {
		st, err := b.rep.Status(ctx, name)
		bs := BackupStatus{TXID: st.TXID, UpdatedAt: st.UpdatedAt, Registered: st.Registered, LocalTXID: st.LocalTXID}
		if err != nil {
			bs.Err = err.Error()
		}
		return bs
	}
	var out []BackupStatus
	for _, t := range ts {
		if t.Status != silo.TenantActive {
			continue
		}
		var bs BackupStatus
		switch t.Strategy {
		case silo.StrategyDatabase:
			bs = status(string(t.ID) + ".db")
		case silo.StrategyShared:
			if shared == nil {
				st := status(filepath.Join(filepath.Dir(b.svc.store.Dir()), "shared.db"))
				shared = &st
			}
			bs = *shared
		}
		bs.Slug, bs.Strategy = t.Slug, t.Strategy
		out = append(out, bs)
	}
	return out, nil
}

// ParsePoint reads the point a restore asks for, as the operator API and
// the CLI take it: at (RFC 3339) or txid, each nil when not given; neither
// means the latest (the zero time and 0). A point given explicitly must be
// one: "0001-01-01T00:00:00Z" and txid 0 are the zero values that mean
// "the latest", so they would restore the newest state instead of saying
// that no backup holds anything then.
func ParsePoint(at *string, txid *uint64) (time.Time, uint64, error) {
	if at != nil && txid != nil {
		return time.Time{}, 0, silo.Errorf(silo.EINVALID, "Give at or txid, not both.")
	}
	if txid != nil {
		if *txid == 0 {
			return time.Time{}, 0, silo.Errorf(silo.EINVALID, "txid must be at least 1 (omit it for the latest).")
		}
		return time.Time{}, *txid, nil
	}
	if at != nil {
		t, err := silo.ParseTime(*at)
		if err != nil {
			return time.Time{}, 0, silo.Errorf(silo.EINVALID, "at must be an RFC 3339 time such as 2026-11-27T13:00:00Z.")
		}
		if t.Before(time.Unix(0, 0)) {
			return time.Time{}, 0, silo.Errorf(silo.EINVALID, "No backup holds state before 1970 (omit at for the latest).")
		}
		if t.After(time.Now()) {
			// The replica's latest state is no answer for a time to come.
			return time.Time{}, 0, silo.Errorf(silo.EINVALID, "at is in the future (omit it for the latest).")
		}
		return t, 0, nil
	}
	return time.Time{}, 0, nil
}

// Restore restores a tenant in place to its replica as of at or txid (zero
// values: the latest); the tenant answers 503 tenant_restoring meanwhile.
func (b *Backups) Restore(ctx context.Context, slug string, at time.Time, txid uint64) error {
	t, err := b.svc.catalog.TenantBySlug(ctx, slug)
	if err != nil {
		return err
	}
	if err := inFilePeriod(t, at, txid); err != nil {
		return err
	}
	return b.svc.store.RestoreInPlace(ctx, t, at, txid)
}

// inFilePeriod refuses a point in time, or a transaction, from before the
// tenant last moved into its own file. Its file's backup also holds the
// periods before the tenant left the file, and a point in the gap (its rows
// were in shared.db or PostgreSQL then) would restore an older state
// without a word, throwing away what the tenant wrote since.
func inFilePeriod(t *silo.Tenant, at time.Time, txid uint64) error {
	if t.FileSince.IsZero() {
		return nil // in its file since signup: the backup covers it all
	}
	since := t.FileSince.UTC().Format(time.RFC3339Nano)
	if !at.IsZero() && at.Before(t.FileSince) {
		return silo.Errorf(silo.EINVALID, "Tenant %q moved into its own file at %s; its file's backup holds its state only from then on (before, its rows were in another placement, whose own backup holds them).", t.Slug, since)
	}
	if txid != 0 && (t.FileSinceTXID == 0 || txid < t.FileSinceTXID) {
		return silo.Errorf(silo.EINVALID, "Tenant %q moved into its own file at %s; transaction %d is not from its file's backup since then (restore by time, --at, instead).", t.Slug, since, txid)
	}
	return nil
}

// RestoreTo writes a copy of a tenant's replica to out, for inspection; the
// live tenant is untouched.
func (b *Backups) RestoreTo(ctx context.Context, slug, out string, at time.Time, txid uint64) error {
	t, err := b.svc.catalog.TenantBySlugAnyStatus(ctx, slug)
	if err != nil {
		return err
	}
	if t.Strategy != silo.StrategyDatabase {
		return silo.Errorf(silo.ECONFLICT, "Tenant %q is placed %q; only tenants in their own file have their own backup.", slug, t.Strategy)
	}
	if err := inFilePeriod(t, at, txid); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	return b.rep.Restore(ctx, string(t.ID)+".db", abs, at, txid)
}

// RestoreMissing restores every database-placed tenant whose file is
// missing (disaster recovery). It calls start with how many those are, then
// step after each.
func (b *Backups) RestoreMissing(ctx context.Context, start func(total int), step func(slug string, err error)) (int, error) {
	ts, err := b.svc.catalog.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	var missing []*silo.Tenant
	for _, t := range ts {
		if t.Status != silo.TenantActive || t.Strategy != silo.StrategyDatabase {
			continue
		}
		path, err := b.svc.store.Path(t.ID)
		if err != nil {
			return 0, err
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, t)
		}
	}
	start(len(missing))
	n := 0
	for _, t := range missing {
		if ctx.Err() != nil {
			break
		}
		restored, err := b.svc.store.RestoreIfMissing(ctx, t)
		if restored || err != nil {
			n++
			step(t.Slug, err)
		}
	}
	return n, ctx.Err()
}
