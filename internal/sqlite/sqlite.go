// Package sqlite opens SQLite files with the settings Silo relies on, applies
// embedded migrations, and translates driver errors into silo errors where
// they enter the program.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/silohq/silo/internal/silo"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Durability chooses SQLite's synchronous setting.
type Durability string

const (
	// DurabilityNormal (synchronous=NORMAL in WAL mode) never loses an
	// acknowledged write to a process crash; a power loss or kernel crash can
	// roll back the last transactions that had not yet been checkpointed.
	DurabilityNormal Durability = "normal"
	// DurabilityFull (synchronous=FULL) fsyncs the WAL at every commit, so an
	// acknowledged write survives power loss too, at the price of one fsync
	// per write.
	DurabilityFull Durability = "full"
)

// Options tune how a file is opened.
type Options struct {
	Durability Durability
	// MaxConns bounds the pool. SQLite allows one writer per file; readers
	// run in parallel in WAL mode.
	MaxConns int
	// CacheKiB is the page cache per connection; tenants get a modest one so
	// that a thousand open tenants fit in memory.
	CacheKiB int
	// BusyTimeout is how long a statement waits for another connection's
	// lock before failing with SQLITE_BUSY, and an owned file's connection
	// for the owner's lock before failing with ErrLocked; 0 means 5 s.
	BusyTimeout time.Duration
	// MustExist opens read-write without creating: a file that is missing
	// (deleted, or moved away) fails instead of appearing empty.
	MustExist bool
	// Exclusive opens with SQLite's unix-excl VFS: the connection holds an
	// exclusive lock on the file while it is open and keeps the WAL index in
	// memory, so no -shm file is created or deleted. Other processes wait
	// (busy_timeout) until it closes. The connections of one process share
	// the in-memory index, so a pool works too.
	Exclusive bool
	// KeepWAL keeps the -wal file when the last connection closes, emptied
	// (SQLITE_FCNTL_PERSIST_WAL with journal_size_limit(0)), so that the
	// next open finds it instead of creating it, and the close truncates it
	// instead of unlinking it: two ext4 metadata operations fewer per open
	// and close cycle. (The limit also truncates the WAL whenever a busy
	// writer restarts it, about every 1,000 pages.) Not for files Litestream
	// replicates, which must keep their WAL's content (see
	// internal/replication).
	KeepWAL bool
	// LockingExclusive sets locking_mode=EXCLUSIVE: the connection keeps the
	// file's lock from its first transaction until it closes, so SQLite
	// skips what it does at every transaction to notice other connections'
	// changes (lock and unlock, fstat of the file, stat of the journal, the
	// moved-file check). Every other connection, in this process or not,
	// gets SQLITE_BUSY meanwhile: use it with MaxConns 1 on a file nobody
	// else needs while it is open.
	LockingExclusive bool
	// Owned gives the file to one connection of this process for as long
	// as the handle is open: MaxConns is 1 and the locking mode exclusive.
	// On Linux SQLite's unix-none VFS does no locking of its own and an
	// open-file-description lock, taken on a descriptor of ours when the
	// connection opens and dropped after it closes, keeps every other
	// connection, in this process or another, out; elsewhere, or on a file
	// system without OFD locks, it falls back to unix-excl. The point is
	// the open: the unix VFSes keep one list of every file the process has
	// open and walk it twice per open (to share POSIX locks between
	// connections of one process), which with a thousand tenants open cost
	// more than the rest of the open did. The file must be writable.
	Owned bool
}

// dsn returns the modernc DSN for path: where and how to open the file.
// The per-connection pragmas are not in it but in connector.init, because
// modernc runs DSN pragmas in alphabetical order and an owned file needs its
// locking mode set before anything reads the file.
func dsn(path, vfs string, o Options) string {
	q := url.Values{}
	// Write transactions take the write lock at BEGIN, so two writers never
	// deadlock upgrading a read lock; busy_timeout then queues them.
	q.Set("_txlock", "immediate")
	if vfs != "" {
		q.Set("vfs", vfs)
	}
	if o.MustExist {
		q.Set("mode", "rw") // SQLite's own URI parameter
	}
	return "file:" + path + "?" + q.Encode()
}

