package tenantdb

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// TestWriteCrossingQuotaIsQuota: a write that needs several pages past the
// quota from below it is the quota's (507 quota_exceeded), not a full disk.
// The failed write rolls back, so the file's size after it does not tell;
// underQuota asks the disk instead (found in review, when SQLITE_FULL
// outside the quota became storage_full).
func TestWriteCrossingQuotaIsQuota(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "t.db"), sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t (x BLOB)"); err != nil {
		t.Fatal(err)
	}
	var pages int64
	if err := db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	limit := (pages + 3) * pageSize // three pages of room; the write needs ten
	err = underQuota(context.Background(), db, limit, dir, func(conn *sql.Conn) error {
		_, err := conn.ExecContext(context.Background(), "INSERT INTO t VALUES (randomblob(40000))")
		return err
	})
	if code := silo.ErrorCode(sqlite.FormatError(err)); code != silo.EQUOTA {
		t.Fatalf("a write crossing the quota: %v (code %q), want %q", err, code, silo.EQUOTA)
	}
}
