package tenantdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
)

// fileCache is a Cache over real SQLite files in dir, each with one table,
// that counts the handles open at any moment.
type fileCache struct {
	*tenantdb.Cache
	open, maxOpen atomic.Int64
}

func newFileCache(t *testing.T, cfg tenantdb.CacheConfig) *fileCache {
	t.Helper()
	dir := t.TempDir()
	fc := &fileCache{}
	open := func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		db, err := sqlite.Open(filepath.Join(dir, string(id)+".db"), sqlite.Options{})
		if err != nil {
			return nil, err
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)"); err != nil {
			db.Close()
			return nil, err
		}
		n := fc.open.Add(1)
		for {
			m := fc.maxOpen.Load()
			if n <= m || fc.maxOpen.CompareAndSwap(m, n) {
				break
			}
		}
		return db, nil
	}
	closeFn := func(id silo.TenantID, db *sql.DB) error {
		fc.open.Add(-1)
		return db.Close()
	}
	fc.Cache = tenantdb.NewCache(cfg, open, closeFn)
	t.Cleanup(func() {
		if err := fc.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return fc
}

func TestCacheOpensOncePerTenant(t *testing.T) {
	var opens atomic.Int64
	release := make(chan struct{})
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 4}, func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		opens.Add(1)
		<-release // hold every concurrent first request inside one open
		return sqlite.Open(filepath.Join(t.TempDir(), "a.db"), sqlite.Options{})
	}, func(id silo.TenantID, db *sql.DB) error { return db.Close() })
	defer c.Close(context.Background())

	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, rel, err := c.Acquire(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			defer rel()
			if err := db.Ping(); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := opens.Load(); n != 1 {
		t.Fatalf("opened %d times, want 1", n)
	}
	// A request that waited for another's open counts as a miss (it paid
	// the open's latency); one that came after it, as a hit.
	if s := c.Stats(); s.Misses < 1 || s.Hits+s.Misses != 20 {
		t.Fatalf("stats %+v, want 20 borrows, at least the opener's a miss", s)
	}
}

func TestCacheNeverClosesBorrowedHandle(t *testing.T) {
	c := newFileCache(t, tenantdb.CacheConfig{Capacity: 1})
	ctx := context.Background()
	dbA, relA, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// b's open pushes the cache over capacity; a is borrowed, so it stays.
	_, relB, err := c.Acquire(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dbA.ExecContext(ctx, "INSERT INTO kv VALUES ('x','1')"); err != nil {
		t.Fatalf("borrowed handle unusable: %v", err)
	}
	if s := c.Stats(); s.OpenHandles != 2 {
		t.Fatalf("open handles %d, want 2 (both borrowed)", s.OpenHandles)
	}
	relB()
	relA()
	// With both released, the cache shrinks back to its capacity.
	if s := c.Stats(); s.OpenHandles != 1 || s.Evictions != 1 {
		t.Fatalf("after release: %+v", s)
	}
	relA() // a second release is a no-op, not a negative count
	if s := c.Stats(); s.Borrowed != 0 {
		t.Fatalf("borrowed %d after double release", s.Borrowed)
	}
}

// TestCacheChurn runs many goroutines over more tenants than slots, with
// capacity 1 and 2, under -race: no "database is closed", no error, and the
// handles open never exceed capacity plus borrowers.
func TestCacheChurn(t *testing.T) {
	for _, capacity := range []int{1, 2} {
		t.Run(fmt.Sprint("capacity", capacity), func(t *testing.T) {
			c := newFileCache(t, tenantdb.CacheConfig{Capacity: capacity})
			const workers, tenants, ops = 8, 6, 150
			var borrowed atomic.Int64
			var violations atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 1))
					for i := range ops {
						id := silo.TenantID(fmt.Sprintf("t%d", r.IntN(tenants)))
						db, rel, err := c.Acquire(context.Background(), id)
						if err != nil {
							t.Errorf("acquire %s: %v", id, err)
							return
						}
						borrowed.Add(1)
						// One consistent snapshot: handles open (or opening)
						// never exceed capacity plus those borrowed.
						if s := c.Stats(); s.OpenHandles > capacity+s.Borrowed || int64(s.Borrowed) > workers {
							violations.Add(1)
						}
						k := fmt.Sprintf("w%d-%d", w, i)
						if _, err := db.Exec("INSERT INTO kv VALUES (?, ?)", k, string(id)); err != nil {
							t.Errorf("write %s: %v", id, err)
						}
						var v string
						if err := db.QueryRow("SELECT v FROM kv WHERE k = ?", k).Scan(&v); err != nil || v != string(id) {
							t.Errorf("read back %s: %q %v", id, v, err)
						}
						borrowed.Add(-1)
						rel()
					}
				}()
			}
			wg.Wait()
			if v := violations.Load(); v > 0 {
				t.Errorf("open handles exceeded capacity+borrowers %d times", v)
			}
			s := c.Stats()
			if s.OpenHandles > capacity || s.Evictions == 0 {
				t.Errorf("final stats %+v", s)
			}
		})
	}
}

