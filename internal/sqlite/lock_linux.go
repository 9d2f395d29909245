package sqlite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ownedVFS does no locking: the lock below does it, once per handle instead
// of in SQLite's process-wide list of open files.
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
// process or another, sees the file locked. It waits up to wait for a
// holder to let go, then fails with ErrLocked. The file must exist and be
// writable; if not, the error is a storage error (IsStorage).
func lockOwned(path string, wait time.Duration) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
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
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			f.Close()
			return nil, &storageError{fmt.Errorf("lock %s: %w", path, err)}
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
