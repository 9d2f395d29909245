package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
// (IsStorage). On a file system without OFD locks it fails with
// errNoOFDLocks.
func lockOwned(ctx context.Context, path string, wait time.Duration) (io.Closer, error) {
	f, err := spares.take(path)
	if err != nil {
		// Gone, read-only, unreadable: the file is unavailable, as when
		// SQLite cannot open it.
		return nil, &storageError{err}
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: lockStart, Len: lockLen}
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		switch {
		case err == nil:
			// Held: no POSIX lock of this process can exist on the lock
			// bytes now, so closing f later drops none.
			return f, nil
		case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP):
			spares.put(path, f)
			return nil, errNoOFDLocks
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

// spares keeps the descriptors of failed attempts open. Closing a
// descriptor drops every POSIX lock this process holds on the file, and a
// failed attempt means someone holds one, possibly a connection of this
// process (the fleet's, a test's): closing would pull the lock from under
// it. The next attempt on the same file reuses the descriptor, so there are
// about as many per file as attempts run at once on it (one: the handle
// cache opens a file once). Beyond maxSpares in all (something holds that
// many files this server wants) one is closed after all, a risk only for
// handles of this very process.
var spares = spareFDs{fds: map[string][]*os.File{}}

const maxSpares = 1024

type spareFDs struct {
	mu  sync.Mutex
	fds map[string][]*os.File
	n   int
}

// take returns a spare descriptor of the file now at path, or opens one. A
// spare of a file that has since been replaced (a restore renames a new
// file into place) would lock the old file: it is closed instead.
func (s *spareFDs) take(path string) (*os.File, error) {
	s.mu.Lock()
	var f *os.File
	if fs := s.fds[path]; len(fs) > 0 {
		f = fs[len(fs)-1]
		if len(fs) == 1 {
			delete(s.fds, path)
		} else {
			s.fds[path] = fs[:len(fs)-1]
		}
		s.n--
	}
	s.mu.Unlock()
	if f != nil {
		if sameFile(f, path) {
			return f, nil
		}
		f.Close()
	}
	return os.OpenFile(path, os.O_RDWR, 0)
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func (s *spareFDs) put(path string, f *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fds[path] = append(s.fds[path], f)
	s.n++
	for p, fs := range s.fds {
		if s.n <= maxSpares {
			break
		}
		if p == path {
			continue
		}
		for _, g := range fs {
			g.Close()
			s.n--
		}
		delete(s.fds, p)
	}
}
