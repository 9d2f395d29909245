package tenantdb_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// fakeBackup stands in for the replica so that a test can make it fail on
// cue; the files are real. It records which files are registered.
type fakeBackup struct {
	mu                     sync.Mutex
	failRegister, failSync bool
	registered             map[string]bool
	// restoreNothing makes Restore report success without writing its
	// output, so the restore's final rename fails.
	restoreNothing bool
	// emptyReplica makes every replica look empty (ReplicaTXID 0).
	emptyReplica bool
	// down makes the replica unreachable for reads too; registers counts
	// the calls of Register.
	down      bool
	registers int
}

func (f *fakeBackup) set(register, sync bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failRegister, f.failSync = register, sync
}

func (f *fakeBackup) Register(ctx context.Context, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers++
	if f.failRegister || f.down {
		return errors.New("replica unreachable")
	}
	f.registered[path] = true
	return nil
}

func (f *fakeBackup) Unregister(ctx context.Context, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.registered[path] {
		return nil
	}
	if f.failSync {
		return errors.New("replica unreachable") // stays registered
	}
	delete(f.registered, path)
	return nil
}

func (f *fakeBackup) Forget(ctx context.Context, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.registered, path)
	return nil
}

func (f *fakeBackup) isRegistered(p string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registered[p]
}

func (f *fakeBackup) Maintain(ctx context.Context, path string) error { return nil }
func (f *fakeBackup) Restore(ctx context.Context, name, out string, at time.Time, txid uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.restoreNothing {
		return nil
	}
	return errors.New("no restores here")
}
func (f *fakeBackup) ReplicaTXID(ctx context.Context, name string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, errors.New("replica unreachable")
	}
	if f.emptyReplica {
		return 0, nil
	}
	return 1, nil
}

