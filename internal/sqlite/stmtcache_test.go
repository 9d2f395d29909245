package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func openCacheTestDB(t *testing.T, o Options) (*sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := SetWAL(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL UNIQUE)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// cached returns the statements the connection of a one-connection db keeps.
func cached(t *testing.T, db *sql.DB) map[string]*cachedStmt {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var m map[string]*cachedStmt
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*cachingConn)
		if !ok {
			return fmt.Errorf("driver connection is %T, not a cachingConn", dc)
		}
		m = make(map[string]*cachedStmt, len(c.stmts))
		for q, cs := range c.stmts {
			m[q] = cs
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStmtCacheReusesStatements: a query run again runs the statement
// prepared the first time; results stay right across a unique violation
// (the statement is reset) and a schema change (SQLite re-prepares it).
func TestStmtCacheReusesStatements(t *testing.T) {
	ctx := context.Background()
	db, _ := openCacheTestDB(t, Options{Owned: true, MustExist: true})
	const ins = "INSERT INTO t (v) VALUES (?)"
	const sel = "SELECT count(*), coalesce(sum(v), 0) FROM t WHERE v >= ?"
	for i := range 10 {
		if _, err := db.ExecContext(ctx, ins, i); err != nil {
			t.Fatal(err)
		}
	}
	first := cached(t, db)
	if first[ins] == nil {
		t.Fatalf("insert not cached: %v", first)
	}
	if _, err := db.ExecContext(ctx, ins, 3); !IsUnique(err) {
		t.Fatalf("duplicate insert: %v; want a unique violation", err)
	}
	var n, sum int
	for i := range 3 {
		if err := db.QueryRowContext(ctx, sel, 5).Scan(&n, &sum); err != nil || n != 5 || sum != 5+6+7+8+9 {
			t.Fatalf("run %d: %d rows summing %d, %v; want 5, 35", i, n, sum, err)
		}
	}
	if _, err := db.ExecContext(ctx, ins, 10); err != nil {
		t.Fatalf("insert after a violation: %v", err)
	}
	again := cached(t, db)
	if again[ins] != first[ins] || again[sel] == nil {
		t.Fatal("statements were prepared anew instead of reused")
	}
	if _, err := db.ExecContext(ctx, "ALTER TABLE t ADD COLUMN w INTEGER NOT NULL DEFAULT 1"); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, sel, 0).Scan(&n, &sum); err != nil || n != 11 || sum != 55 {
		t.Fatalf("after a schema change: %d rows summing %d, %v; want 11, 55", n, sum, err)
	}
	// Scripts are not cached.
	if _, err := db.ExecContext(ctx, "UPDATE t SET w = 2 WHERE v = 1; UPDATE t SET w = 3 WHERE v = 2"); err != nil {
		t.Fatal(err)
	}
	for q := range cached(t, db) {
		if strings.Contains(q, ";") {
			t.Fatalf("a script was cached: %q", q)
		}
	}
}

// TestStmtCacheNestedUse: inside a transaction the same query runs again
// while the rows of its first run are still open; each gets its own
// statement and both read everything.
func TestStmtCacheNestedUse(t *testing.T) {
	ctx := context.Background()
	db, _ := openCacheTestDB(t, Options{Owned: true, MustExist: true})
	for i := range 5 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	const q = "SELECT v FROM t WHERE v >= ? ORDER BY v"
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var v int
		if err := outer.Scan(&v); err != nil {
			t.Fatal(err)
		}
		inner, err := tx.QueryContext(ctx, q, v)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for inner.Next() {
			k++
		}
		if err := inner.Close(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%d", v, k))
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if s := strings.Join(got, " "); s != "0:5 1:4 2:3 3:2 4:1" {
		t.Fatalf("nested reads = %s; want 0:5 1:4 2:3 3:2 4:1", s)
	}
}

// TestStmtCacheIsBounded: many distinct queries leave at most
// stmtCacheSize statements prepared, and each still answers right.
func TestStmtCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	db, _ := openCacheTestDB(t, Options{Owned: true, MustExist: true})
	for i := range 3 * stmtCacheSize {
		var v int
		if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT %d + ?", i), 1).Scan(&v); err != nil || v != i+1 {
			t.Fatalf("query %d: %d, %v", i, v, err)
		}
	}
	if n := len(cached(t, db)); n > stmtCacheSize {
		t.Fatalf("%d statements cached; want at most %d", n, stmtCacheSize)
	}
}

// TestStmtCacheClosesTheFile: closing the handle finalizes the cached
// statements, so SQLite really closes the file (sqlite3_close_v2 keeps a
// connection with live statements open as a zombie) and the next owner
// gets it at once.
func TestStmtCacheClosesTheFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	ctx := context.Background()
	db, path := openCacheTestDB(t, Options{Owned: true, MustExist: true})
	for i := range 3 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if len(cached(t, db)) == 0 {
		t.Fatal("nothing cached")
	}
	if opens(t, path) == 0 {
		t.Fatal("the open handle has no descriptor of its file")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := opens(t, path); n != 0 {
		t.Fatalf("%d descriptors of the file left open after Close", n)
	}
	next, err := Open(path, Options{Owned: true, MustExist: true, BusyTimeout: 1})
	if err != nil {
		t.Fatalf("next owner: %v", err)
	}
	next.Close()
}

// opens counts this process's descriptors of path and its -wal.
func opens(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && (target == path || target == path+"-wal") {
			n++
		}
	}
	return n
}

// TestStmtCacheColumnTypes: rows of a cached statement still describe their
// columns.
func TestStmtCacheColumnTypes(t *testing.T) {
	ctx := context.Background()
	db, _ := openCacheTestDB(t, Options{Owned: true, MustExist: true})
	for range 2 { // the second run uses the cached statement
		rows, err := db.QueryContext(ctx, "SELECT v FROM t")
		if err != nil {
			t.Fatal(err)
		}
		cts, err := rows.ColumnTypes()
		rows.Close()
		if err != nil || len(cts) != 1 || cts[0].DatabaseTypeName() != "INTEGER" {
			t.Fatalf("column types %v, %v; want one INTEGER", cts, err)
		}
	}
	if cached(t, db)["SELECT v FROM t"] == nil {
		t.Fatal("not cached")
	}
}

// BenchmarkStmtCache: one indexed read through database/sql on an owned
// handle, with the statement cached (sqlc's case) and parsed at every call
// (a trailing ";" keeps a query out of the cache).
func BenchmarkStmtCache(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "t.db")
	db, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := SetWAL(ctx, db); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL, created_at INTEGER NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (tenant_id, name, created_at) VALUES ('x', ?, ?)", fmt.Sprint("n", i), i); err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
	db, err = Open(path, Options{Owned: true, MustExist: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const q = "SELECT id, tenant_id, name, created_at FROM t WHERE tenant_id = ? AND id = ?"
	for _, v := range []struct{ name, query string }{{"cached", q}, {"parsed", q + ";"}} {
		b.Run(v.name, func(b *testing.B) {
			var id, at int64
			var tenant, name string
			for i := range b.N {
				if err := db.QueryRowContext(ctx, v.query, "x", i%100+1).Scan(&id, &tenant, &name, &at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
