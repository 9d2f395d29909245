//go:build !linux

package main

import "os"

// swapPaths exchanges two paths; off Linux not atomically, through a third
// name.
func swapPaths(a, b string) error {
	tmp := a + ".swap"
	if err := os.Rename(a, tmp); err != nil {
		return err
	}
	if err := os.Rename(b, a); err != nil {
		return err
	}
	return os.Rename(tmp, b)
}
