package replication

import (
	"context"
	"database/sql"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/silohq/silo/internal/silo"

	_ "modernc.org/sqlite"
)

// snapCounter is a slog handler that counts Litestream's full-database syncs
// ("sync" records with snap=true) per database file name. Litestream logs
// every sync at debug level with the reason it had to snapshot.
type snapCounter struct {
	mu      *sync.Mutex
	snaps   map[string]int
	reasons map[string][]string
	attrs   []slog.Attr
}

func newSnapCounter() *snapCounter {
	return &snapCounter{mu: new(sync.Mutex), snaps: map[string]int{}, reasons: map[string][]string{}}
}

func (h *snapCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *snapCounter) WithGroup(string) slog.Handler            { return h }
func (h *snapCounter) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *snapCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		// Surface Litestream's warnings and errors in test output.
		h.mu.Lock()
		h.reasons["!"] = append(h.reasons["!"], r.Message)
		h.mu.Unlock()
	}
	if r.Message != "sync" {
		return nil
	}
	var db, snap, reason string
	visit := func(a slog.Attr) bool {
		switch a.Key {
		case "db":
			db = a.Value.String()
		case "snap":
			snap = a.Value.String()
		case "reason":
			reason = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		visit(a)
	}
	r.Attrs(visit)
	if snap == "true" {
		h.mu.Lock()
		h.snaps[db]++
		h.reasons[db] = append(h.reasons[db], reason)
		h.mu.Unlock()
	}
	return nil
}

func (h *snapCounter) count(db string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snaps[db]
}

type testEnv struct {
	dataDir string
	r       *Replicator
	snaps   *snapCounter
}

// mustOpenReplicator starts a Replicator on the default litestream.yml with a
// fresh data dir, so the tests also cover DefaultConfigYAML.
func mustOpenReplicator(tb testing.TB) *testEnv {
	tb.Helper()
	dataDir := filepath.Join(tb.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "tenants"), 0o755); err != nil {
		tb.Fatal(err)
	}
	cfg, err := ParseConfig(strings.NewReader(DefaultConfigYAML), dataDir)
	if err != nil {
		tb.Fatal(err)
	}
	snaps := newSnapCounter()
	r, err := New(cfg, slog.New(snaps))
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Open(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			tb.Errorf("close replicator: %v", err)
		}
	})
	return &testEnv{dataDir: dataDir, r: r, snaps: snaps}
}

func (e *testEnv) tenantPath(name string) string { return filepath.Join(e.dataDir, "tenants", name) }

// mustBackedUp makes tenant file name with one row per value, each synced
// to the replica as a transaction of its own, then closes and unregisters
// it; it returns the transactions' ids.
func mustBackedUp(tb testing.TB, env *testEnv, name string, values ...string) []uint64 {
	tb.Helper()
	ctx := context.Background()
	path := env.tenantPath(name)
	mustCreate(tb, path)
	if err := env.r.Register(ctx, path); err != nil {
		tb.Fatal(err)
	}
	app := mustOpenApp(tb, path)
	var txids []uint64
	for _, v := range values {
		mustExec(tb, app, `INSERT INTO items (v) VALUES (?)`, v)
		txid, err := env.r.Sync(ctx, path)
		if err != nil {
			tb.Fatal(err)
		}
		txids = append(txids, txid)
	}
	app.Close()
	if err := env.r.Unregister(ctx, path); err != nil {
		tb.Fatal(err)
	}
	return txids
}

// mustCreate creates an empty file, as a new tenant's file starts.
func mustCreate(tb testing.TB, path string) {
	tb.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// mustOpenApp opens path the way the app does.
func mustOpenApp(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?"+AppDSNParams)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		tb.Fatal(err)
	}
	return db
}

