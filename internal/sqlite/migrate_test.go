package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/schema"
)

func TestMigrateIsAtomicAcrossSteps(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE a (x);\n-- +goose Down\nDROP TABLE a;\n")},
		"0002_b.sql": {Data: []byte("-- +goose Up\nCREATE TABLE b (x);\n-- +goose Down\nDROP TABLE b;\n")},
		"0003_c.sql": {Data: []byte("-- +goose Up\nCREATE TABLE c (x);\nINSERT INTO nowhere VALUES (1);\n-- +goose Down\nDROP TABLE c;\n")},
	}
	m, err := sqlite.NewMigrator(fsys)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, to, err := m.Migrate(ctx, db, 1); err != nil || to != 1 {
		t.Fatalf("to 1: %d %v", to, err)
	}
	// 1 → 3 fails in step 3: the file must stay at 1, without table b.
	from, to, err := m.Migrate(ctx, db, 0)
	if err == nil || from != 1 || to != 1 {
		t.Fatalf("failing upgrade: from %d to %d err %v", from, to, err)
	}
	var n int
	db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name IN ('b','c')").Scan(&n)
	if v, _ := sqlite.UserVersion(ctx, db); v != 1 || n != 0 {
		t.Fatalf("after failed upgrade: version %d, %d new tables", v, n)
	}
	if _, to, err := m.Migrate(ctx, db, 2); err != nil || to != 2 {
		t.Fatalf("to 2: %d %v", to, err)
	}
	if _, to, err := m.Migrate(ctx, db, 1); err != nil || to != 1 {
		t.Fatalf("down to 1: %d %v", to, err)
	}
	db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'b'").Scan(&n)
	if n != 0 {
		t.Fatal("down did not drop b")
	}
}

func TestMigrateRefusesFileAhead(t *testing.T) {
	ctx := context.Background()
	m, err := sqlite.NewMigrator(schema.Tenant())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := m.Migrate(ctx, db, 0); err != nil {
		t.Fatal(err)
	}
	sqlite.SetUserVersion(ctx, db, m.Latest()+5)
	if _, _, err := m.Migrate(ctx, db, 0); !errors.Is(err, sqlite.ErrAhead) {
		t.Fatalf("file ahead: %v", err)
	}
	if v, _ := sqlite.UserVersion(ctx, db); v != m.Latest()+5 {
		t.Fatalf("file ahead was touched: version %d", v)
	}
}

func TestSchemaHashMatchesFreshFile(t *testing.T) {
	ctx := context.Background()
	m, _ := sqlite.NewMigrator(schema.Tenant())
	dir := t.TempDir()
	for _, v := range m.Versions() {
		want, err := m.ExpectedHash(ctx, dir, v)
		if err != nil {
			t.Fatal(err)
		}
		db, _ := sqlite.Open(filepath.Join(dir, "x.db"), sqlite.Options{})
		// Up to the latest and back down must give the same schema.
		m.Migrate(ctx, db, m.Latest())
		m.Migrate(ctx, db, v)
		got, _ := sqlite.SchemaHash(ctx, db)
		if got != want {
			t.Errorf("version %d: round trip hash %s, fresh %s", v, got, want)
		}
		// Litestream's tables, in every replicated file, are not drift
		// (verify reported every backed-up tenant as drifted).
		for _, q := range []string{"CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)", "CREATE TABLE _litestream_lock (id INTEGER)"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := sqlite.SchemaHash(ctx, db); got != want {
			t.Errorf("version %d: Litestream's tables count as drift", v)
		}
		// Names that only look alike (LIKE's _ matches any character) do.
		for _, name := range []string{"drift", "xlitestream_seq", "sqlitex"} {
			db.Exec("CREATE TABLE " + name + " (x)")
			if h, _ := sqlite.SchemaHash(ctx, db); h == want {
				t.Errorf("version %d: drift %s not detected", v, name)
			}
			db.Exec("DROP TABLE " + name)
		}
		db.Exec("DROP TABLE _litestream_seq")
		db.Exec("DROP TABLE _litestream_lock")
		db.Close()
	}
}

func TestBadMigrationFiles(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number":  {"init.sql": {Data: []byte("-- +goose Up\nSELECT 1;")}},
		"no up":      {"0001_a.sql": {Data: []byte("SELECT 1;")}},
		"duplicate":  {"0001_a.sql": {Data: []byte("-- +goose Up\nSELECT 1;")}, "01_b.sql": {Data: []byte("-- +goose Up\nSELECT 1;")}},
		"no tx":      {"0001_a.sql": {Data: []byte("-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;")}},
		"empty fsys": {},
	} {
		if _, err := sqlite.NewMigrator(fsys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