// openFakeStore opens a store whose backup is fb; dirty collects the
// tenants recorded as registered (OnBackupState true).
func openFakeStore(t *testing.T, fb *fakeBackup, dirty *sync.Map) *tenantdb.Store {
	t.Helper()
	st, err := tenantdb.Open(context.Background(), tenantdb.Config{
		Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, Backup: fb,
		OnBackupState: func(ctx context.Context, id silo.TenantID, registered bool) {
			if registered {
				dirty.Store(id, true)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

// writeTo makes tenant "t1" in placement p (its file, for "database") and
// writes a project to it, as a request would.
func writeTo(t *testing.T, st *tenantdb.Store, p silo.Strategy) *silo.Tenant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if p == silo.StrategyDatabase {
		if err := st.Provision(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
	}
	tn := &silo.Tenant{ID: "t1", Slug: "t1", Strategy: p, Status: silo.TenantActive}
	if _, err := tenantdb.NewProjectService(st).CreateProject(silo.NewContextWithTenant(ctx, tn), "acked"); err != nil {
		t.Fatal(err)
	}
	return tn
}

// TestRegisterFailureStillMarkedDirty: a tenant served while the replica
// refused its registration takes writes; it must be recorded as needing a
// sync, or a crash would leave those writes out of the replica for good
// (RecoverBackups syncs only the recorded tenants).
func TestRegisterFailureStillMarkedDirty(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}, failRegister: true}
	var dirty sync.Map
	st := openFakeStore(t, fb, &dirty)
	writeTo(t, st, silo.StrategyDatabase)
	if _, ok := dirty.Load(silo.TenantID("t1")); !ok {
		t.Fatal("a write was acknowledged while the file was not registered, and the tenant was not recorded for crash recovery")
	}
}

// TestMoveForgetsFileStillRegistered: when the final sync of a tenant's
// file fails (replica down) just as a move takes the tenant out of its
// file, the file is still registered when the move removes it. Litestream
// must stop replicating it then; before, the retry found no file and left
// the registration on the deleted file for good.
func TestMoveForgetsFileStillRegistered(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}}
	var dirty sync.Map
	st := openFakeStore(t, fb, &dirty)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn := writeTo(t, st, silo.StrategyDatabase)
	path, _ := st.Path("t1")
	if !fb.isRegistered(path) {
		t.Fatal("open tenant not registered")
	}
	fb.set(false, true) // the replica goes down as the move's hold evicts the tenant
	noop := func(context.Context) error { return nil }
	if _, err := st.Move(ctx, tn, silo.StrategyShared, tenantdb.MoveSteps{
		Journal: noop, Abort: noop, Dropped: noop,
		Commit: func(context.Context, silo.Strategy) error { return nil },
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the moved tenant's file is still there: %v", err)
	}
	if fb.isRegistered(path) {
		t.Fatal("the move removed a file that is still registered for backup")
	}
}

// TestMoveIntoFileMarkedBeforeCommit: a crash right after a move into the
// tenant's own file committed, before the new file was synced, must leave
// the tenant recorded for the start's backup recovery; otherwise the new
// file stays out of its backup until its first request.
func TestMoveIntoFileMarkedBeforeCommit(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}}
	var dirty sync.Map
	st, err := tenantdb.Open(context.Background(), tenantdb.Config{
		Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, Backup: fb,
		OnBackupState: func(ctx context.Context, id silo.TenantID, registered bool) {
			if registered {
				dirty.Store(id, true)
			} else {
				dirty.Delete(id)
			}
		},
		MoveHook: func(step string) error {
			if step == "committed" {
				return tenantdb.ErrSimulatedCrash
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn := writeTo(t, st, silo.StrategyShared)
	noop := func(context.Context) error { return nil }
	_, err = st.Move(ctx, tn, silo.StrategyDatabase, tenantdb.MoveSteps{
		Journal: noop, Abort: noop, Dropped: noop,
		Commit: func(context.Context, silo.Strategy) error { return nil },
	})
	if !errors.Is(err, tenantdb.ErrSimulatedCrash) {
		t.Fatalf("move: %v", err)
	}
	if _, ok := dirty.Load(silo.TenantID("t1")); !ok {
		t.Fatal("a move into the file crashed after its commit and the tenant is not recorded for the start's backup recovery")
	}
}

// TestFailedRestoreKeepsTenant: a restore the replica cannot serve (down,
// unreadable) answers 503 without the replica's internals, and leaves the
// tenant's file and rows as they were. It used to answer 404 "No backup to
// restore: <the error>", as if the tenant had no backup.
func TestFailedRestoreKeepsTenant(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}}
	var dirty sync.Map
	st := openFakeStore(t, fb, &dirty)
	tn := writeTo(t, st, silo.StrategyDatabase)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := st.RestoreInPlace(ctx, tn, time.Time{}, 0)
	if silo.ErrorCode(err) != silo.EUNAVAILABLE || strings.Contains(silo.ErrorMessage(err), "no restores here") {
		t.Fatalf("restore from a failing replica: %v (want unavailable, without the replica's error)", err)
	}
	ps, _, err := tenantdb.NewProjectService(st).Projects(silo.NewContextWithTenant(ctx, tn), silo.Page{Limit: 10}, silo.ProjectFilter{})
	if err != nil || len(ps) != 1 || ps[0].Name != "acked" {
		t.Fatalf("after a failed restore: %v %v", ps, err)
	}
}

// TestRestoreFailingAtRenameKeepsTenant: an in-place restore whose last
// step, renaming the restored file over the tenant's, fails must leave the
// tenant's file and rows as they were. The restore used to remove the old
// file before the rename, so a failed rename left the tenant with no file.
func TestRestoreFailingAtRenameKeepsTenant(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}, restoreNothing: true}
	var dirty sync.Map
	st := openFakeStore(t, fb, &dirty)
	tn := writeTo(t, st, silo.StrategyDatabase)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := st.RestoreInPlace(ctx, tn, time.Time{}, 0); err == nil {
		t.Fatal("a restore whose output never appeared succeeded")
	}
	path, err := st.Path(tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the tenant's file after a failed rename: %v", err)
	}
	ps, _, err := tenantdb.NewProjectService(st).Projects(silo.NewContextWithTenant(ctx, tn), silo.Page{Limit: 10}, silo.ProjectFilter{})
	if err != nil || len(ps) != 1 || ps[0].Name != "acked" {
		t.Fatalf("after a restore that failed at its rename: %v %v", ps, err)
	}
}

