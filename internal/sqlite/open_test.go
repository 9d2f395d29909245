package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"golang.org/x/sync/errgroup"
)

// How tenant handles are opened without backups: unix-excl and a kept,
// emptied WAL. These tests pin what that must and must not change.

func newWALFile(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := sqlite.SetWAL(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeepWALLeavesAnEmptyWAL: after the last connection closes, the -wal is
// still there but empty (so the next open neither creates nor replays it),
// every committed row is in the database file, and with unix-excl there is
// no -shm at all.
func TestKeepWALLeavesAnEmptyWAL(t *testing.T) {
	for name, o := range heldModes {
		t.Run(name, func(t *testing.T) { testKeepWAL(t, o) })
	}
}

// heldModes are the two ways a process keeps a file to itself: a pool on
// unix-excl (the fleet's migrations), and one owned connection (tenant
// handles without backups).
var heldModes = map[string]sqlite.Options{
	"exclusive": {MaxConns: 4, Exclusive: true, KeepWAL: true, MustExist: true},
	"owned":     {Owned: true, KeepWAL: true, MustExist: true},
}

func testKeepWAL(t *testing.T, o sqlite.Options) {
	ctx := context.Background()
	path := newWALFile(t)
	for round := range 3 {
		db, err := sqlite.Open(path, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", round*100+i); err != nil {
				t.Fatal(err)
			}
		}
		if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
			t.Fatalf("round %d: while open, the WAL should hold the writes: %v, %v", round, fi, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatalf("round %d: WAL removed at close: %v", round, err)
		}
		if fi.Size() != 0 {
			t.Fatalf("round %d: WAL kept with %d bytes; want it emptied", round, fi.Size())
		}
		if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
			t.Fatalf("round %d: a held file left a -shm file (%v)", round, err)
		}
	}
	// Everything is in the main file: a plain open sees all 150 rows.
	db, err := sqlite.Open(path, sqlite.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 150 {
		t.Fatalf("count = %d, %v; want 150", n, err)
	}
}

// TestExclusivePoolIsConsistent: several pooled unix-excl connections of one
// process share the in-memory WAL index; concurrent writers and readers see
// one consistent database, and nothing is lost.
func TestExclusivePoolIsConsistent(t *testing.T) {
	ctx := context.Background()
	path := newWALFile(t)
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 4, Exclusive: true, KeepWAL: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 3, 200
	g, gctx := errgroup.WithContext(ctx)
	for w := range writers {
		g.Go(func() error {
			for i := range each {
				if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", w*each+i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for range 2 {
		g.Go(func() error {
			last := 0
			for last < writers*each && gctx.Err() == nil {
				// Two reads in one transaction must agree: a reader on a
				// stale or torn WAL index would see them differ.
				tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					return err
				}
				var n, sum int
				err = tx.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
				if err == nil {
					err = tx.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v >= 0").Scan(&sum)
				}
				tx.Rollback()
				if err != nil {
					return err
				}
				if n != sum || n < last {
					return fmt.Errorf("inconsistent reads: %d then %d (previously %d)", n, sum, last)
				}
				last = n
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	checkDistinct(t, path, writers*each)
}

// checkDistinct opens path afresh and checks that it holds want distinct
// values of v and passes integrity_check.
func checkDistinct(t *testing.T, path string, want int) {
	t.Helper()
	ctx := context.Background()
	check, err := sqlite.Open(path, sqlite.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	var n int
	var ok string
	if err := check.QueryRowContext(ctx, "SELECT count(DISTINCT v) FROM t").Scan(&n); err != nil || n != want {
		t.Fatalf("distinct rows = %d, %v; want %d", n, err, want)
	}
	if err := check.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}

// TestExclusiveLocksOutOtherProcesses: while a held handle is open, another
// process (the sqlite3 shell here) cannot read or write the file, so it can
// never use a -shm index that disagrees with ours; once the handle closes,
// it can.
func TestExclusiveLocksOutOtherProcesses(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 shell on PATH (apt-get install sqlite3)")
	}
	for name, o := range heldModes {
		t.Run(name, func(t *testing.T) { testLocksOut(t, shell, o) })
	}
}

func testLocksOut(t *testing.T, shell string, o sqlite.Options) {
	ctx := context.Background()
	path := newWALFile(t)
	db, err := sqlite.Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(shell, "-cmd", ".timeout 200", path, "INSERT INTO t (v) VALUES (2); SELECT count(*) FROM t;").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "locked") {
		t.Fatalf("another process used the file while it was held: err %v, output %q", err, out)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(shell, "-cmd", ".timeout 200", path, "SELECT count(*) FROM t;").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("after close: err %v, output %q; want 1 row", err, out)
	}
}

// TestOwnedLocksOutThisProcess: an owned file's lock also stops other
// handles of this process, and survives this process opening and closing
// another descriptor of the file, which drops every POSIX lock the process
// has on it (the trap unix-excl falls into).
func TestOwnedLocksOutThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the owned lock is an OFD lock only on Linux; elsewhere it is unix-excl")
	}
	ctx := context.Background()
	path := newWALFile(t)
	owned, err := sqlite.Open(path, sqlite.Options{Owned: true, KeepWAL: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owned.ExecContext(ctx, "INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// A descriptor opened and closed beside SQLite's.
	if f, err := os.Open(path); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	quick := 50 * time.Millisecond
	second, err := sqlite.Open(path, sqlite.Options{Owned: true, MustExist: true, BusyTimeout: quick})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.UserVersion(ctx, second); !errors.Is(err, sqlite.ErrLocked) || !sqlite.IsBusy(err) {
		t.Fatalf("second owner: %v; want ErrLocked", err)
	}
	second.Close()
	other, err := sqlite.Open(path, sqlite.Options{MustExist: true, BusyTimeout: quick})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); !sqlite.IsBusy(err) {
		t.Fatalf("a plain handle read an owned file: %d, %v; want SQLITE_BUSY", n, err)
	}
	other.Close()
	if err := owned.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(path, sqlite.Options{MustExist: true, BusyTimeout: quick})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the owner closed: %d, %v; want 1 row", n, err)
	}
}

// TestOwnedLockOutlivesDBClose: closing an owned *sql.DB while one of its
// transactions is still open must not let another owner in: the lock goes
// with the connection, which database/sql closes only when the transaction
// gives it back. (A lock tied to the *sql.DB let a second owner write
// meanwhile, and the first one's committed row was lost.)
func TestOwnedLockOutlivesDBClose(t *testing.T) {
	ctx := context.Background()
	path := newWALFile(t)
	quick := sqlite.Options{Owned: true, KeepWAL: true, MustExist: true, BusyTimeout: 50 * time.Millisecond}
	first, err := sqlite.Open(path, quick)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := first.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	first.Close() // returns at once; the transaction's connection stays open
	second, err := sqlite.Open(path, quick)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := second.ExecContext(ctx, "INSERT INTO t (v) VALUES (2)"); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("second owner while the first's transaction is open: %v; want ErrLocked", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := second.ExecContext(ctx, "INSERT INTO t (v) VALUES (3)"); err != nil {
		t.Fatalf("second owner after the first let go: %v", err)
	}
	var got string
	if err := second.QueryRowContext(ctx, "SELECT group_concat(v) FROM (SELECT v FROM t ORDER BY v)").Scan(&got); err != nil || got != "1,3" {
		t.Fatalf("rows %q, %v; want 1,3", got, err)
	}
}

// TestOwnedFailedAttemptKeepsOthersLocks: an owner that cannot get the lock
// must not close its descriptor of the file, which would drop the POSIX
// locks another handle of this process holds on it; and a descriptor kept
// from a failed attempt must not lock a file that has since been replaced.
func TestOwnedFailedAttemptKeepsOthersLocks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the owned lock is an OFD lock only on Linux")
	}
	ctx := context.Background()
	path := newWALFile(t)
	quick := sqlite.Options{Owned: true, KeepWAL: true, MustExist: true, BusyTimeout: 30 * time.Millisecond}
	plain, err := sqlite.Open(path, sqlite.Options{MustExist: true, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := plain.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		owner, err := sqlite.Open(path, quick)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sqlite.UserVersion(ctx, owner); !errors.Is(err, sqlite.ErrLocked) {
			t.Fatalf("attempt %d while another handle writes: %v; want ErrLocked", i, err)
		}
		owner.Close()
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	plain.Close()

	// Replace the file (as a restore does) while a spare descriptor of the
	// old one is kept: the next owner must lock the new file.
	fresh := newWALFile(t)
	if err := os.Rename(fresh, path); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + "-wal")
	owner, err := sqlite.Open(path, quick)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if _, err := owner.ExecContext(ctx, "INSERT INTO t (v) VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	other, err := sqlite.Open(path, sqlite.Options{MustExist: true, BusyTimeout: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n int
	if err := other.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); !sqlite.IsBusy(err) {
		t.Fatalf("a plain handle read the replaced file while it is owned: %d, %v; want SQLITE_BUSY", n, err)
	}
}

// TestOwnedRecoversItsWAL: the WAL index of an owned file lives only in
// its connection's memory. A process killed with the handle open leaves
// committed transactions in the WAL alone; the next owner rebuilds the
// index from it and sees them all. (A copy of the files taken while the
// handle is open is what a kill leaves on disk.)
func TestOwnedRecoversItsWAL(t *testing.T) {
	ctx := context.Background()
	path := newWALFile(t)
	db, err := sqlite.Open(path, sqlite.Options{Owned: true, KeepWAL: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 20 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	crashed := filepath.Join(t.TempDir(), "t.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if suffix == "-wal" && len(b) == 0 {
			t.Fatal("the WAL is empty while the handle is open; nothing to recover")
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	re, err := sqlite.Open(crashed, sqlite.Options{Owned: true, KeepWAL: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	var n int
	var ok string
	if err := re.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 20 {
		t.Fatalf("recovered %d rows, %v; want 20", n, err)
	}
	if err := re.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}

// TestOwnedSerialisesConcurrentUse: an owned handle has one connection;
// concurrent writers and readers queue for it and nothing is lost.
func TestOwnedSerialisesConcurrentUse(t *testing.T) {
	ctx := context.Background()
	path := newWALFile(t)
	db, err := sqlite.Open(path, sqlite.Options{Owned: true, KeepWAL: true, MustExist: true, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	if n := db.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("an owned handle may open %d connections; want 1", n)
	}
	g, _ := errgroup.WithContext(ctx)
	for w := range 4 {
		g.Go(func() error {
			for i := range 100 {
				if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", w*100+i); err != nil {
					return err
				}
				var n int
				if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	checkDistinct(t, path, 400)
}

// BenchmarkOpenCycle is a cache miss at the SQLite level: open a closed file,
// answer one query, close it, over 200 files in turn, with none or 1,000
// other files held open as a server's handle cache holds them (the unix
// VFSes walk a list of every open file at each open). "shared" is how a
// file replicated by Litestream is opened (default VFS, a pool);
// "exclusive" is unix-excl; "owned" is how a tenant handle is opened
// without backups.
func BenchmarkOpenCycle(b *testing.B) {
	ctx := context.Background()
	paths := make([]string, 1200)
	for i := range paths {
		paths[i] = newWALFile(b)
		db, err := sqlite.Open(paths[i], sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (42)"); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	cycled, others := paths[:200], paths[200:]
	modes := []struct {
		name string
		o    sqlite.Options
	}{
		{"shared", sqlite.Options{MaxConns: 4, CacheKiB: 1024, MustExist: true}},
		{"exclusive", sqlite.Options{MaxConns: 1, CacheKiB: 1024, MustExist: true, Exclusive: true, KeepWAL: true, LockingExclusive: true}},
		{"owned", sqlite.Options{CacheKiB: 1024, MustExist: true, Owned: true, KeepWAL: true}},
	}
	for _, held := range []int{0, len(others)} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("held=%d/%s", held, m.name), func(b *testing.B) {
				for _, p := range others[:held] {
					db, err := sqlite.Open(p, m.o)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := sqlite.UserVersion(ctx, db); err != nil {
						b.Fatal(err)
					}
					defer db.Close()
				}
				b.ResetTimer()
				for i := range b.N {
					db, err := sqlite.Open(cycled[i%len(cycled)], m.o)
					if err != nil {
						b.Fatal(err)
					}
					var n int
					if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&n); err != nil || n != 42 {
						b.Fatalf("read %d, %v", n, err)
					}
					if err := db.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestNewFileIsPrivate: a file Open creates, and its -wal and -shm, are
// readable by their owner only. SQLite made them 0644 less the umask, so a
// shared.db or catalog.db in an existing world-readable directory was
// readable by every local user.
func TestNewFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db, err := sqlite.Open(path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := sqlite.SetWAL(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('secret')"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group or others", filepath.Base(p), m)
		}
	}
}

// TestCommitNamesAnEndedContext: a transaction whose context ends is
// rolled back by database/sql, and its Commit says only sql.ErrTxDone;
// sqlite.Commit names the context's error, so that a client that went
// away is not taken for a fault. The row is not written.
func TestCommitNamesAnEndedContext(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	cancel()
	// database/sql rolls back from its own goroutine: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := tx.ExecContext(context.Background(), "SELECT 1")
		if errors.Is(err, sql.ErrTxDone) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the transaction was not rolled back after its context ended: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	err = sqlite.Commit(ctx, tx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, sql.ErrTxDone) {
		t.Fatalf("Commit after the context ended: %v, want context.Canceled and sql.ErrTxDone", err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after the rolled-back transaction: %d, %v", n, err)
	}

	// A commit that succeeds, or fails for another reason, is left alone.
	tx, err = db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.Commit(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.Commit(context.Background(), tx); !errors.Is(err, sql.ErrTxDone) || errors.Is(err, context.Canceled) {
		t.Fatalf("second Commit: %v, want sql.ErrTxDone alone", err)
	}
}

// TestFullIsNotAQuota: SQLITE_FULL outside a tenant's quota is a full
// disk, answered storage_full (507) and logged, not the tenant's
// quota_exceeded, which told tenants to ask for a larger quota while the
// server's disk had filled up. (The quota path, which gets the same error
// from max_page_count, names it itself: tenantdb's underQuota.)
func TestFullIsNotAQuota(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"), sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (x BLOB)"); err != nil {
		t.Fatal(err)
	}
	// max_page_count stands in for the disk: SQLite reports both the same.
	if _, err := db.Exec("PRAGMA max_page_count=3"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("INSERT INTO t VALUES (randomblob(100000))")
	if !sqlite.IsFull(err) {
		t.Fatalf("insert past max_page_count: %v, want SQLITE_FULL", err)
	}
	ferr := sqlite.FormatError(err)
	if code := silo.ErrorCode(ferr); code != silo.EFULL {
		t.Fatalf("FormatError(SQLITE_FULL) has code %q, want %q", code, silo.EFULL)
	}
	if !sqlite.IsFull(ferr) || !strings.Contains(ferr.Error(), "full") {
		t.Fatalf("the formatted error lost the driver's: %v", ferr)
	}
}