// pragmas returns the statements every connection runs when it opens, in
// the order they must run. WAL mode is stored in the file itself (see
// SetWAL) and costs nothing per open.
func pragmas(o Options) string {
	sync := "normal"
	if o.Durability == DurabilityFull {
		sync = "full"
	}
	var b strings.Builder
	// Before anything reads the file: with unix-none SQLite cannot keep a
	// -shm WAL index (opening the WAL fails with SQLITE_CANTOPEN), so it
	// must know from the start that this connection keeps the file to
	// itself and may hold the index in its own memory.
	if o.LockingExclusive {
		b.WriteString("PRAGMA locking_mode=EXCLUSIVE;")
	}
	// Before the first statement that reads the file, so that it waits for
	// another connection's lock instead of failing.
	fmt.Fprintf(&b, "PRAGMA busy_timeout=%d;", busyTimeout(o).Milliseconds())
	b.WriteString("PRAGMA foreign_keys=ON;PRAGMA synchronous=" + sync + ";")
	if o.KeepWAL {
		b.WriteString("PRAGMA journal_size_limit=0;")
	}
	if o.CacheKiB > 0 {
		fmt.Fprintf(&b, "PRAGMA cache_size=-%d;", o.CacheKiB)
	}
	return b.String()
}

func busyTimeout(o Options) time.Duration {
	if o.BusyTimeout <= 0 {
		return 5 * time.Second
	}
	return o.BusyTimeout
}

// Open opens the SQLite file at path. It does not create missing parents.
// The file itself is opened, and an owned file locked, by the first query.
func Open(path string, o Options) (*sql.DB, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: path %q must not contain '?' or '#'", path)
	}
	if !o.MustExist {
		// SQLite would create a missing file 0644 (less the umask), and
		// gives its -wal and -shm the file's mode: tenants' rows readable
		// by every local user, and Litestream copies the mode to the
		// replica. Made 0600 here first, best effort: if this fails, so
		// will SQLite's open, with its own error, at the first query.
		if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		}
	}
	vfs := ""
	if o.Exclusive {
		vfs = "unix-excl"
	}
	c := &connector{persistWAL: o.KeepWAL}
	if o.Owned {
		o.MaxConns, o.LockingExclusive = 1, true
		vfs = ownedVFS
		c.ownPath, c.ownOpts = path, o
	}
	c.init = pragmas(o)
	mc, err := sqlite.NewConnector(dsn(path, vfs, o))
	if err != nil {
		return nil, err
	}
	c.Connector = mc
	db := sql.OpenDB(c)
	n := o.MaxConns
	if n <= 0 {
		n = 4
	}
	db.SetMaxOpenConns(n)
	// Keep every connection: reopening one re-parses the schema.
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// connector opens modernc connections and prepares each one: the pragmas,
// and SQLITE_FCNTL_PERSIST_WAL when the WAL is kept (SQLite honours it on
// whichever connection closes the file last, and database/sql decides which
// one that is). It hands them out wrapped in a statement cache
// (cachingConn).
//
// For an owned file each connection (there is at most one at a time) takes
// the owner's lock before SQLite opens the file and releases it after
// SQLite closed it, so the lock lives exactly as long as SQLite's use of
// the file: a connection still checked out when the *sql.DB closes keeps
// it until database/sql closes that connection in turn. database/sql closes
// a connection before it counts it gone, so with one connection allowed a
// replacement never overlaps the old one.
type connector struct {
	driver.Connector
	init       string
	persistWAL bool
	ownPath    string  // set for an owned file
	ownOpts    Options // its options, for the lock wait and the fallback
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	inner := c.Connector
	var lock io.Closer
	if c.ownPath != "" {
		l, err := lockOwned(ctx, c.ownPath, busyTimeout(c.ownOpts))
		switch {
		case errors.Is(err, errNoOFDLocks):
			// SQLite's own exclusive lock does the job, without the
			// saving; made here, not on every tenant open.
			fb, err := sqlite.NewConnector(dsn(c.ownPath, "unix-excl", c.ownOpts))
			if err != nil {
				return nil, err
			}
			inner = fb
		case err != nil:
			return nil, err
		default:
			lock = l
		}
	}
	conn, err := c.connect(ctx, inner)
	if err != nil {
		if lock != nil {
			// Safe to close: while we held the lock no POSIX lock of this
			// process on the file could exist for the close to drop.
			lock.Close()
		}
		return nil, err
	}
	cc, err := newCachingConn(conn, lock)
	if err != nil {
		conn.Close()
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	return cc, nil
}

func (c *connector) connect(ctx context.Context, inner driver.Connector) (driver.Conn, error) {
	conn, err := inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.prepare(ctx, conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (c *connector) prepare(ctx context.Context, conn driver.Conn) error {
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		return errors.New("sqlite: driver connection lacks ExecContext")
	}
	// One call runs every statement: the pragmas parse as one script.
	if _, err := ex.ExecContext(ctx, c.init, nil); err != nil {
		return fmt.Errorf("sqlite: connection pragmas: %w", err)
	}
	if !c.persistWAL {
		return nil
	}
	fc, ok := conn.(sqlite.FileControl)
	if !ok {
		return errors.New("sqlite: driver connection lacks FileControl")
	}
	if _, err := fc.FileControlPersistWAL("main", 1); err != nil {
		return fmt.Errorf("sqlite: persist WAL: %w", err)
	}
	return nil
}

// SetWAL switches the file to WAL mode, which SQLite records in the file, so
// later opens need not ask again.
func SetWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("sqlite: journal_mode is %q, want wal", mode)
	}
	return nil
}