func mustExec(tb testing.TB, db *sql.DB, q string, args ...any) {
	tb.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// rows returns every row of items, in id order, from the file at path.
func rows(tb testing.TB, path string) []string {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		tb.Fatalf("integrity_check of %s: %q, %v", path, ok, err)
	}
	rs, err := db.Query(`SELECT id || ':' || v FROM items ORDER BY id`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func dirSize(tb testing.TB, dir string) (size int64, files int) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size += fi.Size()
		files++
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return size, files
}

// TestRoundTrip: register, write through database/sql, close, unregister,
// restore, and get the same rows back from a file that passes integrity_check.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	env := mustOpenReplicator(t)
	path := env.tenantPath("acme.db")
	mustCreate(t, path)

	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	for i := range 100 {
		mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, strings.Repeat("x", i))
	}
	want := rows(t, path)
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if err := env.r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	if env.r.Registered(path) {
		t.Fatal("still registered")
	}
	// The WAL outlives the close (PERSIST_WAL), which is what lets the next
	// registration resume instead of re-uploading.
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("WAL not kept: %v", err)
	}

	st, err := env.r.Status(ctx, "acme.db")
	if err != nil {
		t.Fatal(err)
	}
	if st.TXID == 0 || st.UpdatedAt.IsZero() || st.Registered {
		t.Fatalf("status = %+v", st)
	}

	out := filepath.Join(t.TempDir(), "restored.db")
	start := time.Now()
	if err := env.r.Restore(ctx, "acme.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("restore took %v", time.Since(start))
	if got := rows(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %d rows, want %d", len(got), len(want))
	}

	// The replica sits where the stock CLI's directory mode puts it.
	if _, err := os.Stat(filepath.Join(env.dataDir, "replica", "tenants", "acme.db", "ltx", "0")); err != nil {
		t.Fatalf("replica layout: %v", err)
	}

	// Deleting a tenant: replica and local state.
	if err := env.r.DeleteReplica(ctx, "acme.db"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLocalState(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(env.dataDir, "tenants", ".acme.db-litestream")); !os.IsNotExist(err) {
		t.Fatalf("local state left: %v", err)
	}
	// Nothing left to restore: "not found", not the replica's failure; a
	// point in time of it is a point the backup does not hold.
	if err := env.r.Restore(ctx, "acme.db", filepath.Join(t.TempDir(), "gone.db"), time.Time{}, 0); silo.ErrorCode(err) != silo.ENOTFOUND {
		t.Fatalf("restore after DeleteReplica: %v (want not_found)", err)
	}
	if err := env.r.Restore(ctx, "acme.db", filepath.Join(t.TempDir(), "gone.db"), time.Now(), 0); silo.ErrorCode(err) != silo.EINVALID {
		t.Fatalf("restore of a time after DeleteReplica: %v (want invalid)", err)
	}
}

// TestCatalog: the path: entry replicates to its own url, not under tenants.
func TestCatalog(t *testing.T) {
	ctx := context.Background()
	env := mustOpenReplicator(t)
	path := filepath.Join(env.dataDir, "catalog.db")
	mustCreate(t, path)
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	mustExec(t, app, `INSERT INTO items (v) VALUES ('tenant-a')`)
	app.Close()
	if err := env.r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(env.dataDir, "replica", "catalog.db", "ltx")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "catalog.db")
	if err := env.r.Restore(ctx, "data/catalog.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, out); !reflect.DeepEqual(got, []string{"1:tenant-a"}) {
		t.Fatalf("got %v", got)
	}
	// Files outside the config are refused.
	other := filepath.Join(env.dataDir, "other.db")
	mustCreate(t, other)
	if err := env.r.Register(ctx, other); err == nil {
		t.Fatal("registered a file not in litestream.yml")
	}
	// Missing files are refused rather than replicated as empty.
	if err := env.r.Register(ctx, env.tenantPath("missing.db")); err == nil {
		t.Fatal("registered a missing file")
	}
}

