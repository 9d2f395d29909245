package replication

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
)

// Keeping Litestream's position across close and reopen.
//
// Litestream resumes a database incrementally only if the WAL it last read is
// still there: on registration it checks that the last frame it shipped is
// still in the -wal file with the same salts. When the last connection to a
// file closes, SQLite checkpoints and, unless SQLITE_FCNTL_PERSIST_WAL is set
// on that connection, deletes the -wal (and -shm). The next registration then
// finds a new WAL and uploads a full snapshot of the database.
//
// Litestream sets PERSIST_WAL on only one of its own pooled connections, and
// which connection closes last is up to database/sql. So every connection the
// "sqlite" driver opens on a file that is registered here gets PERSIST_WAL,
// through a connection hook: Litestream's private connections (opened with
// sql.Open("sqlite", ...) inside the library, which we cannot wrap) and the
// app's. The hook is process-wide because the driver's hook list is; it acts
// only on registered paths. A kept WAL is all checkpointed, so it costs disk
// space (at most Litestream's checkpoint threshold, ~4 MB per tenant by
// default) but no correctness: on reopen SQLite recovers the wal-index from
// it and keeps appending, and Litestream finds its last frame and resumes.
//
// Do not set journal_size_limit on replicated files: with PERSIST_WAL SQLite
// truncates the WAL to that size when a connection with the limit closes
// last, which again loses Litestream's position.
var persistWAL = struct {
	once  sync.Once
	mu    sync.RWMutex
	paths map[string]int // absolute path -> number of registrations
}{paths: map[string]int{}}

// persistWALDisabled turns the hook off; tests use it to show what it prevents.
var persistWALDisabled atomic.Bool

func installPersistWALHook() {
	persistWAL.once.Do(func() {
		sqlite.RegisterConnectionHook(func(conn sqlite.ExecQuerierContext, dsn string) error {
			if persistWALDisabled.Load() {
				return nil
			}
			path := dsnPath(dsn)
			if path == "" || !persistWALWanted(path) {
				return nil
			}
			fc, ok := conn.(sqlite.FileControl)
			if !ok {
				return fmt.Errorf("replication: sqlite connection lacks FileControl")
			}
			if _, err := fc.FileControlPersistWAL("main", 1); err != nil {
				return fmt.Errorf("replication: set PERSIST_WAL on %s: %w", path, err)
			}
			return nil
		})
	})
}

func persistWALWanted(path string) bool {
	persistWAL.mu.RLock()
	defer persistWAL.mu.RUnlock()
	return persistWAL.paths[path] > 0
}

func persistWALAdd(path string) {
	persistWAL.mu.Lock()
	defer persistWAL.mu.Unlock()
	persistWAL.paths[path]++
}

func persistWALRemove(path string) {
	persistWAL.mu.Lock()
	defer persistWAL.mu.Unlock()
	if persistWAL.paths[path]--; persistWAL.paths[path] <= 0 {
		delete(persistWAL.paths, path)
	}
}

// dsnPath extracts the absolute file path from a modernc DSN
// ("file:PATH?query", "PATH?query" or "file:///PATH"). It returns "" for
// in-memory databases.
func dsnPath(dsn string) string {
	p, _, _ := strings.Cut(dsn, "?")
	p = strings.TrimPrefix(p, "file:")
	if strings.HasPrefix(p, "///") {
		p = p[2:]
	}
	if p == "" || p == ":memory:" {
		return ""
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	return abs
}
