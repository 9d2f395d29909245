package catalog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// TestBackupMarks: a registration's mark (synced before the next start
// serves) wins over a mark written while backups were off (synced after),
// whichever came first, and a clean unregistration clears either.
func TestBackupMarks(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []struct {
		do func(context.Context, silo.TenantID) error
		id silo.TenantID
	}{
		{c.MarkBackupUnbacked, "a"}, {c.MarkBackupDirty, "a"}, // unbacked, then registered: dirty
		{c.MarkBackupDirty, "b"}, {c.MarkBackupUnbacked, "b"}, // registered, then unbacked: dirty
		{c.MarkBackupUnbacked, "c"}, {c.MarkBackupUnbacked, "c"},
		{c.MarkBackupUnbacked, "d"}, {c.ClearBackupDirty, "d"},
	}
	for _, s := range steps {
		if err := s.do(ctx, s.id); err != nil {
			t.Fatal(err)
		}
	}
	dirty, err := c.BackupDirty(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unbacked, err := c.BackupUnbacked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dirty) != "[a b]" || fmt.Sprint(unbacked) != "[c]" {
		t.Fatalf("dirty %v, unbacked %v; want [a b] and [c]", dirty, unbacked)
	}
	for _, id := range []silo.TenantID{"a", "c"} {
		if seen, err := c.BackupSeen(ctx, id); err != nil || !seen {
			t.Fatalf("%s seen: %v %v", id, seen, err)
		}
	}
}

// TestClaimDelete: of two processes deleting one tenant, only the one that
// moves it out of active goes on; a tenant not active cannot be claimed.
func TestClaimDelete(t *testing.T) {
	ctx := context.Background()
	server, cli := openTwice(t)
	_, hash := catalog.NewToken()
	tn := &silo.Tenant{ID: "t1", Slug: "acme", Name: "Acme", Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
	if err := cli.CreateTenant(ctx, tn, "owner", hash); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*catalog.Catalog{server, cli} {
		claimed, err := c.ClaimDelete(ctx, tn.ID)
		if err != nil || claimed != (i == 0) {
			t.Fatalf("claim %d: %v %v, want %v", i, claimed, err, i == 0)
		}
	}
	got, err := server.TenantBySlugAnyStatus(ctx, "acme")
	if err != nil || got.Status != silo.TenantDeleting {
		t.Fatalf("after the claims: %+v %v", got, err)
	}
}
