package tenantdb_test

import (
	"context"
	"testing"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
)

// TestGate: a file behind the binary is migrated on open, or refused with
// tenant_migrating when that is off; a file ahead of it is refused and left
// untouched.
func TestGate(t *testing.T) {
	ctx := context.Background()
	for _, migrateOnOpen := range []bool{true, false} {
		dir := t.TempDir()
		st, err := tenantdb.Open(ctx, tenantdb.Config{Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: migrateOnOpen})
		if err != nil {
			t.Fatal(err)
		}
		latest := st.Migrator().Latest()
		for _, id := range []silo.TenantID{"behind", "ahead"} {
			if err := st.Provision(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		set := func(id silo.TenantID, v int64) {
			p, _ := st.Path(id)
			db, _ := sqlite.Open(p, sqlite.Options{})
			defer db.Close()
			if v < latest {
				if _, _, err := st.Migrator().Migrate(ctx, db, v); err != nil {
					t.Fatal(err)
				}
			} else if err := sqlite.SetUserVersion(ctx, db, v); err != nil {
				t.Fatal(err)
			}
		}
		set("behind", 1)
		set("ahead", latest+1)

		_, rel, err := st.Acquire(ctx, "behind")
		if migrateOnOpen {
			if err != nil {
				t.Fatalf("behind, migrate on open: %v", err)
			}
			rel()
		} else if silo.ErrorCode(err) != silo.ETENANTMIGRATING {
			t.Fatalf("behind, no migrate on open: %v", err)
		}
		if _, _, err := st.Acquire(ctx, "ahead"); silo.ErrorCode(err) != silo.ESCHEMAAHEAD {
			t.Fatalf("ahead: %v", err)
		}
		st.Close(ctx)
		p, _ := st.Path("ahead")
		if v, _ := sqlite.HeaderUserVersion(p); v != latest+1 {
			t.Fatalf("file ahead was changed to %d", v)
		}
		p, _ = st.Path("behind")
		want := int64(1)
		if migrateOnOpen {
			want = latest
		}
		if v, _ := sqlite.HeaderUserVersion(p); v != want {
			t.Fatalf("behind file at %d, want %d", v, want)
		}
	}
}
