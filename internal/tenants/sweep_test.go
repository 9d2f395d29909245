package tenants_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

// TestSweepRemovesOnlyOrphansOfSignups: the start's sweep removes a file
// an interrupted signup left (named as signups name files, named by no
// catalog row, older than 10 minutes), and nothing else: not a young one
// (a signup in progress in another process), not a tenant's, and not a
// file an operator put there (a copy restored with --to), which it used to
// remove because any lower-case name passed for an id.
func TestSweepRemovesOnlyOrphansOfSignups(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, nil)
	ctx := context.Background()
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	w.fill(t, "acme", 1, 1)
	tdir := w.store.Dir()
	old := time.Now().Add(-time.Hour)
	write := func(name string, mtime time.Time) string {
		p := filepath.Join(tdir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	orphan := write(silo.NewID()+".db", old)
	young := write(silo.NewID()+".db", time.Now())
	mine := write("mycopy.db", old)
	upper := write("01A21E24-74C2-7A07-87AE-8E943BEDB17E.db", old)
	tenantFile, _ := w.store.Path(tn.ID)
	os.Chtimes(tenantFile, old, old)

	if err := w.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("the orphan of a signup is still there: %v", err)
	}
	for _, p := range []string{young, mine, upper, tenantFile} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
	if n := len(w.snapshot(t, "acme")); n != 2 {
		t.Fatalf("the tenant has %d rows, want 2", n)
	}
}

// TestSweepKeepsFilesOfALostCatalog: with a catalog that names no tenant
// at all, tenant files are the fleet of a lost (replaced) catalog, not
// interrupted signups: the sweep keeps them. (One file alone may be a
// first signup that crashed; it goes.)
func TestSweepKeepsFilesOfALostCatalog(t *testing.T) {
	for _, files := range []int{1, 3} {
		w := open(t, t.TempDir(), nil)
		old := time.Now().Add(-time.Hour)
		var paths []string
		for range files {
			p := filepath.Join(w.store.Dir(), silo.NewID()+".db")
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, old, old)
			paths = append(paths, p)
		}
		if err := w.svc.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			_, err := os.Stat(p)
			if kept := err == nil; kept != (files > 1) {
				t.Errorf("%d files beside an empty catalog: %s kept = %v", files, filepath.Base(p), kept)
			}
		}
	}
}