func TestCacheHoldBlocksThenTimesOut(t *testing.T) {
	c := newFileCache(t, tenantdb.CacheConfig{Capacity: 2, HoldWait: 50 * time.Millisecond})
	ctx := context.Background()
	_, rel, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan func())
	go func() {
		r, err := c.Hold(ctx, "a", silo.ETENANTBUSY)
		if err != nil {
			t.Error(err)
		}
		held <- r
	}()
	select {
	case <-held:
		t.Fatal("hold granted while the handle is borrowed")
	case <-time.After(30 * time.Millisecond):
	}
	rel()
	unhold := <-held
	if s := c.Stats(); s.OpenHandles != 0 {
		t.Fatalf("held tenant still open: %+v", s)
	}
	// While held, a request waits HoldWait and then gets the hold's code.
	_, _, err = c.Acquire(ctx, "a")
	if silo.ErrorCode(err) != silo.ETENANTBUSY {
		t.Fatalf("acquire during hold: %v", err)
	}
	// Other tenants are unaffected.
	if _, r, err := c.Acquire(ctx, "b"); err != nil {
		t.Fatal(err)
	} else {
		r()
	}
	// A request waiting when the hold ends proceeds.
	done := make(chan error)
	go func() {
		_, r, err := c.Acquire(ctx, "a")
		if err == nil {
			r()
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	unhold()
	if err := <-done; err != nil {
		t.Fatalf("acquire after hold: %v", err)
	}
}

func TestCacheIdleTimeout(t *testing.T) {
	c := newFileCache(t, tenantdb.CacheConfig{Capacity: 10, IdleTimeout: 30 * time.Millisecond})
	_, rel, err := c.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	rel()
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().OpenHandles != 0 || c.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle handle not closed: %+v", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCacheOpenErrorIsNotCached(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 2}, func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		if fail.Load() {
			return nil, silo.Errorf(silo.ETENANTMIGRATING, "later")
		}
		return sqlite.Open(filepath.Join(t.TempDir(), "a.db"), sqlite.Options{})
	}, func(id silo.TenantID, db *sql.DB) error { return db.Close() })
	defer c.Close(context.Background())
	if _, _, err := c.Acquire(context.Background(), "a"); silo.ErrorCode(err) != silo.ETENANTMIGRATING {
		t.Fatalf("got %v", err)
	}
	fail.Store(false)
	_, rel, err := c.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatalf("retry after failed open: %v", err)
	}
	rel()
}

func TestCacheClosedRefuses(t *testing.T) {
	c := newFileCache(t, tenantdb.CacheConfig{Capacity: 2})
	_, rel, err := c.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	rel()
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.open.Load() != 0 {
		t.Fatalf("%d handles still open after Close", c.open.Load())
	}
	_, _, err = c.Acquire(context.Background(), "a")
	if err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("acquire after close: %v", err)
	}
}

// TestCacheScanResistance: the segmented LRU keeps tenants that are used
// again and again when a burst of tenants each seen once passes through; a
// plain LRU would have evicted them all.
func TestCacheScanResistance(t *testing.T) {
	shared, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	var opens atomic.Int64
	open := func(context.Context, silo.TenantID) (*sql.DB, error) { opens.Add(1); return shared, nil }
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 10}, open, func(silo.TenantID, *sql.DB) error { return nil })
	defer c.Close(context.Background())
	use := func(id string) {
		t.Helper()
		_, release, err := c.Acquire(context.Background(), silo.TenantID(id))
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	hot := []string{"h0", "h1", "h2", "h3", "h4"}
	for range 2 { // a second use promotes each to the protected segment
		for _, id := range hot {
			use(id)
		}
	}
	for i := range 100 {
		use(fmt.Sprintf("cold%d", i))
	}
	before := opens.Load()
	for _, id := range hot {
		use(id)
	}
	if n := opens.Load() - before; n != 0 {
		t.Fatalf("%d of %d hot tenants were evicted by a scan of 100 tenants seen once", n, len(hot))
	}
	if s := c.Stats(); s.OpenHandles > 10 {
		t.Fatalf("%d handles open, capacity 10", s.OpenHandles)
	}
	// And the probation segment still works as an LRU for the newcomers:
	// the most recent cold tenant is still open.
	use("cold99")
	if n := opens.Load() - before; n != 0 {
		t.Fatalf("the most recently used newcomer was evicted")
	}
}