// UserVersion reads PRAGMA user_version, which Silo keeps equal to the
// file's migration version so that an open can check it without parsing the
// schema.
func UserVersion(ctx context.Context, db *sql.DB) (int64, error) {
	var v int64
	err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// SetUserVersion writes PRAGMA user_version.
func SetUserVersion(ctx context.Context, db *sql.DB, v int64) error {
	_, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version=%d", v))
	return err
}

// FormatError translates driver errors into silo errors: no rows becomes
// ENOTFOUND, a unique violation ECONFLICT, a full disk EFULL (a tenant's
// quota, which SQLite reports the same way, is told apart where it is
// set: tenantdb's underQuota), a file that
// is locked past the busy timeout or cannot be read or written ESTORAGE
// (IsStorage; IsBusy tells the first kind apart). Others pass through
// unchanged and end up as internal errors.
func FormatError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return silo.Errorf(silo.ENOTFOUND, "Not found.")
	}
	// Another handle or process kept the file locked past the busy
	// timeout (an operator's sqlite3 shell, a migration run from the CLI):
	// unavailable for now, not the request's fault.
	if errors.Is(err, ErrLocked) {
		return &storageError{err}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return silo.Errorf(silo.ECONFLICT, "Already exists.")
		case sqlite3.SQLITE_FULL:
			return &fullError{err}
		}
		// The file cannot be written or read (made read-only, disk error,
		// gone): the tenant is unavailable, not the request wrong; the
		// wrapped error keeps the detail for the log.
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM:
			return &storageError{err}
		}
	}
	return err
}

// storageError is a failure of a tenant's file: it answers as
// silo.ESTORAGE and keeps the driver's error for the logs.
type storageError struct{ err error }

func (e *storageError) Error() string { return "storage: " + e.err.Error() }
func (e *storageError) Unwrap() []error {
	return []error{silo.Errorf(silo.ESTORAGE, "The tenant's storage is unavailable; retry later."), e.err}
}

