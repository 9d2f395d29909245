package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// plainWriter opens path the ordinary way and holds its write lock until
// the returned function is called.
func plainWriter(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(path, Options{MustExist: true, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t (v) VALUES (-1)"); err != nil {
		t.Fatal(err)
	}
	return func() { tx.Rollback(); db.Close() }
}

func failOwned(t *testing.T, path string) {
	t.Helper()
	db, err := Open(path, Options{Owned: true, MustExist: true, BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := UserVersion(context.Background(), db); !errors.Is(err, ErrLocked) {
		t.Fatalf("owned open of a held file: %v; want ErrLocked", err)
	}
}

func sparesOf(path string) int {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	return len(spares.fds[path]) + len(spares.fds[path+"\x00stale"])
}

// TestSparesAreTidied: failed attempts leave at most one spare descriptor
// per file, and none for a file deleted since (it would stay on disk).
func TestSparesAreTidied(t *testing.T) {
	a, pathA := openCacheTestDB(t, Options{})
	a.Close()
	b, pathB := openCacheTestDB(t, Options{})
	b.Close()

	release := plainWriter(t, pathA)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() { failOwned(t, pathA) })
	}
	wg.Wait()
	release()
	os.Remove(pathA)
	os.Remove(pathA + "-wal")

	// The next failure, on another file, tidies: the five spares of the
	// deleted file go.
	releaseB := plainWriter(t, pathB)
	failOwned(t, pathB)
	failOwned(t, pathB)
	releaseB()
	if n := sparesOf(pathA); n != 0 {
		t.Fatalf("%d spares of a deleted file kept", n)
	}
	if n := sparesOf(pathB); n > 1 {
		t.Fatalf("%d spares of one file; want at most 1", n)
	}
	if n := opens(t, pathA); n != 0 {
		t.Fatalf("%d descriptors of the deleted file still open", n)
	}
}

// TestOwnedFallbackWithoutOFDLocks: on a file system without OFD locks the
// owned mode is unix-excl: it opens no descriptor of its own (a spare kept
// there would drop SQLite's POSIX locks when closed), and other handles are
// still locked out.
func TestOwnedFallbackWithoutOFDLocks(t *testing.T) {
	ctx := context.Background()
	db0, path := openCacheTestDB(t, Options{})
	db0.Close()
	ofdDirs.Store(filepath.Dir(path), false)
	owned, err := Open(path, Options{Owned: true, KeepWAL: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer owned.Close()
	if _, err := owned.ExecContext(ctx, "INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if n := opens(t, path); n != 2 { // SQLite's: the file and its WAL
		t.Fatalf("%d descriptors of the file and its WAL; want 2 (no lock descriptor)", n)
	}
	other, err := Open(path, Options{MustExist: true, BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n int
	if err := other.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); !IsBusy(err) {
		t.Fatalf("another handle read a file owned through unix-excl: %d, %v", n, err)
	}
	if sparesOf(path) != 0 {
		t.Fatal("a spare descriptor was kept in the fallback")
	}
}
