// Package replication embeds Litestream (pinned to v0.5.18, whose library API
// is not stable) to back up the catalog and every tenant file continuously.
//
// Only open files are replicated: a registered database costs Litestream
// about 4 goroutines, 5 file descriptors, 0.44 MB and a WAL poll per second,
// so the tenant cache registers a tenant when it opens its file and
// unregisters it when it evicts it. The order matters:
//
//	Register(ctx, path)      // before the app opens the file
//	db := sql.Open(...)      // the app's handle; see AppDSNParams
//	...
//	db.Close()               // the app's handle first
//	Maintain(ctx, path)      // optional: compaction/retention when due
//	Unregister(ctx, path)    // then sync to the replica and let go
//
// Unregistering while the app still has connections open closes Litestream's
// descriptors on the file, which drops the process's POSIX locks on a file
// SQLite still uses (the corruption pattern of litestream#510), and makes the
// app's connection the one that checkpoints the WAL on close.
package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file"
	"github.com/superfly/ltx"
)

// AppDSNParams is the DSN query string for the app's handles on replicated
// files ("file:" + path + "?" + AppDSNParams, plus e.g. foreign_keys(on));
// internal/sqlite's DSN already follows these rules:
//
//   - WAL mode (stored in the file; Litestream sets it too) and
//     busy_timeout(5000): Litestream takes short write locks, and without a
//     busy timeout the app sees SQLITE_BUSY.
//   - synchronous(normal) and _txlock=immediate are fine.
//   - The default "unix" VFS: no vfs=unix-excl, no locking_mode(exclusive);
//     Litestream opens its own connections to the same file.
//   - No journal_size_limit: whenever an app connection is the last to close
//     the file (say, a shutdown that stops replication first), SQLite then
//     truncates the kept WAL and Litestream re-uploads the whole database on
//     the next open (measured: 6 full snapshots in 6 reopens).
//   - Never checkpoint with TRUNCATE or RESTART, delete the -wal, or hold
//     long read transactions.
//   - Open through the driver registered as "sqlite" (sql.Open("sqlite", dsn)
//     or sqlite.NewConnector), so the PERSIST_WAL hook New installs applies;
//     no wrapper is needed.
//   - Open the file only after Register, close every connection before
//     Unregister (and before Close).
const AppDSNParams = "_pragma=busy_timeout(5000)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_txlock=immediate"

// Replicator owns the one Litestream Store of the process.
type Replicator struct {
	cfg     *Config
	logger  *slog.Logger
	store   *litestream.Store
	clients clients

	// mu guards dbs. Lock order: an entry's mu may be held while taking
	// mu, never the reverse (TryLock only), so a slow Register or final
	// sync of one file never blocks the lookup of another.
	mu  sync.Mutex
	dbs map[string]*entry // by absolute path; unused entries are pruned
}

// entry serialises the lifecycle of one file: Register, Maintain and
// Unregister of the same path never overlap, which the Store's own
// background monitors cannot guarantee (a snapshot racing UnregisterDB fails).
type entry struct {
	mu  sync.Mutex
	ldb *litestream.DB // nil when not registered
	// done holds, per maintenance step (a compaction level, or retention),
	// the level's last boundary (PrevCompactionAt) by which the step was
	// found done; until the next boundary it would find nothing due
	// (ErrCompactionTooEarly), so maintain skips it. Each check lists the
	// replica's files: a tenant evicted again and again within one
	// interval cost 14 % of the CPU in such checks with a churning cache.
	done  map[int]time.Time
	skips int // steps skipped that way (tests read it)
	// pruned: taken out of Replicator.dbs (not registered, nothing left
	// to remember); whoever locks it afterwards looks the path up again.
	pruned bool
	// coldL0: unregistered with transactions in L0 that no L1 file holds
	// yet (the final sync came after the eviction's compaction, or L1 was
	// already compacted in this window). MaintainAll compacts them at the
	// next L1 boundary (compactCold); left for the tenant's next open,
	// they would be merged with everything written until then into one L1
	// file, and once l0-retention dropped the L0 files, a point in time
	// inside that span would restore the state from before it.
	coldL0 bool
}

// Keys of entry.done for the retention steps, beside the level numbers.
const (
	doneSnapshotRetention = -1
	doneL0Retention       = -2
)

