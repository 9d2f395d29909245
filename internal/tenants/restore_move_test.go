package tenants_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/placement"
	"github.com/silohq/silo/internal/replication"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// TestRestoreAfterOverlappingMove asks for an in-place restore while a move
// of the same tenant to the shared file holds it. The restore waits for the
// hold; by then the tenant's rows live in the shared file, so it must be
// refused, not write a stray file from the replica and report success while
// the live rows stay as they are.
func TestRestoreAfterOverlappingMove(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tenants"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := replication.ParseConfig(strings.NewReader(`dbs:
  - dir: data/tenants
    pattern: "*.db"
    replica: {url: "file:data/replica/tenants"}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	rep, err := replication.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)

	var once sync.Once
	entered, proceed := make(chan struct{}), make(chan struct{})
	hook := func(step string) error {
		if step == "journaled" {
			once.Do(func() { close(entered); <-proceed })
		}
		return nil
	}
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	st, err := tenantdb.Open(ctx, tenantdb.Config{Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, MoveHook: hook, Backup: rep, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	w := &world{dir: dir, catalog: cat, store: st, svc: tenants.New(cat, st, "", nil)}
	w.projects = placement.NewProjects(st, tenantdb.NewProjectService(st), nil)
	w.tasks = placement.NewTasks(st, tenantdb.NewTaskService(st), nil)
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	w.fill(t, "acme", 2, 2)
	before := w.snapshot(t, "acme")

	moved := make(chan error, 1)
	go func() { _, err := w.svc.Move(ctx, "acme", silo.StrategyShared); moved <- err }()
	<-entered
	restored := make(chan error, 1)
	go func() { restored <- tenants.NewBackups(w.svc, rep).Restore(ctx, "acme", time.Time{}, 0) }()
	time.Sleep(200 * time.Millisecond) // the restore reads the tenant and waits for the hold
	close(proceed)
	if err := <-moved; err != nil {
		t.Fatalf("move: %v", err)
	}
	if err := <-restored; silo.ErrorCode(err) != silo.ECONFLICT {
		t.Fatalf("restore after the move: %v, want %s", err, silo.ECONFLICT)
	}
	path, err := st.Path(tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the refused restore left a file at %s: %v", path, err)
	}
	if got := w.snapshot(t, "acme"); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("data after the move and the refused restore:\n%v\nwant\n%v", got, before)
	}
}
