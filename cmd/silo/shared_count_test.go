package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// TestSharedTenantsCountsOnlyRowsHeld: the start refuses a lost shared.db
// only for tenants whose rows it held. A tenant being purged (its delete
// long done) has none; counting it refused the start for nothing.
func TestSharedTenantsCountsOnlyRowsHeld(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	cat, err := catalog.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id       string
		strategy silo.Strategy
		status   string
	}{
		{"a", silo.StrategyShared, silo.TenantActive},
		{"b", silo.StrategyShared, silo.TenantDeleting},
		{"c", silo.StrategyShared, silo.TenantDeleted},
		{"d", silo.StrategyShared, silo.TenantPurging},
		{"e", silo.StrategyDatabase, silo.TenantActive},
	} {
		tn := &silo.Tenant{ID: silo.TenantID(tc.id), Slug: "t" + tc.id, Name: tc.id, Strategy: tc.strategy, Status: silo.TenantActive}
		if err := cat.CreateTenant(ctx, tn, "owner", []byte(tc.id)); err != nil {
			t.Fatal(err)
		}
		if err := cat.SetStatus(ctx, tn.ID, tc.status); err != nil {
			t.Fatal(err)
		}
	}
	cat.Close()
	if n, err := sharedTenants(ctx, path); err != nil || n != 2 {
		t.Fatalf("sharedTenants = %d, %v; want 2 (active and deleting)", n, err)
	}
}