// New returns a Replicator for cfg. It does not start anything; call Open.
func New(cfg *Config, logger *slog.Logger) (*Replicator, error) {
	if cfg == nil {
		return nil, errors.New("replication: nil config")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := cfg.Levels.Validate(); err != nil {
		return nil, err
	}
	store := litestream.NewStore(nil, cfg.Levels)
	store.Logger = slog.New(quiet(logger.Handler())).With("system", "litestream")
	// The Store compacts, snapshots and enforces retention only for the
	// databases registered when its timers fire, so tenants that were open
	// briefly would never be compacted, and its monitors race UnregisterDB.
	// Maintain does the same work per file, under the file's lock.
	store.CompactionMonitorEnabled = false
	store.L0RetentionCheckInterval = 0
	store.SnapshotInterval = cfg.SnapshotInterval
	store.SnapshotRetention = cfg.SnapshotRetention
	store.L0Retention = cfg.L0Retention
	store.ShutdownSyncTimeout = cfg.ShutdownSyncTimeout

	installPersistWALHook()
	return &Replicator{cfg: cfg, logger: logger, store: store, dbs: map[string]*entry{}}, nil
}

// Config returns the configuration the Replicator was built with.
func (r *Replicator) Config() *Config { return r.cfg }

// Open starts the store.
func (r *Replicator) Open(ctx context.Context) error {
	return r.store.Open(ctx)
}

// Close syncs and closes every database still registered (retrying each
// final upload for up to ShutdownSyncTimeout), then stops the store.
func (r *Replicator) Close(ctx context.Context) error {
	err := r.store.Close(ctx)
	r.mu.Lock()
	dbs := maps.Clone(r.dbs)
	r.mu.Unlock()
	for path, e := range dbs {
		e.mu.Lock()
		if e.ldb != nil {
			e.ldb = nil
			persistWALRemove(path)
		}
		e.mu.Unlock()
	}
	return err
}

// lock returns path's entry, locked: the one entry that serialises the
// file's lifecycle.
func (r *Replicator) lock(path string) *entry {
	for {
		r.mu.Lock()
		e := r.dbs[path]
		if e == nil {
			e = &entry{}
			r.dbs[path] = e
		}
		r.mu.Unlock()
		e.mu.Lock()
		if !e.pruned {
			return e
		}
		e.mu.Unlock() // pruned while this waited: look it up again
	}
}

// prunable reports whether e, not registered, remembers nothing that
// maintain could still use: each step's mark is for a boundary that has
// passed, so the step would be due anyway. Keeping such entries would make
// memory, and MaintainAll's walk, grow with every tenant ever opened rather
// than with the recently used ones. e.mu is held.
func (r *Replicator) prunable(e *entry, now time.Time) bool {
	if e.ldb != nil || e.coldL0 {
		return false
	}
	l1 := now
	if len(r.cfg.Levels) > 1 {
		l1 = r.cfg.Levels[1].PrevCompactionAt(now)
	}
	for step, b := range e.done {
		cur := l1
		switch step {
		case doneSnapshotRetention, doneL0Retention:
		case r.store.SnapshotLevel().Level:
			cur = r.store.SnapshotLevel().PrevCompactionAt(now)
		default:
			if step >= 0 && step < len(r.cfg.Levels) {
				cur = r.cfg.Levels[step].PrevCompactionAt(now)
			}
		}
		if b.Equal(cur) {
			return false
		}
	}
	return true
}

// Register starts replicating the database file at path, which must exist
// (create it, or Restore it, first) and be covered by the config. It returns
// once Litestream has opened the file, taken its read lock and written its
// first position, so every write the app makes after Register returns is
// replicated. Call it before the app opens the file. Registering a registered
// path does nothing.
func (r *Replicator) Register(ctx context.Context, path string) error {
	dbc, abs, err := r.cfg.Lookup(path)
	if err != nil {
		return err
	}
	// A missing file must not be created here: Litestream would replicate the
	// new empty database as the latest state of an existing replica.
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("replication: register %s: %w", abs, err)
	}

	e := r.lock(abs)
	defer e.mu.Unlock()
	if e.ldb != nil {
		return nil
	}

	client, err := r.clients.forURL(ctx, dbc.replicaURLFor(abs))
	if err != nil {
		return fmt.Errorf("replication: register %s: %w", abs, err)
	}
	ldb := litestream.NewDB(abs)
	if dbc.MonitorInterval > 0 {
		ldb.MonitorInterval = dbc.MonitorInterval
	}
	if dbc.CheckpointInterval > 0 {
		ldb.CheckpointInterval = dbc.CheckpointInterval
	}
	if dbc.MinCheckpointPageN > 0 {
		ldb.MinCheckpointPageN = dbc.MinCheckpointPageN
	}
	ldb.Replica = litestream.NewReplicaWithClient(ldb, client)
	if dbc.SyncInterval > 0 {
		ldb.Replica.SyncInterval = dbc.SyncInterval
	}
	if fc, ok := client.(*file.ReplicaClient); ok {
		fc.Replica = ldb.Replica // the file client copies the DB's file modes
	}

	// Before Litestream opens its first connection, so all of them get it.
	persistWALAdd(abs)
	if err := r.store.RegisterDB(ldb); err != nil {
		persistWALRemove(abs)
		return fmt.Errorf("replication: register %s: %w", abs, err)
	}
	// RegisterDB initialises lazily, on the first monitor tick. Force it so
	// that replication is set up before the app writes. The probe once saw a
	// transient error here right after RegisterDB; retry once.
	_, err = r.store.SyncDB(ctx, abs, false)
	if err != nil && ctx.Err() == nil {
		select {
		case <-time.After(50 * time.Millisecond):
			_, err = r.store.SyncDB(ctx, abs, false)
		case <-ctx.Done():
		}
	}
	if err != nil {
		_ = r.store.UnregisterDB(context.WithoutCancel(ctx), abs)
		persistWALRemove(abs)
		return fmt.Errorf("replication: initialise %s: %w", abs, err)
	}
	e.ldb = ldb
	return nil
}

