package tenants_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// TestQuotaWriteDuringMoveToShared sends a write to a tenant while a move
// into shared.db holds it: the write resolved the tenant in its own file,
// waits, and lands in the shared file. The per-file quota must not follow
// it there. It used to: the quota was decided before the wait, so
// shared.db's connection was capped at the tenant's quota, and a tenant
// far under it got 507 because its neighbours' rows filled shared.db.
func TestQuotaWriteDuringMoveToShared(t *testing.T) {
	var mu sync.Mutex
	var paused, resume chan struct{}
	hook := func(step string) error {
		mu.Lock()
		p, r := paused, resume
		mu.Unlock()
		if step == "copied" && p != nil {
			close(p)
			<-r
		}
		return nil
	}
	w := open(t, t.TempDir(), hook)
	ctx := context.Background()
	for _, nt := range []tenants.NewTenant{{Slug: "big", Strategy: silo.StrategyShared}, {Slug: "small"}} {
		if _, _, err := w.svc.Create(ctx, nt); err != nil {
			t.Fatal(err)
		}
	}
	w.fill(t, "big", 40, 40) // shared.db far past the quota below
	w.fill(t, "small", 1, 1)
	// The quota: room for small's file, none for shared.db's live pages.
	w.store.SetTenantMaxBytes(256 << 10)
	if _, err := w.projects.CreateProject(w.ctxFor(t, "small"), "fits"); err != nil {
		t.Fatalf("small under its quota: %v", err)
	}
	write := w.ctxFor(t, "small") // resolved while small is in its own file

	mu.Lock()
	paused, resume = make(chan struct{}), make(chan struct{})
	p, r := paused, resume
	mu.Unlock()
	moved := make(chan error, 1)
	go func() { _, err := w.svc.Move(ctx, "small", silo.StrategyShared); moved <- err }()
	<-p
	created := make(chan error, 1)
	// Straight to the SQLite service, as a request does that the router
	// admitted just before the move took its hold.
	direct := tenantdb.NewProjectService(w.store)
	go func() { _, err := direct.CreateProject(write, "during the move"); created <- err }()
	w.waitQueued(t) // the move goes on only once the write waits for it
	close(r)
	if err := <-moved; err != nil {
		t.Fatalf("move: %v", err)
	}
	if err := <-created; err != nil {
		t.Fatalf("write that waited for the move into shared.db: %v (want it stored)", err)
	}
	got := fmt.Sprint(w.snapshot(t, "small"))
	for _, name := range []string{"during the move", "fits", "P0"} {
		if !strings.Contains(got, ":"+name) {
			t.Fatalf("small after the move lacks %q: %s", name, got)
		}
	}
	// The shared file's own writes are not capped either, for any tenant.
	if _, err := w.projects.CreateProject(w.ctxFor(t, "big"), "after"); err != nil {
		t.Fatalf("write to shared.db after the move: %v", err)
	}
}
