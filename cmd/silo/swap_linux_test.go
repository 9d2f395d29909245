package main

import "golang.org/x/sys/unix"

// swapPaths exchanges two paths atomically (a file and a directory may
// swap), so that nothing running meanwhile sees neither.
func swapPaths(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