// churnRun writes the same transactions to a tenant either in one session
// (churn=false) or closing and unregistering after every transaction, and
// returns the replica's size.
func churnRun(t *testing.T, env *testEnv, name string, churn bool) (size int64, files int) {
	t.Helper()
	ctx := context.Background()
	path := env.tenantPath(name)
	mustCreate(t, path)

	// Start from a database big enough (~600 KB of incompressible data)
	// that a full snapshot stands out against a transaction's few pages.
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	mustExec(t, app, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
		INSERT INTO items (v) SELECT hex(randomblob(100)) FROM n`)

	const cycles = 40
	var regTime, unregTime time.Duration
	for i := range cycles {
		if churn {
			app.Close()
			start := time.Now()
			if err := env.r.Unregister(ctx, path); err != nil {
				t.Fatal(err)
			}
			unregTime += time.Since(start)
			start = time.Now()
			if err := env.r.Register(ctx, path); err != nil {
				t.Fatal(err)
			}
			regTime += time.Since(start)
			app = mustOpenApp(t, path)
		}
		mustExec(t, app, `INSERT INTO items (v) VALUES (hex(randomblob(100)))`)
		mustExec(t, app, `UPDATE items SET v = hex(randomblob(100)) WHERE id = ?`, 1+i*70)
		if !churn {
			// One upload per transaction, as the churn run gets at each close.
			if _, err := env.r.Sync(ctx, path); err != nil {
				t.Fatal(err)
			}
		}
	}
	if churn {
		t.Logf("mean Register %v, Unregister %v", regTime/cycles, unregTime/cycles)
	}
	want := rows(t, path)
	app.Close()
	if err := env.r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), name)
	if err := env.r.Restore(ctx, name, out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: restored rows differ (%d vs %d)", name, len(got), len(want))
	}
	return dirSize(t, filepath.Join(env.dataDir, "replica", "tenants", name))
}

// TestChurn: closing and reopening a tenant after every transaction must not
// re-upload the database: the replica stays the size of a run without churn,
// and Litestream snapshots only once, at the first registration.
func TestChurn(t *testing.T) {
	env := mustOpenReplicator(t)
	steadySize, steadyFiles := churnRun(t, env, "steady.db", false)
	churnSize, churnFiles := churnRun(t, env, "churn.db", true)
	dbSize, _ := dirSize(t, env.tenantPath("churn.db"))
	t.Logf("db %d B; replica without churn %d B in %d files, with 40 reopen cycles %d B in %d files; snapshots %d vs %d",
		dbSize, steadySize, steadyFiles, churnSize, churnFiles, env.snaps.count("steady.db"), env.snaps.count("churn.db"))
	if n := env.snaps.count("churn.db"); n > 1 {
		t.Errorf("churn run took %d full snapshots (reasons %q), want 1", n, env.snaps.reasons["churn.db"])
	}
	if churnSize > steadySize*5/4+32<<10 {
		t.Errorf("replica with churn %d B, without %d B: full re-uploads?", churnSize, steadySize)
	}
}

// TestPersistWAL covers the case the connection hook exists for: the app's
// connection being the last one to close a registered file (here by
// unregistering first, which the lifecycle forbids but a shutdown-order bug or
// a crash sweep could do). SQLite then checkpoints on close and, without
// PERSIST_WAL on that connection, deletes the WAL; Litestream re-uploads the
// whole database at the next registration. With the hook it resumes.
func TestPersistWAL(t *testing.T) {
	for _, hook := range []bool{true, false} {
		persistWALDisabled.Store(!hook)
		env := mustOpenReplicator(t)
		ctx := context.Background()
		path := env.tenantPath("last.db")
		mustCreate(t, path)
		for i := range 5 {
			if err := env.r.Register(ctx, path); err != nil {
				t.Fatal(err)
			}
			app := mustOpenApp(t, path)
			mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, i)
			if err := env.r.Unregister(ctx, path); err != nil {
				t.Fatal(err)
			}
			app.Close()
		}
		_, walErr := os.Stat(path + "-wal")
		t.Logf("hook %v: %d full snapshots in 5 registrations (reasons %q), WAL kept: %v",
			hook, env.snaps.count("last.db"), env.snaps.reasons["last.db"], walErr == nil)
		if n := env.snaps.count("last.db"); hook && n != 1 {
			t.Errorf("with the hook: %d snapshots, want 1", n)
		}
	}
	persistWALDisabled.Store(false)
}

// TestPointInTime: rows A, B and C committed ~1.1 s apart; a restore at a time
// between two of them, or at a transaction id, returns exactly the earlier rows.
func TestPointInTime(t *testing.T) {
	ctx := context.Background()
	env := mustOpenReplicator(t)
	path := env.tenantPath("pitr.db")
	mustCreate(t, path)
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	defer app.Close()

	var between []time.Time
	var txids []uint64
	for i, v := range []string{"A", "B", "C"} {
		if i > 0 {
			time.Sleep(550 * time.Millisecond)
			between = append(between, time.Now())
			time.Sleep(550 * time.Millisecond)
		}
		mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, v)
		txid, err := env.r.Sync(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		txids = append(txids, txid)
	}

	for i, tc := range []struct {
		at   time.Time
		txid uint64
		want []string
	}{
		{at: between[0], want: []string{"1:A"}},
		{at: between[1], want: []string{"1:A", "2:B"}},
		{txid: txids[1], want: []string{"1:A", "2:B"}},
		{want: []string{"1:A", "2:B", "3:C"}},
	} {
		out := filepath.Join(t.TempDir(), "pitr.db")
		if err := env.r.Restore(ctx, "pitr.db", out, tc.at, tc.txid); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got := rows(t, out); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("case %d (at %v, txid %d): got %v, want %v", i, tc.at, tc.txid, got, tc.want)
		}
	}
}

// TestUnregisterKeepsOnFailure: while the replica cannot be written,
// Unregister fails and the file stays registered; once the replica is back,
// Unregister succeeds and nothing was lost.
func TestUnregisterKeepsOnFailure(t *testing.T) {
	ctx := context.Background()
	env := mustOpenReplicator(t)
	path := env.tenantPath("outage.db")
	mustCreate(t, path)
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	mustExec(t, app, `INSERT INTO items (v) VALUES ('before')`)
	if _, err := env.r.Sync(ctx, path); err != nil {
		t.Fatal(err)
	}

	// The outage: the replica directory becomes a plain file.
	replica := filepath.Join(env.dataDir, "replica", "tenants", "outage.db")
	moved := replica + ".away"
	if err := os.Rename(replica, moved); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, replica)
	mustExec(t, app, `INSERT INTO items (v) VALUES ('during')`)
	want := rows(t, path)
	app.Close()

	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := env.r.Unregister(uctx, path); err == nil {
		t.Fatal("Unregister succeeded during the outage")
	}
	if !env.r.Registered(path) {
		t.Fatal("unregistered despite the failed sync")
	}

	if err := os.Remove(replica); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, replica); err != nil {
		t.Fatal(err)
	}
	if err := env.r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "outage.db")
	if err := env.r.Restore(ctx, "outage.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestMaintain: with short levels, Maintain compacts L0 into L1 and L2,
// takes a snapshot, and drops L0 files past l0-retention, and the replica
// still restores the latest state.
func TestMaintain(t *testing.T) {
	ctx := context.Background()
	r, dataDir := openTenantReplicator(t, `
levels: [{interval: 1s}, {interval: 2s}]
snapshot: {interval: 2s, retention: 1h}
l0-retention: 1s
`)
	path := filepath.Join(dataDir, "tenants", "m.db")
	mustCreate(t, path)
	if err := r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	for i := range 10 {
		mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, i)
		if _, err := r.Sync(ctx, path); err != nil {
			t.Fatal(err)
		}
	}
	level := func(l string) int {
		ents, _ := os.ReadDir(filepath.Join(dataDir, "replica", "tenants", "m.db", "ltx", l))
		return len(ents)
	}
	l0 := level("0")
	time.Sleep(2100 * time.Millisecond) // past an L1, L2 and snapshot boundary and l0-retention
	if err := r.MaintainAll(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("L0 %d -> %d files, L1 %d, L2 %d, snapshots %d", l0, level("0"), level("1"), level("2"), level("9"))
	if level("1") == 0 || level("2") == 0 || level("9") == 0 {
		t.Fatal("compaction or snapshot missing")
	}
	if level("0") >= l0 {
		t.Fatalf("L0 not trimmed: %d files, was %d", level("0"), l0)
	}

	want := rows(t, path)
	app.Close()
	if err := r.Maintain(ctx, path); err != nil { // at eviction
		t.Fatal(err)
	}
	if err := r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := r.Maintain(ctx, path); err != nil { // not registered: no-op
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "m.db")
	if err := r.Restore(ctx, "m.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestRestore10MB measures the restore of a 10 MB tenant from a file replica
// (the target is 1 s).
func TestRestore10MB(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measurement")
	}
	ctx := context.Background()
	env := mustOpenReplicator(t)
	path := env.tenantPath("big.db")
	mustCreate(t, path)
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	// 10 MB in 10 transactions, half-compressible like real rows.
	for range 10 {
		mustExec(t, app, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
			INSERT INTO items (v) SELECT hex(randomblob(250)) FROM n`)
	}
	want := rows(t, path)
	app.Close()
	if err := env.r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	replica, files := dirSize(t, filepath.Join(env.dataDir, "replica", "tenants", "big.db"))

	out := filepath.Join(t.TempDir(), "big.db")
	start := time.Now()
	if err := env.r.Restore(ctx, "big.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("restored %.1f MB (replica %.1f MB in %d files) in %v", float64(fi.Size())/1e6, float64(replica)/1e6, files, took)
	if got := rows(t, out); !reflect.DeepEqual(got, want) {
		t.Fatal("restored rows differ")
	}
}

