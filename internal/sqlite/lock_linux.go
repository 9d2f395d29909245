package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ownedVFS does no locking: the lock below does it, once per connection
// instead of through SQLite's process-wide list of open files.
const ownedVFS = "unix-none"

// SQLite's lock bytes: PENDING_BYTE (1 GiB), then RESERVED, then the 510
// SHARED bytes. Holding all of them for writing is what an EXCLUSIVE lock
// looks like to another connection: it cannot even read.
const (
	lockStart = 0x40000000
	lockLen   = 512
)

// lockOwned opens path and takes a write lock on SQLite's lock bytes with an
// open file description (OFD) lock. Unlike a POSIX lock it belongs to this
// descriptor, not to the process, so SQLite closing its own descriptor of
// the file does not drop it, and it conflicts with every POSIX lock on the
// file, this process's included: any other SQLite connection, in this
// process or another, sees the file locked. It waits up to wait (or until
// ctx ends) for a holder to let go, then fails with ErrLocked. The file
// must exist and be writable; if not, the error is a storage error
// (IsStorage). Where the file system does not do OFD locks it fails with
// errNoOFDLocks before opening the file.
func lockOwned(ctx context.Context, path string, wait time.Duration) (io.Closer, error) {
	if !ofdLocks(filepath.Dir(path)) {
		return nil, errNoOFDLocks
	}
	f, err := spares.take(path)
	if err != nil {
		// Gone, read-only, unreadable: the file is unavailable, as when
		// SQLite cannot open it.
		return nil, &storageError{err}
	}
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		err := tryLock(f)
		switch {
		case err == nil:
			// Held: no POSIX lock of this process can exist on the lock
			// bytes now, so closing f later drops none.
			return f, nil
		case !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES):
			spares.put(path, f)
			return nil, &storageError{fmt.Errorf("lock %s: %w", path, err)}
		}
		if time.Now().After(deadline) {
			spares.put(path, f)
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		select {
		case <-ctx.Done():
			spares.put(path, f)
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func tryLock(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: lockStart, Len: lockLen}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// closeIfFree closes f if nobody holds a lock on SQLite's lock bytes of its
// file, which it checks by taking the owner's lock itself: then no POSIX
// lock of this process sits there for the close to drop.
func closeIfFree(f *os.File) bool {
	if tryLock(f) != nil {
		return false
	}
	f.Close()
	return true
}

// ofdLocks reports whether the file system of dir does OFD locks, trying
// once per directory on a scratch file. If the scratch file cannot be made
// it assumes so (every local Linux file system since 3.15 does); a lock
// attempt that then fails is a storage error, not a silent fallback.
func ofdLocks(dir string) bool {
	if v, ok := ofdDirs.Load(dir); ok {
		return v.(bool)
	}
	ok := true
	if f, err := os.CreateTemp(dir, ".silo-ofd-probe-*"); err == nil {
		err := tryLock(f)
		ok = !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOLCK) && !errors.Is(err, unix.EOPNOTSUPP)
		f.Close()
		os.Remove(f.Name())
	}
	ofdDirs.Store(dir, ok)
	return ok
}

var ofdDirs sync.Map // directory -> bool

// spares keeps the descriptors of failed attempts open. Closing a
// descriptor drops every POSIX lock this process holds on the file, and a
// failed attempt means someone holds one, possibly a connection of this
// process (the fleet's, a test's): closing would pull the lock from under
// it. The next attempt on the same file reuses the descriptor. Spares are
// closed only when closeIfFree can: extra ones of a file, ones of a file
// deleted or replaced since (which would otherwise keep it on disk), and
// any beyond maxSpares.
var spares = spareFDs{fds: map[string][]*os.File{}}

const maxSpares = 64

type spareFDs struct {
	mu  sync.Mutex
	fds map[string][]*os.File
	n   int
}

// take returns a spare descriptor of the file now at path, or opens one.
func (s *spareFDs) take(path string) (*os.File, error) {
	if f := s.takeSpare(path); f != nil {
		return f, nil
	}
	return os.OpenFile(path, os.O_RDWR, 0)
}

func (s *spareFDs) takeSpare(path string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return nil
	}
	for fs := s.fds[path]; len(fs) > 0; fs = s.fds[path] {
		f := fs[len(fs)-1]
		s.remove(path, len(fs)-1)
		if sameFile(f, path) {
			return f
		}
		if !closeIfFree(f) {
			s.add(path+"\x00stale", f) // tidy retries it
		}
	}
	return nil
}

func (s *spareFDs) put(path string, f *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(path, f)
	s.tidy()
}

func (s *spareFDs) add(key string, f *os.File) {
	s.fds[key] = append(s.fds[key], f)
	s.n++
}

func (s *spareFDs) remove(key string, i int) {
	fs := s.fds[key]
	fs = append(fs[:i], fs[i+1:]...)
	if len(fs) == 0 {
		delete(s.fds, key)
	} else {
		s.fds[key] = fs
	}
	s.n--
}

// tidy closes what closeIfFree allows of: every spare beyond the first of
// a path, spares of files no longer at their path, and, over maxSpares,
// any.
func (s *spareFDs) tidy() {
	for key, fs := range s.fds {
		path, stale := strings.CutSuffix(key, "\x00stale")
		for i := len(fs) - 1; i >= 0; i-- {
			extra := stale || i > 0 || !sameFile(fs[i], path) || s.n > maxSpares
			if extra && closeIfFree(fs[i]) {
				s.remove(key, i)
			}
		}
	}
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
