package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errServing means another process (a `silo serve`) holds the data dir.
var errServing = errors.New("a silo server is running on this data directory (or another silo command that changes it, such as a restore or a migration)")

// lockDataDir takes the data directory's lock file, held by `silo serve`
// for its lifetime. It keeps two servers off one directory, and tells
// commands that must not act behind a server's back (moves) to go through
// its operator API instead. The lock is released when the process exits,
// however it exits.
func lockDataDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".silo.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errServing
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// requireDataDir fails unless dir exists, for commands that act on an
// existing fleet: without it a typo in --data would create a new, empty one.
func requireDataDir(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no data directory at %s (check --data)", dir)
	}
	return nil
}

// lockOrAdvise is lockDataDir for a command that must not act behind a
// running server's back: if one runs, the error says so and gives advice.
func lockOrAdvise(dir, advice string) (unlock func(), err error) {
	unlock, err = lockDataDir(dir)
	if errors.Is(err, errServing) {
		return nil, fmt.Errorf("%w; %s", err, advice)
	}
	return unlock, err
}