// TestMaintainSkipsWhatIsNotDue: a second Maintain within the same
// compaction interval (a tenant evicted again soon) skips every step
// without listing the replica; after the next boundary it compacts the
// writes made meanwhile, so nothing is left behind.
func TestMaintainSkipsWhatIsNotDue(t *testing.T) {
	ctx := context.Background()
	const every = 2 * time.Second
	r, dataDir := openTenantReplicator(t, `
levels: [{interval: 2s}]
snapshot: {interval: 1h, retention: 24h}
`)
	path := filepath.Join(dataDir, "tenants", "s.db")
	mustCreate(t, path)
	if err := r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	defer app.Close()
	write := func(v int) {
		mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, v)
		if _, err := r.Sync(ctx, path); err != nil {
			t.Fatal(err)
		}
	}
	l1 := func() int {
		ents, _ := os.ReadDir(filepath.Join(dataDir, "replica", "tenants", "s.db", "ltx", "1"))
		return len(ents)
	}
	skips := func() int {
		e := r.lock(path)
		defer e.mu.Unlock()
		return e.skips
	}
	// Start just after a boundary, so the next steps share one interval.
	time.Sleep(time.Until(time.Now().Truncate(every).Add(every + 50*time.Millisecond)))
	interval := time.Now().Truncate(every)
	write(1)
	if err := r.Maintain(ctx, path); err != nil {
		t.Fatal(err)
	}
	first, s0 := l1(), skips()
	if first == 0 {
		t.Fatal("first Maintain compacted nothing into L1")
	}
	write(2)
	if err := r.Maintain(ctx, path); err != nil {
		t.Fatal(err)
	}
	if !time.Now().Truncate(every).Equal(interval) {
		t.Skip("the interval ended during the test; timing too tight here")
	}
	if skips()-s0 < 3 { // L1 and both retentions (the snapshot step too once taken)
		t.Fatalf("second Maintain in the same interval skipped %d steps; want L1 and retention skipped", skips()-s0)
	}
	if l1() != first {
		t.Fatalf("L1 files %d -> %d within one interval", first, l1())
	}
	// Next interval: the write made meanwhile is compacted.
	time.Sleep(time.Until(time.Now().Truncate(every).Add(every + 50*time.Millisecond)))
	if err := r.Maintain(ctx, path); err != nil {
		t.Fatal(err)
	}
	if l1() <= first {
		t.Fatalf("after the boundary L1 has %d files, was %d: the skip went stale", l1(), first)
	}
	want := rows(t, path)
	out := filepath.Join(t.TempDir(), "s.db")
	if err := r.Restore(ctx, "s.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, out); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %v, want %v", got, want)
	}
}

