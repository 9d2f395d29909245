package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	ctx := context.Background()
	path := newWALFile(t)
	o := sqlite.Options{MaxConns: 4, Exclusive: true, KeepWAL: true, MustExist: true}
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
			t.Fatalf("round %d: unix-excl left a -shm file (%v)", round, err)
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
	check, err := sqlite.Open(path, sqlite.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	var n int
	var ok string
	if err := check.QueryRowContext(ctx, "SELECT count(DISTINCT v) FROM t").Scan(&n); err != nil || n != writers*each {
		t.Fatalf("distinct rows = %d, %v; want %d", n, err, writers*each)
	}
	if err := check.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}

// TestExclusiveLocksOutOtherProcesses: while a unix-excl handle is open,
// another process (the sqlite3 shell here) cannot read or write the file,
// so it can never use a -shm index that disagrees with ours; once the handle
// closes, it can.
func TestExclusiveLocksOutOtherProcesses(t *testing.T) {
	shell, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Skip("no sqlite3 shell on PATH (apt-get install sqlite3)")
	}
	ctx := context.Background()
	path := newWALFile(t)
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 2, Exclusive: true, KeepWAL: true, MustExist: true})
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

// BenchmarkOpenCycle is a cache miss at the SQLite level: open a closed file,
// answer one query, close it, over 200 files in turn. "shared" is how a file
// replicated by Litestream is opened (default VFS, a pool); "owned" is how a
// tenant handle is opened without backups.
func BenchmarkOpenCycle(b *testing.B) {
	ctx := context.Background()
	paths := make([]string, 200)
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
	for _, v := range []struct {
		name string
		o    sqlite.Options
	}{
		{"shared", sqlite.Options{MaxConns: 4, CacheKiB: 1024, MustExist: true}},
		{"owned", sqlite.Options{MaxConns: 1, CacheKiB: 1024, MustExist: true, Exclusive: true, KeepWAL: true, LockingExclusive: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			for i := range b.N {
				db, err := sqlite.Open(paths[i%len(paths)], v.o)
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