// TestDiscardWaitsForBorrowers: a discarded handle (its file failed) is
// not handed out again, however requests overlap: a new request waits for
// the borrowers to finish and the handle to close, then opens the file
// afresh. Never two handles on one file.
func TestDiscardWaitsForBorrowers(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	open := 0
	opens := 0
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 4, HoldWait: 10 * time.Second}, func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		mu.Lock()
		defer mu.Unlock()
		open++
		opens++
		if open > 1 {
			t.Errorf("two handles open on %s", id)
		}
		return sqlite.Open(filepath.Join(dir, string(id)+".db"), sqlite.Options{})
	}, func(id silo.TenantID, db *sql.DB) error {
		mu.Lock()
		open--
		mu.Unlock()
		return db.Close()
	})
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stale, release, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer release() // once only: also if the test fails early
	c.Discard("a")
	got := make(chan *sql.DB)
	go func() {
		db, rel, err := c.Acquire(ctx, "a") // arrives while the first still runs
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		rel()
		got <- db
	}()
	select {
	case <-got:
		t.Fatal("a request got the discarded handle's tenant while the handle was still borrowed")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	db := <-got
	if db == nil || db == stale {
		t.Fatalf("after the borrower finished: %p, the discarded handle was %p", db, stale)
	}
	mu.Lock()
	defer mu.Unlock()
	if opens != 2 {
		t.Fatalf("%d opens, want 2", opens)
	}
}

// TestReleaseAfterCloseGaveUp: a request still running when Close stopped
// waiting closes its handle when it finishes.
func TestReleaseAfterCloseGaveUp(t *testing.T) {
	dir := t.TempDir()
	closed := make(chan struct{}, 1)
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 4}, func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		return sqlite.Open(filepath.Join(dir, string(id)+".db"), sqlite.Options{})
	}, func(id silo.TenantID, db *sql.DB) error { closed <- struct{}{}; return db.Close() })
	_, release, err := c.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err == nil {
		t.Fatal("Close with a handle borrowed reported no error")
	}
	release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the handle released after Close gave up was never closed")
	}
}

// TestCloseWaitsForLateRelease: a borrower that releases while Close still
// waits has its handle closed before Close returns (Store.Close then stops
// the backup, which must come after the handle's final sync).
func TestCloseWaitsForLateRelease(t *testing.T) {
	dir := t.TempDir()
	var closed atomic.Bool
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 4}, func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		return sqlite.Open(filepath.Join(dir, string(id)+".db"), sqlite.Options{})
	}, func(id silo.TenantID, db *sql.DB) error {
		time.Sleep(300 * time.Millisecond) // a slow final sync
		closed.Store(true)
		return db.Close()
	})
	_, release, err := c.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !closed.Load() {
		t.Fatal("Close returned before the released handle was closed")
	}
}

// TestCacheReopenWaitsForCloseBounded: a tenant whose evicted handle is
// still closing (its final sync stuck on an unreachable replica, behind
// other closes) must not keep a request waiting for as long as that takes:
// like a held tenant, it answers tenant_busy after HoldWait, and serves
// again once the close is done.
func TestCacheReopenWaitsForCloseBounded(t *testing.T) {
	dir := t.TempDir()
	stuck := make(chan struct{})
	open := func(ctx context.Context, id silo.TenantID) (*sql.DB, error) {
		return sqlite.Open(filepath.Join(dir, string(id)+".db"), sqlite.Options{})
	}
	closeFn := func(id silo.TenantID, db *sql.DB) error {
		if id == "a" {
			<-stuck
		}
		return db.Close()
	}
	c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: 1, HoldWait: 50 * time.Millisecond, Closers: 1}, open, closeFn)
	defer c.Close(context.Background())
	unstick := sync.OnceFunc(func() { close(stuck) })
	defer unstick() // before the Close above, which waits for the close
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []silo.TenantID{"a", "b"} { // b evicts a, whose close sticks
		_, rel, err := c.Acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rel()
	}
	if _, _, err := c.Acquire(ctx, "a"); silo.ErrorCode(err) != silo.ETENANTBUSY {
		t.Fatalf("a tenant whose close is stuck: %v, want tenant_busy after HoldWait", err)
	}
	unstick()
	_, rel, err := c.Acquire(ctx, "a")
	if err != nil {
		t.Fatalf("once its close is done: %v", err)
	}
	rel()
}