// openTenantReplicator opens a Replicator (closed at the end of the test)
// over a new data dir whose tenants directory replicates to a file replica
// in it, with the top-level settings in head (levels, snapshot, ...).
func openTenantReplicator(t *testing.T, head string) (*Replicator, string) {
	t.Helper()
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "tenants"), 0o755); err != nil {
		t.Fatal(err)
	}
	yml := head + `
dbs:
  - dir: data/tenants
    pattern: "*.db"
    replica: {url: "file:data/replica/tenants"}
`
	cfg, err := ParseConfig(strings.NewReader(yml), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, slog.New(newSnapCounter()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(ctx) })
	return r, dataDir
}

// TestForgetDuringOutage: a file whose final sync fails stays registered;
// Forget, for a file about to be removed, unregisters it anyway, within
// its context's bound, and a new file at the same path registers afresh.
func TestForgetDuringOutage(t *testing.T) {
	ctx := context.Background()
	env := mustOpenReplicator(t)
	path := env.tenantPath("gone.db")
	mustCreate(t, path)
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	mustExec(t, app, `INSERT INTO items (v) VALUES ('x')`)
	replica := filepath.Join(env.dataDir, "replica", "tenants", "gone.db")
	if err := os.RemoveAll(replica); err != nil {
		t.Fatal(err)
	}
	// The first upload (within the sync interval) may not have made the
	// replica's parent yet.
	if err := os.MkdirAll(filepath.Dir(replica), 0o755); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, replica) // the replica's directory is a file: uploads fail
	// A write the replica cannot have yet, whatever the background upload
	// did before the outage began.
	mustExec(t, app, `INSERT INTO items (v) VALUES ('y')`)
	app.Close()
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := env.r.Unregister(fctx, path); err == nil || !env.r.Registered(path) {
		t.Fatalf("Unregister during the outage: %v, registered %v", err, env.r.Registered(path))
	}
	start := time.Now()
	fctx2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	env.r.Forget(fctx2, path) // may report the lost upload
	if env.r.Registered(path) {
		t.Fatal("still registered after Forget")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Forget took %s", d)
	}
	if err := env.r.Forget(ctx, path); err != nil {
		t.Fatalf("Forget of a path not registered: %v", err)
	}
	// The file goes; a new one at the same path (a move back) registers.
	os.Remove(replica)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	os.RemoveAll(filepath.Join(filepath.Dir(path), ".gone.db-litestream"))
	mustCreate(t, path)
	if err := env.r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := env.r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
}