// Unregister stops replicating path. Call it after the app closed every
// connection to the file. It first uploads everything to the replica and
// waits; if that fails (replica unreachable) it returns the error and leaves
// the file registered, so nothing is lost: retry later, and keep the file
// closed meanwhile or Register it again before reopening (a no-op).
// Unregistering a path that is not registered does nothing.
func (r *Replicator) Unregister(ctx context.Context, path string) error {
	return r.withRegistered(path, func(e *entry, abs string) error {
		res, err := r.store.SyncDB(ctx, abs, true)
		if err != nil {
			return fmt.Errorf("replication: final sync of %s: %w", abs, err)
		}
		// MaxLTXFileInfo is the DB's cached view of L1, no listing.
		l1, err := e.ldb.MaxLTXFileInfo(ctx, 1)
		e.coldL0 = err != nil || res.ReplicatedTXID > uint64(l1.MaxTXID)
		// UnregisterDB syncs once more (nothing new: the app is closed),
		// releases Litestream's read lock and closes its connections. The
		// last one to close checkpoints the WAL and, thanks to PERSIST_WAL,
		// keeps it.
		if err := r.drop(ctx, e, abs); err != nil {
			return fmt.Errorf("replication: unregister %s: %w", abs, err)
		}
		return nil
	})
}

// Forget stops replicating path without waiting for its replica: for a file
// about to be removed whose last changes live on elsewhere (a move's source
// after its commit). Litestream closes its connections and releases its
// read lock even if its final upload fails; ctx bounds that upload.
// Forgetting a path that is not registered does nothing.
func (r *Replicator) Forget(ctx context.Context, path string) error {
	return r.withRegistered(path, func(e *entry, abs string) error {
		if err := r.drop(ctx, e, abs); err != nil {
			return fmt.Errorf("replication: forget %s (its last changes may not be in the replica): %w", abs, err)
		}
		return nil
	})
}

// withRegistered runs fn with path's entry locked, if path is registered.
func (r *Replicator) withRegistered(path string, fn func(e *entry, abs string) error) error {
	_, abs, err := r.cfg.Lookup(path)
	if err != nil {
		return err
	}
	e := r.lock(abs)
	defer e.mu.Unlock()
	if e.ldb == nil {
		return nil
	}
	return fn(e, abs)
}

// drop unregisters e's database from Litestream's store, which closes it
// whatever the error; e is then unregistered either way.
func (r *Replicator) drop(ctx context.Context, e *entry, abs string) error {
	err := r.store.UnregisterDB(ctx, abs)
	e.ldb = nil
	persistWALRemove(abs)
	return err
}

// Registered reports whether path is registered.
func (r *Replicator) Registered(path string) bool {
	_, abs, err := r.cfg.Lookup(path)
	if err != nil {
		return false
	}
	e := r.lock(abs)
	defer e.mu.Unlock()
	return e.ldb != nil
}

// Sync uploads everything written to path so far and waits for the replica to
// acknowledge it. The file must be registered.
func (r *Replicator) Sync(ctx context.Context, path string) (txid uint64, err error) {
	_, abs, err := r.cfg.Lookup(path)
	if err != nil {
		return 0, err
	}
	res, err := r.store.SyncDB(ctx, abs, true)
	if err != nil {
		return 0, err
	}
	return res.ReplicatedTXID, nil
}

