package catalog

import (
	"context"
	"database/sql"
	"sync"

	"github.com/silohq/silo/internal/silo"
)

// maxCached bounds each cache map; past it the map starts over, so a flood
// of unknown slugs or tenants cannot grow memory.
const maxCached = 100_000

// lookups caches what every request reads from the catalog, a tenant by its
// slug and the tenant's active token hashes, for as long as the catalog file
// has not changed. PRAGMA data_version, read on a connection of its own,
// changes whenever any other connection commits, in this process or in
// another (the CLI): a change empties the cache, so a revoked token or a
// deleted tenant stops working at the very next request.
type lookups struct {
	mu      sync.Mutex
	conn    *sql.Conn
	stmt    *sql.Stmt
	version int64
	gen     uint64 // bumped at each emptying: fills from before it are dropped
	tenants map[string]*silo.Tenant
	hashes  map[silo.TenantID][][]byte
}

func newLookups(ctx context.Context, db *sql.DB) (*lookups, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	stmt, err := conn.PrepareContext(ctx, "PRAGMA data_version")
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &lookups{conn: conn, stmt: stmt, version: -1}, nil
}

func (l *lookups) close() error {
	l.stmt.Close()
	return l.conn.Close()
}

// fresh empties the cache if the catalog changed, and returns the
// generation to pass to the put methods.
func (l *lookups) fresh(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v int64
	if err := l.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		return 0, err
	}
	if v != l.version || l.tenants == nil {
		l.version = v
		l.gen++
		l.tenants = map[string]*silo.Tenant{}
		l.hashes = map[silo.TenantID][][]byte{}
	}
	return l.gen, nil
}

func (l *lookups) tenant(slug string) *silo.Tenant {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tenants[slug]
}

func (l *lookups) putTenant(gen uint64, slug string, t *silo.Tenant) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return // the catalog changed while t was read: it may be stale
	}
	if len(l.tenants) >= maxCached {
		l.tenants = map[string]*silo.Tenant{}
	}
	l.tenants[slug] = t
}

func (l *lookups) tokenHashes(id silo.TenantID) ([][]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.hashes[id]
	return h, ok
}

func (l *lookups) putTokenHashes(gen uint64, id silo.TenantID, h [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return
	}
	if len(l.hashes) >= maxCached {
		l.hashes = map[silo.TenantID][][]byte{}
	}
	l.hashes[id] = h
}
