package tenants_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
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
// openBackupWorld is a world whose store replicates with a real embedded
// Litestream to a file replica under dir.
func openBackupWorld(t *testing.T, hook func(string) error) (*world, *replication.Replicator) {
	t.Helper()
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
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tenantdb.Open(ctx, tenantdb.Config{Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, MoveHook: hook, Backup: rep, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{dir: dir, catalog: cat, store: st, svc: tenants.New(cat, st, "", nil)}
	w.projects = placement.NewProjects(st, tenantdb.NewProjectService(st), nil)
	w.tasks = placement.NewTasks(st, tenantdb.NewTaskService(st), nil)
	t.Cleanup(func() {
		w.close()
		rep.Close(ctx)
	})
	return w, rep
}

func TestRestoreAfterOverlappingMove(t *testing.T) {
	ctx := context.Background()
	var once sync.Once
	entered, proceed := make(chan struct{}), make(chan struct{})
	hook := func(step string) error {
		if step == "journaled" {
			once.Do(func() { close(entered); <-proceed })
		}
		return nil
	}
	w, rep := openBackupWorld(t, hook)
	st := w.store
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
	w.waitQueued(t) // the restore reads the tenant and waits for the hold
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

// TestRestoreAndDeleteCorruptFile: a tenant file that cannot be read has
// nothing to sync to its replica first; an in-place restore must still put
// back the replica's state (the reason to restore), and a delete must still
// delete it (and undelete bring the backup back), not refuse for a replica
// that is fine.
func TestRestoreAndDeleteCorruptFile(t *testing.T) {
	ctx := context.Background()
	w, rep := openBackupWorld(t, nil)
	for _, slug := range []string{"broken", "doomed"} {
		if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug}); err != nil {
			t.Fatal(err)
		}
		w.fill(t, slug, 2, 1)
	}
	want := map[string]string{"broken": fmt.Sprint(w.snapshot(t, "broken")), "doomed": fmt.Sprint(w.snapshot(t, "doomed"))}
	corrupt := func(slug string) {
		t.Helper()
		tn, err := w.catalog.TenantBySlug(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		// Close it (a restore of "the latest" would sync it otherwise), then
		// wreck it.
		release, err := w.store.Cache().Hold(ctx, tn.ID, silo.ETENANTBUSY)
		if err != nil {
			t.Fatal(err)
		}
		path, _ := w.store.Path(tn.ID)
		if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 512)), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(path + "-wal")
		release()
	}
	b := tenants.NewBackups(w.svc, rep)
	corrupt("broken")
	if err := b.Restore(ctx, "broken", time.Time{}, 0); err != nil {
		t.Fatalf("restore of a corrupt file: %v", err)
	}
	if got := fmt.Sprint(w.snapshot(t, "broken")); got != want["broken"] {
		t.Fatalf("after restoring a corrupt file:\n%s\nwant\n%s", got, want["broken"])
	}
	corrupt("doomed")
	if err := w.svc.Delete(ctx, "doomed"); err != nil {
		t.Fatalf("delete of a corrupt file: %v", err)
	}
	if err := w.svc.Undelete(ctx, "doomed", func(ctx context.Context, name, out string) error {
		return rep.Restore(ctx, name, out, time.Time{}, 0)
	}); err != nil {
		t.Fatalf("undelete: %v", err)
	}
	if got := fmt.Sprint(w.snapshot(t, "doomed")); got != want["doomed"] {
		t.Fatalf("after undelete:\n%s\nwant\n%s", got, want["doomed"])
	}
}

// TestRequestResolvedBeforeDelete: a request that resolved its tenant just
// before the tenant was deleted arrives after the file is gone. It must
// get "not found", not bring the file back from the backup (which also
// made undelete refuse: "the file exists"); undelete then works.
func TestRequestResolvedBeforeDelete(t *testing.T) {
	ctx := context.Background()
	w, rep := openBackupWorld(t, nil)
	for _, slug := range []string{"used", "unused"} {
		if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug}); err != nil {
			t.Fatal(err)
		}
	}
	w.fill(t, "used", 1, 1)
	for _, slug := range []string{"used", "unused"} {
		stale := w.ctxFor(t, slug)
		if err := w.svc.Delete(ctx, slug); err != nil {
			t.Fatal(err)
		}
		if _, err := w.projects.CreateProject(stale, "late"); silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
			t.Fatalf("%s: a write resolved before the delete: %v", slug, err)
		}
		tn, _ := w.catalog.TenantBySlugAnyStatus(ctx, slug)
		path, _ := w.store.Path(tn.ID)
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s: the deleted tenant's file is back: %v", slug, err)
		}
		if err := w.svc.Undelete(ctx, slug, func(ctx context.Context, name, out string) error {
			return rep.Restore(ctx, name, out, time.Time{}, 0)
		}); err != nil {
			t.Fatalf("%s: undelete: %v", slug, err)
		}
	}
}

// TestRestoreAcrossPlacements: a tenant moves out of its file and back.
// Its file's backup holds both file periods, with a gap while its rows were
// in shared.db: a restore to a point before it moved back would silently
// bring back the first period's state and throw away everything since.
// Such points are refused (in place and --to); the latest state, and a
// transaction of the current period, restore as they should.
func TestRestoreAcrossPlacements(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, rep := openBackupWorld(t, nil)
	b := tenants.NewBackups(w.svc, rep)
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "pit"}); err != nil {
		t.Fatal(err)
	}
	names := func() string {
		t.Helper()
		ps, _, err := w.projects.Projects(w.ctxFor(t, "pit"), silo.Page{}, silo.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		sort.Strings(out)
		return strings.Join(out, "")
	}
	create := func(name string) {
		t.Helper()
		if _, err := w.projects.CreateProject(w.ctxFor(t, "pit"), name); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	create("A")
	firstPeriod := time.Now()
	if _, err := w.svc.Move(ctx, "pit", silo.StrategyShared); err != nil {
		t.Fatal(err)
	}
	create("B")
	gap := time.Now()
	time.Sleep(20 * time.Millisecond)
	if _, err := w.svc.Move(ctx, "pit", silo.StrategyDatabase); err != nil {
		t.Fatal(err)
	}
	create("C")
	tn, _ := w.catalog.TenantBySlug(ctx, "pit")
	if tn.FileSince.IsZero() || tn.FileSinceTXID == 0 {
		t.Fatalf("the move into the file was not recorded: %+v", tn)
	}
	out := filepath.Join(t.TempDir(), "copy.db")
	for _, tc := range []struct {
		at   time.Time
		txid uint64
	}{{firstPeriod, 0}, {gap, 0}, {time.Time{}, 1}, {time.Time{}, tn.FileSinceTXID - 1}} {
		if err := b.Restore(ctx, "pit", tc.at, tc.txid); silo.ErrorCode(err) != silo.EINVALID {
			t.Fatalf("in place at %v txid %d: %v, want refused", tc.at, tc.txid, err)
		}
		if err := b.RestoreTo(ctx, "pit", out, tc.at, tc.txid); silo.ErrorCode(err) != silo.EINVALID {
			t.Fatalf("--to at %v txid %d: %v, want refused", tc.at, tc.txid, err)
		}
		if got := names(); got != "ABC" {
			t.Fatalf("a refused restore changed the tenant: %s", got)
		}
	}
	// The first transaction of the current period is the state it moved in with.
	if err := b.Restore(ctx, "pit", time.Time{}, tn.FileSinceTXID); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "AB" {
		t.Fatalf("restored to the move's transaction: %s, want AB", got)
	}
}
