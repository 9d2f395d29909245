package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// stmtCacheSize bounds the statements a connection keeps prepared. The
// tenant schema's queries number about thirty, of which a handful are hot;
// each prepared statement costs a few KiB of SQLite memory, on every open
// connection.
const stmtCacheSize = 32

// cachingConn keeps the statements run on a connection prepared, keyed by
// their text, so that a query run again skips SQLite's parser: with
// database/sql's QueryContext and ExecContext the driver prepares and
// finalizes every statement at every call, and parsing was a fifth of the
// server's CPU. sqlc's queries are constant strings, so a handful of keys
// cover every request. The cache belongs to the connection and is finalized
// before it closes (sqlite3_close_v2 would otherwise leave the file open
// until the last statement is finalized).
//
// database/sql never uses a driver connection from two goroutines at once,
// so the cache needs no lock; but one goroutine can run a query while the
// rows of the same query are still open on the connection (inside a
// transaction), so a statement whose rows are open is never reused: that
// call gets a statement of its own.
type cachingConn struct {
	inner interface {
		driver.Conn
		driver.ConnBeginTx
		driver.ConnPrepareContext
		driver.ExecerContext
		driver.QueryerContext
	}
	stmts map[string]*cachedStmt
	lock  io.Closer // an owned file's lock, released after the close
}

type cachedStmt struct {
	s interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	busy bool // rows of it are open
}

// newCachingConn wraps conn, which must have the methods the cache uses
// (modernc's do); lock, if not nil, is closed after conn.
func newCachingConn(conn driver.Conn, lock io.Closer) (*cachingConn, error) {
	inner, ok := conn.(interface {
		driver.Conn
		driver.ConnBeginTx
		driver.ConnPrepareContext
		driver.ExecerContext
		driver.QueryerContext
	})
	if !ok {
		return nil, fmt.Errorf("sqlite: driver connection %T lacks context methods", conn)
	}
	return &cachingConn{inner: inner, stmts: make(map[string]*cachedStmt), lock: lock}, nil
}

// Unwrap returns the driver's connection, for code that needs its extra
// methods through (*sql.Conn).Raw (modernc asks wrappers for it).
func (c *cachingConn) Unwrap() driver.Conn { return c.inner }

// stmt returns the prepared statement for query, preparing it if needed,
// or nil if query is not to be cached or its statement is in use.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if cs := c.stmts[query]; cs != nil {
		if cs.busy {
			return nil, nil
		}
		return cs, nil
	}
	// Only single statements: a script is parsed anew at every run
	// anyway, and scripts are migrations and set-up, run once.
	if strings.Contains(query, ";") {
		return nil, nil
	}
	if len(c.stmts) >= stmtCacheSize && !c.evictOne() {
		return nil, nil // every cached statement has rows open
	}
	ds, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s, ok := ds.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		ds.Close()
		return nil, nil
	}
	cs := &cachedStmt{s: s}
	c.stmts[query] = cs
	return cs, nil
}

// evictOne finalizes one idle statement, chosen by map order (random): the
// hot queries are re-prepared at their next use, the one-offs (a PRAGMA
// with a value in its text) are gone for good.
func (c *cachingConn) evictOne() bool {
	for q, cs := range c.stmts {
		if !cs.busy {
			cs.s.Close()
			delete(c.stmts, q)
			return true
		}
	}
	return false
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return cs.s.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := cs.s.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, stmt: cs}, nil
}

// cachedRows frees its statement for reuse when closed. It passes on the
// column-type methods of the driver's rows, which (*sql.Rows).ColumnTypes
// uses.
type cachedRows struct {
	driver.Rows
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.stmt.busy = false
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

// Close finalizes the cached statements, closes the connection, then
// releases an owned file's lock: only once SQLite no longer uses the file.
func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.s.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.inner.Close())
	if c.lock != nil {
		errs = append(errs, c.lock.Close())
	}
	return errors.Join(errs...)
}

// The rest passes through: statements prepared explicitly belong to the
// caller.

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) { return c.inner.Begin() }

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}