// Maintain runs, for one registered file, the compaction, snapshot and
// retention work that Litestream's Store monitors would do: each level is
// compacted only if its interval boundary has passed since its last file
// (L1 every 30 s, L2 5 min, L3 1 h by default), a snapshot is taken if the
// last is older than the snapshot interval, old snapshots and the lower-level
// files they cover are deleted, and L0 files older than l0-retention that are
// already in L1 are deleted. So it is cheap to call often: at eviction, just
// before Unregister, and periodically for files that stay open (MaintainAll).
// A file that is not registered is skipped: register it (the nightly sweep of
// changed cold tenants does Register, Maintain, Unregister) to maintain it.
func (r *Replicator) Maintain(ctx context.Context, path string) error {
	_, abs, err := r.cfg.Lookup(path)
	if err != nil {
		return err
	}
	e := r.lock(abs)
	defer e.mu.Unlock()
	if e.ldb == nil {
		return nil
	}
	return r.maintain(ctx, e)
}

// maintain runs compaction at each level and retention for e's file, each
// step when due; e.mu is held.
func (r *Replicator) maintain(ctx context.Context, e *entry) error {
	ldb := e.ldb
	if e.done == nil {
		e.done = map[int]time.Time{}
	}
	now := time.Now()
	// due reports whether step, whose level's last boundary is b, may have
	// work: not if it was found done by b already.
	due := func(step int, b time.Time) bool {
		if e.done[step].Equal(b) {
			e.skips++
			return false
		}
		return true
	}
	var errs []error
	levels := append(r.cfg.Levels[1:len(r.cfg.Levels):len(r.cfg.Levels)], r.store.SnapshotLevel())
	for _, lvl := range levels {
		b := lvl.PrevCompactionAt(now)
		if !due(lvl.Level, b) {
			continue
		}
		// CompactDB for L1 also enforces L0 retention.
		_, err := r.store.CompactDB(ctx, ldb, lvl)
		switch {
		case err == nil, errors.Is(err, litestream.ErrCompactionTooEarly):
			// The level has a file made after b: nothing is due before
			// the next boundary.
			e.done[lvl.Level] = b
		case errors.Is(err, litestream.ErrNoCompaction), errors.Is(err, litestream.ErrDBNotReady):
			// Nothing new yet; new files may come before the boundary.
		default:
			errs = append(errs, fmt.Errorf("compact L%d: %w", lvl.Level, err))
		}
	}
	// Retention at most once per L1 interval.
	b := now
	if len(r.cfg.Levels) > 1 {
		b = r.cfg.Levels[1].PrevCompactionAt(now)
	}
	if due(doneSnapshotRetention, b) {
		if err := r.store.EnforceSnapshotRetention(ctx, ldb); err != nil {
			errs = append(errs, err)
		} else {
			e.done[doneSnapshotRetention] = b
		}
	}
	// L0 retention by time also runs when L1 was not due.
	if due(doneL0Retention, b) {
		if err := ldb.EnforceL0RetentionByTime(ctx); err != nil {
			errs = append(errs, fmt.Errorf("L0 retention: %w", err))
		} else {
			e.done[doneL0Retention] = b
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replication: maintain %s: %w", ldb.Path(), err)
	}
	return nil
}

// MaintainAll runs Maintain for every registered file and returns the errors
// joined. Files unregistered meanwhile are skipped. It also forgets what it
// remembered of files no longer registered, once that no longer saves work.
func (r *Replicator) MaintainAll(ctx context.Context) error {
	return r.maintainAll(ctx, time.Now())
}

// maintainAll is MaintainAll, deciding what to forget as of now.
func (r *Replicator) maintainAll(ctx context.Context, now time.Time) error {
	r.mu.Lock()
	paths := make([]string, 0, len(r.dbs))
	var cold []string
	for p, e := range r.dbs {
		if !e.mu.TryLock() {
			paths = append(paths, p) // busy: Maintain waits for it
			continue
		}
		switch {
		case e.ldb != nil:
			paths = append(paths, p)
		case e.coldL0:
			cold = append(cold, p)
		case r.prunable(e, now):
			e.pruned = true
			delete(r.dbs, p)
		}
		e.mu.Unlock()
	}
	r.mu.Unlock()
	var errs []error
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.Maintain(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range cold {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.compactCold(ctx, p, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// compactCold compacts the L0 files of an unregistered file into L1 once
// the L1 window they were written in has ended, as Litestream would have
// if the file had stayed open. It reads and writes only the replica (a
// Compactor needs no database), under the file's entry lock, so it never
// overlaps a Register, Maintain or Unregister of the same file; a file
// registered again meanwhile is left to Maintain.
func (r *Replicator) compactCold(ctx context.Context, abs string, now time.Time) error {
	e := r.lock(abs)
	defer e.mu.Unlock()
	if e.ldb != nil || !e.coldL0 || len(r.cfg.Levels) < 2 {
		return nil
	}
	l1 := r.cfg.Levels[1]
	b := l1.PrevCompactionAt(now)
	if e.done[l1.Level].Equal(b) {
		return nil // L1 was compacted in this window: wait for its end
	}
	dbc, _, err := r.cfg.Lookup(abs)
	if err != nil {
		return err
	}
	client, err := r.clients.forURL(ctx, dbc.replicaURLFor(abs))
	if err != nil {
		return fmt.Errorf("replication: compact %s: %w", abs, err)
	}
	c := litestream.NewCompactor(client, r.logger)
	// Litestream's local copies of the LTX files, as litestream.DB sets
	// them: compaction reads the local copy when there is one, and L0
	// retention must delete it along with the remote file, or the local
	// copy is never removed.
	c.LocalFileOpener = func(level int, minTXID, maxTXID ltx.TXID) (io.ReadCloser, error) {
		return os.Open(localLTXPath(abs, level, minTXID, maxTXID))
	}
	c.LocalFileDeleter = func(level int, minTXID, maxTXID ltx.TXID) error {
		if err := os.Remove(localLTXPath(abs, level, minTXID, maxTXID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	last, err := c.MaxLTXFileInfo(ctx, l1.Level)
	if err != nil {
		return fmt.Errorf("replication: compact %s: %w", abs, err)
	}
	if e.done == nil {
		e.done = map[int]time.Time{}
	}
	if last.CreatedAt.After(b) {
		e.done[l1.Level] = b // made in this window (Litestream's rule too)
		return nil
	}
	if _, err := c.Compact(ctx, l1.Level); err != nil && !errors.Is(err, litestream.ErrNoCompaction) {
		return fmt.Errorf("replication: compact %s: %w", abs, err)
	}
	e.done[l1.Level], e.coldL0 = b, false
	if err := c.EnforceL0Retention(ctx, r.cfg.L0Retention); err != nil {
		return fmt.Errorf("replication: L0 retention of %s: %w", abs, err)
	}
	return nil
}

// RunMaintenance calls MaintainAll every interval (the L1 interval if zero:
// a longer one lets the L1 files of cold tenants span more than a window)
// until ctx ends, logging errors.
func (r *Replicator) RunMaintenance(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = litestream.DefaultCompactionLevels[1].Interval
		if len(r.cfg.Levels) > 1 {
			interval = r.cfg.Levels[1].Interval
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.MaintainAll(ctx); err != nil && ctx.Err() == nil {
				r.logger.Error("replication maintenance", "error", err)
			}
		}
	}
}

// RemoveLocalState deletes Litestream's local state next to the database at
// path (the .<file>-litestream directory). The file must not be registered.
// Use it when deleting a tenant, or to force a fresh snapshot.
func RemoveLocalState(path string) error {
	if err := os.RemoveAll(localStateDir(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// localStateDir is where Litestream keeps its state beside the database at
// path: the layout litestream.NewDB uses (NewDB itself would register
// metrics).
func localStateDir(path string) string {
	dir, name := filepath.Split(path)
	return filepath.Join(dir, "."+name+litestream.MetaDirSuffix)
}

// localLTXPath is Litestream's local copy of an LTX file (DB.LTXPath).
func localLTXPath(path string, level int, minTXID, maxTXID ltx.TXID) string {
	return filepath.Join(localStateDir(path), "ltx", strconv.Itoa(level), ltx.FormatFilename(minTXID, maxTXID))
}

// quiet passes Litestream's warnings and errors on to h, and its info
// records only when h takes debug ones: at info Litestream logs every
// compaction of every tenant ("compaction complete", each 30 s per open
// file), which would drown Silo's own log. --log-level debug shows them.
func quiet(h slog.Handler) slog.Handler {
	min := slog.LevelWarn
	if h.Enabled(context.Background(), slog.LevelDebug) {
		min = slog.LevelDebug
	}
	return &levelFloor{Handler: h, min: min}
}

type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (f *levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f *levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelFloor{Handler: f.Handler.WithAttrs(as), min: f.min}
}

func (f *levelFloor) WithGroup(name string) slog.Handler {
	return &levelFloor{Handler: f.Handler.WithGroup(name), min: f.min}
}