// TestMaintainAllForgetsUnusedFiles: what the Replicator remembers of a
// file that is no longer registered (which maintenance steps are done until
// their next boundary) is dropped once every boundary has passed, so its
// memory and MaintainAll's walk follow the recently used tenants, not every
// tenant ever opened. A file registered again afterwards works as before.
func TestMaintainAllForgetsUnusedFiles(t *testing.T) {
	ctx := context.Background()
	r, dataDir := openTenantReplicator(t, `
levels: [{interval: 2s}]
snapshot: {interval: 1h, retention: 24h}
`)
	path := filepath.Join(dataDir, "tenants", "f.db")
	mustCreate(t, path)
	if err := r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	mustExec(t, app, `INSERT INTO items (v) VALUES (1)`)
	if _, err := r.Sync(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := r.Maintain(ctx, path); err != nil {
		t.Fatal(err)
	}
	app.Close()
	if err := r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
	known := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		_, ok := r.dbs[path]
		return ok
	}
	old := r.lock(path)
	old.mu.Unlock()
	if err := r.maintainAll(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !known() {
		t.Fatal("forgot a file whose maintenance marks still save work")
	}
	if err := r.maintainAll(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if known() {
		t.Fatal("still remembers a file unused past every boundary")
	}
	old.mu.Lock()
	pruned := old.pruned
	old.mu.Unlock()
	if !pruned {
		t.Fatal("the forgotten entry is not marked pruned: a waiter could use it beside a new one")
	}
	// Registered again: a new entry, replicating as before.
	if err := r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app = mustOpenApp(t, path)
	defer app.Close()
	mustExec(t, app, `INSERT INTO items (v) VALUES (2)`)
	txid, err := r.Sync(ctx, path)
	if err != nil || txid == 0 || !r.Registered(path) {
		t.Fatalf("after re-registering: txid %d, %v, registered %v", txid, err, r.Registered(path))
	}
}

// TestPointInTimeOfColdTenant: a tenant evicted twice within one L1 window
// leaves its second batch in L0 only. It used to stay there until the
// tenant's next open, then be merged with everything written by then into
// one L1 file; once l0-retention dropped the L0 files, a point in time
// between the batches restored the state before both. MaintainAll now
// compacts such files at the next boundary, as if they had stayed open.
func TestPointInTimeOfColdTenant(t *testing.T) {
	ctx := context.Background()
	const every = 2 * time.Second
	r, dataDir := openTenantReplicator(t, `
levels: [{interval: 2s}]
l0-retention: 1s
snapshot: {interval: 1h, retention: 24h}
`)
	path := filepath.Join(dataDir, "tenants", "cold.db")
	mustCreate(t, path)
	nextWindow := func() { time.Sleep(time.Until(time.Now().Truncate(every).Add(every + 100*time.Millisecond))) }

	nextWindow()
	window := time.Now().Truncate(every)
	openWriteClose(t, r, path, "A") // compacts L1 in this window
	openWriteClose(t, r, path, "B") // same window: L1 is not due again, B stays in L0
	if !time.Now().Truncate(every).Equal(window) {
		t.Skip("the window ended during the test; timing too tight here")
	}
	time.Sleep(200 * time.Millisecond)
	between := time.Now()
	nextWindow()
	if err := r.MaintainAll(ctx); err != nil { // B's window is over: B goes to L1
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	nextWindow()
	openWriteClose(t, r, path, "C")
	// Past l0-retention, drop the L0 files, as the next compaction would.
	time.Sleep(1200 * time.Millisecond)
	dbc, abs, err := r.cfg.Lookup(path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := r.clients.forURL(ctx, dbc.replicaURLFor(abs))
	if err != nil {
		t.Fatal(err)
	}
	if err := litestream.NewCompactor(client, nil).EnforceL0Retention(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "at.db")
	if err := r.Restore(ctx, "cold.db", out, between, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := rows(t, out), []string{"1:A", "2:B"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("restored as of a point between B and C: %v, want %v", got, want)
	}
}

// TestColdCompactionKeepsLocalStateInStep: cold compaction's L0 retention
// deletes Litestream's local copy of each L0 file with the remote one. It
// used to delete the remote file only, and nothing ever removed the local
// copy again: a churning tenant's local state grew without bound.
func TestColdCompactionKeepsLocalStateInStep(t *testing.T) {
	ctx := context.Background()
	const every = 2 * time.Second
	r, dataDir := openTenantReplicator(t, `
levels: [{interval: 2s}]
l0-retention: 1s
snapshot: {interval: 1h, retention: 24h}
`)
	path := filepath.Join(dataDir, "tenants", "churn.db")
	mustCreate(t, path)
	for range 3 {
		time.Sleep(time.Until(time.Now().Truncate(every).Add(every + 100*time.Millisecond)))
		openWriteClose(t, r, path, "x")
		openWriteClose(t, r, path, "y")
		time.Sleep(time.Until(time.Now().Truncate(every).Add(every + 100*time.Millisecond)))
		if err := r.MaintainAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	names := func(dir string) map[string]bool {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, e := range ents {
			m[e.Name()] = true
		}
		return m
	}
	local := names(filepath.Join(localStateDir(path), "ltx", "0"))
	remote := names(filepath.Join(dataDir, "replica", "tenants", "churn.db", "ltx", "0"))
	if len(remote) >= 2*3 {
		t.Fatalf("L0 retention removed nothing remotely: %d files", len(remote))
	}
	for name := range local {
		if !remote[name] {
			t.Errorf("local L0 file %s has no remote copy: left behind by retention", name)
		}
	}
}

// openWriteClose is one stay of a tenant in the handle cache: registered,
// opened, one row written and synced, maintained and unregistered as an
// eviction does.
func openWriteClose(t *testing.T, r *Replicator, path, v string) {
	t.Helper()
	ctx := context.Background()
	if err := r.Register(ctx, path); err != nil {
		t.Fatal(err)
	}
	app := mustOpenApp(t, path)
	mustExec(t, app, `INSERT INTO items (v) VALUES (?)`, v)
	if _, err := r.Sync(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := r.Maintain(ctx, path); err != nil {
		t.Fatal(err)
	}
	app.Close()
	if err := r.Unregister(ctx, path); err != nil {
		t.Fatal(err)
	}
}

// TestRestoresToOnePath: restores to one path in several processes at once
// (`silo restore --to` run twice) each use their own temporary file: one
// makes the file, with its own point in time, and the others fail with a
// conflict and leave it alone. Before, they shared Litestream's OUT.tmp,
// failed in confusing ways, and once one reported success with the other's
// state. A -wal left beside the path (an earlier copy's) is refused, not
// applied to the restored copy.
func TestRestoresToOnePath(t *testing.T) {
	ctx := context.Background()
	env := mustOpenReplicator(t)
	txids := mustBackedUp(t, env, "same.db", "0", "1", "2", "3")

	// One replicator per "process", as each CLI run opens its own.
	cfg, err := ParseConfig(strings.NewReader(DefaultConfigYAML), env.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "copy.db")
	errs := make([]error, len(txids))
	var wg sync.WaitGroup
	for i, txid := range txids {
		r, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = r.Restore(ctx, "same.db", out, time.Time{}, txid) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("restores %d and %d both succeeded", winner, i)
		case silo.ErrorCode(err) != silo.ECONFLICT:
			t.Errorf("restore %d: %v, want a conflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no restore succeeded: %v", errs)
	}
	if got := rows(t, out); len(got) != winner+1 {
		t.Fatalf("the copy holds %v, but the restore that succeeded asked for transaction %d (%d rows)", got, txids[winner], winner+1)
	}
	entries, _ := os.ReadDir(outDir)
	for _, e := range entries {
		if e.Name() != "copy.db" {
			t.Errorf("left beside the copy: %s", e.Name())
		}
	}

	// A -wal without its file, left by an earlier database at the path.
	out2 := filepath.Join(outDir, "again.db")
	if err := os.WriteFile(out2+"-wal", []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := env.r.Restore(ctx, "same.db", out2, time.Time{}, 0); silo.ErrorCode(err) != silo.ECONFLICT {
		t.Fatalf("restore beside a stale -wal: %v, want a conflict", err)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("the refused restore made %s: %v", out2, err)
	}
}

// TestRestoreWithoutHardLinks: on a file system without hard links the
// download is renamed into place, still refusing to replace a file.
func TestRestoreWithoutHardLinks(t *testing.T) {
	linkFile = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	defer func() { linkFile = os.Link }()
	ctx := context.Background()
	env := mustOpenReplicator(t)
	mustBackedUp(t, env, "nolink.db", "x")
	dir := t.TempDir()
	out := filepath.Join(dir, "copy.db")
	if err := env.r.Restore(ctx, "nolink.db", out, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, out); !reflect.DeepEqual(got, []string{"1:x"}) {
		t.Fatalf("restored %v", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("beside the copy: %v", entries)
	}
	if err := env.r.Restore(ctx, "nolink.db", out, time.Time{}, 0); silo.ErrorCode(err) != silo.ECONFLICT {
		t.Fatalf("a second restore to the same path: %v, want a conflict", err)
	}
}