// TestLazyRestoreFailureIsNotNotFound: a tenant whose file is missing and
// cannot be restored now (here the catalog cannot say whether it was ever
// backed up) exists all the same: its requests get 503, never 404
// tenant_not_found, which a client may take for a deleted tenant.
func TestLazyRestoreFailureIsNotNotFound(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}, emptyReplica: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, Backup: fb,
		BackupSeen: func(context.Context, silo.TenantID) (bool, error) {
			return false, errors.New("catalog: disk I/O error")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	tn := &silo.Tenant{ID: "t1", Slug: "t1", Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
	_, _, err = tenantdb.NewProjectService(st).Projects(silo.NewContextWithTenant(ctx, tn), silo.Page{}, silo.ProjectFilter{})
	if silo.ErrorCode(err) != silo.EUNAVAILABLE || strings.Contains(silo.ErrorMessage(err), "disk I/O") {
		t.Fatalf("a missing file that cannot be restored now: %v (code %q), want unavailable without internals", err, silo.ErrorCode(err))
	}
}

// TestRetryLeavesTenantAloneWhileReplicaDown: a tenant whose registration
// failed is served and retried in the background. While the replica stays
// unreachable the retry must not take the tenant: it used to hold it,
// closing its handle and keeping its requests waiting (then 503) for as
// long as each attempt took, every retry period. Once the replica is back
// the retry catches the replica up.
func TestRetryLeavesTenantAloneWhileReplicaDown(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}, down: true}
	var dirty sync.Map
	st := openFakeStore(t, fb, &dirty)
	writeTo(t, st, silo.StrategyDatabase) // served, register failed
	fb.mu.Lock()
	before := fb.registers
	fb.mu.Unlock()
	time.Sleep(6 * time.Second) // one retry period and more
	fb.mu.Lock()
	during := fb.registers - before
	fb.mu.Unlock()
	if during != 0 {
		t.Fatalf("%d register attempts under a hold while the replica was down", during)
	}
	if s := st.Cache().Stats(); s.OpenHandles != 1 {
		t.Fatalf("the tenant's handle was closed by a retry during the outage: %+v", s)
	}
	fb.mu.Lock()
	fb.down = false
	fb.mu.Unlock()
	path, _ := st.Path("t1")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		fb.mu.Lock()
		n := fb.registers - before
		fb.mu.Unlock()
		if n > 0 && !fb.isRegistered(path) {
			break // retried: registered, synced and unregistered
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica came back and the tenant was never synced")
		}
	}
}

