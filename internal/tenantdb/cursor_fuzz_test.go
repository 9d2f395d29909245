package tenantdb_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// FuzzStorePath checks that no id names a file outside the tenants
// directory: Path either refuses the id or returns <tenants dir>/<id>.db.
func FuzzStorePath(f *testing.F) {
	for _, s := range []string{
		"0190a6e2-7b1c-7cc3-9d2e-3f4a5b6c7d8e", "acme", "", ".", "..", "../x", "..%2f..%2fetc",
		"%2e%2e", "a/b", "a\\b", "/etc/passwd", "a\x00b", "a\n", "A", "\u0430", strings.Repeat("a", 65),
		strings.Repeat("a", 64), "-a", "a.db", "x?mode=memory", "x#y", "c:", "tenants/../../a",
	} {
		f.Add(s)
	}
	// One store for the whole fuzz run: opening builds the template file.
	data := f.TempDir()
	store, err := tenantdb.Open(context.Background(), tenantdb.Config{Dir: data})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close(context.Background()) })
	dir := filepath.Join(data, "tenants")
	if store.Dir() != dir {
		f.Fatalf("store.Dir() = %q, want %q", store.Dir(), dir)
	}
	f.Fuzz(func(t *testing.T, id string) {
		p, err := store.Path(silo.TenantID(id))
		if err != nil {
			if silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
				t.Fatalf("Path(%q) = %v, want code %s", id, err, silo.ETENANTNOTFOUND)
			}
			return
		}
		if filepath.Dir(p) != dir {
			t.Fatalf("Path(%q) = %q, outside %q", id, p, dir)
		}
		if filepath.Base(p) != id+".db" {
			t.Fatalf("Path(%q) = %q, whose base is not the id", id, p)
		}
		if rel, err := filepath.Rel(dir, p); err != nil || rel != id+".db" || strings.ContainsAny(id, "/\\.\x00?#") {
			t.Fatalf("Path(%q) = %q: relative %q, %v", id, p, rel, err)
		}
	})
}