// fullError is a write refused for want of disk space (SQLITE_FULL): it
// answers as silo.EFULL and keeps the driver's error for the logs.
type fullError struct{ err error }

func (e *fullError) Error() string { return "disk full: " + e.err.Error() }
func (e *fullError) Unwrap() []error {
	return []error{silo.Errorf(silo.EFULL, "The server's storage is full; the write was not made. Retry later."), e.err}
}

// IsFull reports whether err is SQLITE_FULL: the disk is full, or the
// connection's max_page_count was reached.
func IsFull(err error) bool {
	var fe *fullError
	if errors.As(err, &fe) {
		return true
	}
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_FULL
}

// IsStorage reports whether err is a failure of the file itself.
func IsStorage(err error) bool {
	var se *storageError
	return errors.As(err, &se)
}

// IsBusy reports whether err is SQLITE_BUSY: another connection held the
// file's lock for longer than the busy timeout.
func IsBusy(err error) bool {
	if errors.Is(err, ErrLocked) {
		return true
	}
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// ErrLocked is returned by the first query of an owned handle when another
// handle kept the file locked for longer than the busy timeout.
var ErrLocked = errors.New("sqlite: database is locked by another handle")

// errNoOFDLocks: the file system does not do open-file-description locks.
var errNoOFDLocks = errors.New("sqlite: no OFD locks on this file system")

// IsUnique reports whether err is a unique-constraint violation.
func IsUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Commit commits tx and, when it fails because ctx ended, says so:
// database/sql rolls a transaction back as soon as its context ends, and
// Commit then returns only sql.ErrTxDone, which would pass for a fault
// (logged, answered 500) when the client simply went away.
func Commit(ctx context.Context, tx *sql.Tx) error {
	err := tx.Commit()
	if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	return err
}

// RemoveFiles removes a closed database file and its companions (-wal,
// -shm, -journal); files already gone are not an error. The companions go
// first: a crash in between must not leave a -wal without its file, which
// a new file at that path would take for its own.
func RemoveFiles(path string) error {
	if err := RemoveCompanions(path); err != nil {
		return err
	}
	return remove(path)
}

// RemoveCompanions removes a closed database's -wal, -shm and -journal
// files. A file replaced by another (a restore) must lose them first: a
// stale -wal would be applied to the new file at its next open.
func RemoveCompanions(path string) error {
	return errors.Join(remove(path+"-wal"), remove(path+"-shm"), remove(path+"-journal"))
}

func remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Empty reports whether the database at path holds nothing at all: the
// file is there but zero bytes long, with no WAL content either. SQLite
// takes such a file for a new, empty database; for a file that held data
// (a tenant, the catalog) it means the file was truncated or replaced, and
// serving it, migrating it, or replicating it as the newest state would
// pass that loss off as the data.
func Empty(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != 0 {
		return false
	}
	wal, err := os.Stat(path + "-wal")
	return errors.Is(err, os.ErrNotExist) || (err == nil && wal.Size() == 0)
}

// ErrNoSchema is returned for a database file at schema version 0 where a
// migrated one is expected (a tenant's file always starts from a migrated
// template): it was truncated or replaced.
var ErrNoSchema = errors.New("the file holds no schema (version 0): it was truncated or replaced")

// HeaderUserVersion reads user_version from the database header of a
// closed file (4 big-endian bytes at offset 60) without opening it with
// SQLite. It is only meaningful when the file has no WAL content, or when
// whoever holds the file has written its version through (a checkpoint).
// Never call it in a process that has the file open through SQLite: closing
// any descriptor of a file drops the process's POSIX locks on it.
func HeaderUserVersion(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, err
	}
	if string(h[:16]) != "SQLite format 3\x00" {
		return 0, fmt.Errorf("%s: not a SQLite database", path)
	}
	return int64(binary.BigEndian.Uint32(h[60:64])), nil
}