// TestCloseKeepsMarkOfUnregisteredFile: a tenant opened while the replica
// was unreachable (its registration failed) and written must keep its mark
// when its handle closes with the replica still away: nothing reached the
// replica. Unregister of a file that is not registered succeeds, and the
// mark used to be cleared then, so the next start never synced the writes.
func TestCloseKeepsMarkOfUnregisteredFile(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}, down: true}
	var mu sync.Mutex
	marked := map[silo.TenantID]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, Backup: fb,
		OnBackupState: func(ctx context.Context, id silo.TenantID, registered bool) {
			mu.Lock()
			defer mu.Unlock()
			marked[id] = registered
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	writeTo(t, st, silo.StrategyDatabase)
	if err := st.Close(ctx); err != nil {
		t.Logf("close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !marked["t1"] {
		t.Fatal("the mark of a tenant written while its file was not registered was cleared at close")
	}
}

// cancelOnSync is a replica that fails the final sync of a file, and ends
// the caller's context as it does: the client gave up while the sync waited
// on an unreachable replica.
type cancelOnSync struct {
	*fakeBackup
	cancel func()
	armed  bool
}

func (c *cancelOnSync) Unregister(ctx context.Context, path string) error {
	if c.armed {
		c.cancel()
		return errors.New("replica unreachable")
	}
	return c.fakeBackup.Unregister(ctx, path)
}

// TestRemoveKeepsFileWhenCallerLeavesDuringFailedSync: a delete whose
// final sync fails while its caller goes away must keep the file (its
// newest writes are not in the replica). Before, the check that tells an
// unreadable file (whose writes are let go) from a replica failure ran on
// the ended context, failed at once, and took the file for unreadable: the
// file was removed and the delete reported success. (Found in review.)
func TestRemoveKeepsFileWhenCallerLeavesDuringFailedSync(t *testing.T) {
	fb := &fakeBackup{registered: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cb := &cancelOnSync{fakeBackup: fb, cancel: cancel}
	st, err := tenantdb.Open(context.Background(), tenantdb.Config{
		Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, Backup: cb,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	tn := writeTo(t, st, silo.StrategyDatabase)
	path, err := st.Path(tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Close the tenant's handle first: its close syncs normally.
	rel, err := st.Cache().Hold(context.Background(), tn.ID, silo.ETENANTBUSY)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	cb.armed = true
	err = st.Remove(ctx, tn)
	if silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Errorf("Remove with the final sync failing: %v, want unavailable", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file was removed although its final sync failed: %v", err)
	}
}

// TestEmptyTenantFileIsRefused: a tenant file truncated to nothing used to
// be taken for a new database, migrated from version 0 and served empty
// (its data silently gone), and with backups replicated as the tenant's
// newest state, which a restore of "the latest" then brought back. Now it
// is refused (503) and left alone, with and without backups, and a restore
// in place still finds the data in the replica (the empty file is not
// synced first).
func TestEmptyTenantFileIsRefused(t *testing.T) {
	for _, withBackup := range []bool{false, true} {
		t.Run(fmt.Sprint("backup=", withBackup), func(t *testing.T) {
			fb := &fakeBackup{registered: map[string]bool{}}
			cfg := tenantdb.Config{Dir: t.TempDir(), Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true}
			if withBackup {
				cfg.Backup = fb
			}
			st, err := tenantdb.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close(context.Background())
			tn := writeTo(t, st, silo.StrategyDatabase)
			path, _ := st.Path(tn.ID)
			rel, err := st.Cache().Hold(context.Background(), tn.ID, silo.ETENANTBUSY)
			if err != nil {
				t.Fatal(err)
			}
			rel() // closed
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			os.Remove(path + "-wal")
			fb.mu.Lock()
			registersBefore := fb.registers
			fb.mu.Unlock()

			ctx := silo.NewContextWithTenant(context.Background(), tn)
			_, _, err = tenantdb.NewProjectService(st).Projects(ctx, silo.Page{}, silo.ProjectFilter{})
			if silo.ErrorCode(err) != silo.ESTORAGE {
				t.Fatalf("a read of the emptied tenant: %v, want %s", err, silo.ESTORAGE)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
				t.Fatalf("the emptied file was changed (migrated?): %v, %d bytes", err, fi.Size())
			}
			fb.mu.Lock()
			registered := fb.registers - registersBefore
			fb.mu.Unlock()
			if registered != 0 {
				t.Fatalf("the emptied file was registered with the replica %d times", registered)
			}
			if withBackup {
				// In place: the empty file is not synced over the replica's
				// newest state first; the restore itself is the replica's.
				fb.mu.Lock()
				fb.restoreNothing = true
				fb.mu.Unlock()
				_ = st.RestoreInPlace(context.Background(), tn, time.Time{}, 0)
				fb.mu.Lock()
				registered = fb.registers - registersBefore
				fb.mu.Unlock()
				if registered != 0 {
					t.Fatalf("a restore registered the emptied file first (%d)", registered)
				}
			}
		})
	}
}
