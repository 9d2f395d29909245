package tenants_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/silohq/silo/internal/pg/pgtest"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenants"
)

// TestSharedWriteResolvedBeforeDelete: a request that resolved a tenant
// placed in shared.db just before the tenant was deleted must find it
// gone. Before, its write landed in shared.db after the delete had removed
// the tenant's rows, and nothing would ever remove it.
func TestSharedWriteResolvedBeforeDelete(t *testing.T) {
	w := open(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme", Strategy: silo.StrategyShared}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "other", Strategy: silo.StrategyShared}); err != nil {
		t.Fatal(err)
	}
	w.fill(t, "other", 1, 1)
	stale := w.ctxFor(t, "acme")
	if err := w.svc.Delete(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.projects.CreateProject(stale, "late"); silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
		t.Fatalf("a write resolved before the delete: %v", err)
	}
	if _, _, err := w.projects.Projects(stale, silo.Page{}, silo.ProjectFilter{}); silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
		t.Fatalf("a read resolved before the delete: %v", err)
	}
	if _, rows := w.placedAt(t, "acme"); rows != 0 {
		t.Fatalf("shared.db holds %d rows of the deleted tenant", rows)
	}
	if got := len(w.snapshot(t, "other")); got != 2 {
		t.Fatalf("the neighbour has %d rows, want 2", got)
	}
}

// TestPurgeClaimsBeforeDroppingBackup: `silo tenants undelete` may run in
// another process while the server purges. Purge claims the tenant before
// it drops its backup: an undelete that lands after the claim is refused
// and leaves no file behind; one that landed before the claim keeps the
// tenant (its row and its backup).
func TestPurgeClaimsBeforeDroppingBackup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, rep := openBackupWorld(t, nil)
	restore := func(ctx context.Context, name, out string) error {
		return rep.Restore(ctx, name, out, time.Time{}, 0)
	}
	for _, slug := range []string{"late", "early"} {
		if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug}); err != nil {
			t.Fatal(err)
		}
		w.fill(t, slug, 1, 1)
		if err := w.svc.Delete(ctx, slug); err != nil {
			t.Fatal(err)
		}
	}
	late, _ := w.catalog.TenantBySlugAnyStatus(ctx, "late")
	early, _ := w.catalog.TenantBySlugAnyStatus(ctx, "early")

	// The undelete of "late" runs while purge drops its backup.
	var undeleteErr error
	dropped := map[silo.TenantID]bool{}
	n, err := w.svc.Purge(ctx, time.Now().Add(time.Hour), func(ctx context.Context, id silo.TenantID) error {
		if id == late.ID {
			undeleteErr = w.svc.Undelete(ctx, "late", restore)
		}
		dropped[id] = true
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if silo.ErrorCode(undeleteErr) != silo.ECONFLICT {
		t.Fatalf("undelete during the purge: %v, want a conflict", undeleteErr)
	}
	path, _ := w.store.Path(late.ID)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the refused undelete left a file: %v", err)
	}

	// "early" is deleted again and undeleted before purge gets to it: purge
	// lists it (the list is older than the undelete) but must not claim it.
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "kept"}); err != nil {
		t.Fatal(err)
	}
	w.fill(t, "kept", 1, 1)
	want := fmt.Sprint(w.snapshot(t, "kept"))
	if err := w.svc.Delete(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	kept, _ := w.catalog.TenantBySlugAnyStatus(ctx, "kept")
	if err := w.svc.Undelete(ctx, "kept", restore); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.catalog.ClaimPurge(ctx, kept.ID, time.Now().Add(time.Hour)); err != nil || ok {
		t.Fatalf("claimed an undeleted tenant for purge: %v %v", ok, err)
	}
	if got := fmt.Sprint(w.snapshot(t, "kept")); got != want {
		t.Fatalf("undeleted tenant: %s, want %s", got, want)
	}
	// Deleted again after purge listed it: its retention starts anew.
	cutoff := time.Now()
	time.Sleep(5 * time.Millisecond)
	if err := w.svc.Delete(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.catalog.ClaimPurge(ctx, kept.ID, cutoff); err != nil || ok {
		t.Fatalf("claimed a tenant deleted again after the cutoff: %v %v", ok, err)
	}
	if _, err := w.catalog.Tenant(ctx, early.ID); err == nil {
		t.Fatal("a purged tenant's row is still there")
	}
}

// TestDeleteDuringMove: a delete that arrives while a move copies the
// tenant waits for the move and then removes the data from where the move
// put it. Before, it removed the placement it read before the move
// committed, and a tenant moved into PostgreSQL kept its rows there for
// good, after its catalog row was purged too.
func TestDeleteDuringMove(t *testing.T) {
	pairs := [][2]silo.Strategy{{silo.StrategyShared, silo.StrategyDatabase}, {silo.StrategyDatabase, silo.StrategyShared}}
	if pgtest.Available() {
		pairs = append(pairs, [2]silo.Strategy{silo.StrategyShared, silo.StrategyPGShared}, [2]silo.Strategy{silo.StrategyDatabase, silo.StrategySchema})
	} else {
		t.Log(pgtest.Skip)
	}
	for _, pair := range pairs {
		from, to := pair[0], pair[1]
		t.Run(fmt.Sprintf("%s-to-%s", from, to), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			copied, resume := make(chan struct{}), make(chan struct{})
			hook := func(step string) error {
				if step == "copied" {
					close(copied)
					<-resume
				}
				return nil
			}
			var w *world
			if to.Postgres() {
				w = openPG(t, t.TempDir(), hook, pgtest.Engine(t))
			} else {
				w = open(t, t.TempDir(), hook)
			}
			slug := fmt.Sprintf("dm%d", time.Now().UnixNano()%1e9)
			tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug, Strategy: from})
			if err != nil {
				t.Fatal(err)
			}
			if to.Postgres() {
				t.Cleanup(func() { w.pg.DropTenant(context.Background(), tn.ID, to) })
			}
			w.fill(t, slug, 2, 2)
			moved := make(chan error, 1)
			go func() {
				_, err := w.svc.Move(ctx, slug, to)
				moved <- err
			}()
			<-copied
			deleted := make(chan error, 1)
			go func() { deleted <- w.svc.Delete(ctx, slug) }()
			w.waitQueued(t) // the delete reads the tenant and waits for the hold
			close(resume)
			if err := <-moved; err != nil {
				t.Fatalf("move: %v", err)
			}
			if err := <-deleted; err != nil {
				t.Fatalf("delete: %v", err)
			}
			for _, p := range []silo.Strategy{from, to} {
				if n := w.placedIn(t, slug, p); n != 0 {
					t.Fatalf("after the delete, %d rows (or a file) of the tenant remain in %s", n, p)
				}
			}
			if got, _ := w.catalog.TenantBySlugAnyStatus(ctx, slug); got.Status != silo.TenantDeleted {
				t.Fatalf("status %s", got.Status)
			}
		})
	}
}

// TestDeletePostgresTenantWithoutPostgres: a process not connected to
// PostgreSQL refuses to delete a tenant placed there, and changes nothing
// (it used to mark the tenant "deleting", so it stopped being served with
// its data still in PostgreSQL, and answered 500).
func TestDeletePostgresTenantWithoutPostgres(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	e := pgtest.Engine(t)
	w := openPG(t, dir, nil, e)
	slug := fmt.Sprintf("pgd%d", time.Now().UnixNano()%1e9)
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug, Strategy: silo.StrategySchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DropTenant(context.Background(), tn.ID, silo.StrategySchema) })
	w.fill(t, slug, 1, 1)
	w.close()

	w = open(t, dir, nil) // no --postgres
	if err := w.svc.Delete(ctx, slug); silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("delete without PostgreSQL: %v, want unavailable", err)
	}
	if got, _ := w.catalog.TenantBySlugAnyStatus(ctx, slug); got.Status != silo.TenantActive {
		t.Fatalf("status after the refused delete: %s", got.Status)
	}
	if n := (&world{pg: e, catalog: w.catalog, store: w.store, dir: dir}).placedIn(t, slug, silo.StrategySchema); n != 2 {
		t.Fatalf("%d rows left in the schema, want 2", n)
	}
}

// TestDeleteRefusedKeepsTenant: a delete refused because the replica is
// unreachable (its file could not be synced first) changes nothing: the
// tenant stays active and served. It used to stay "deleting", answering
// 404, until a restart finished the delete the caller was told had not
// happened.
func TestDeleteRefusedKeepsTenant(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, _ := openBackupWorld(t, nil)
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	w.fill(t, "keep", 1, 1)
	// The replica becomes unreachable: its directory is now a file. (Once
	// it exists: the first upload comes within the sync interval.)
	replica := filepath.Join(w.dir, "replica", "tenants", string(tn.ID)+".db")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(replica); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tenant's replica never appeared")
		}
	}
	if err := os.RemoveAll(replica); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(replica, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Delete(ctx, "keep"); silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("delete with the replica away: %v, want unavailable", err)
	}
	if got, _ := w.catalog.TenantBySlugAnyStatus(ctx, "keep"); got.Status != silo.TenantActive {
		t.Fatalf("status after the refused delete: %s", got.Status)
	}
	if _, err := w.projects.CreateProject(w.ctxFor(t, "keep"), "still here"); err != nil {
		t.Fatalf("the tenant is not served after the refused delete: %v", err)
	}
	if got := len(w.snapshot(t, "keep")); got != 3 {
		t.Fatalf("%d rows, want 3", got)
	}
}

// TestConcurrentDeletes: a second delete of a tenant while the first one
// runs is refused (409) and changes nothing. Both used to go on: the second
// restarted the retention period once the first was done, or, had the
// first failed for want of the replica, went on deleting a tenant the
// first had just put back in service.
func TestConcurrentDeletes(t *testing.T) {
	w := open(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	// A request holds the tenant's handle: the first delete waits for it.
	_, rel, err := w.store.Acquire(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(rel)
	defer release()
	first := make(chan error, 1)
	go func() { first <- w.svc.Delete(ctx, "acme") }()
	// Claimed, so waiting for the borrow to end.
	for {
		got, err := w.catalog.TenantBySlugAnyStatus(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == silo.TenantDeleting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.svc.Delete(ctx, "acme"); silo.ErrorCode(err) != silo.ECONFLICT {
		t.Fatalf("a delete while another runs: %v, want conflict", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("the first delete: %v", err)
	}
	got, err := w.catalog.TenantBySlugAnyStatus(ctx, "acme")
	if err != nil || got.Status != silo.TenantDeleted {
		t.Fatalf("after the deletes: %+v %v", got, err)
	}
}

// TestDeleteRetryAfterGivingUp: a delete whose caller gives up while a
// request still has the tenant changed nothing and puts the tenant back in
// service; and a tenant left "deleting" by a delete that failed half-way
// (or a crash) is finished by the next delete, not refused until a restart.
func TestDeleteRetryAfterGivingUp(t *testing.T) {
	w := open(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	w.fill(t, "acme", 1, 1)
	_, rel, err := w.store.Acquire(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	err = w.svc.Delete(short, "acme")
	stop()
	rel()
	if silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("a delete given up while the tenant was in use: %v, want unavailable", err)
	}
	if got, _ := w.catalog.TenantBySlugAnyStatus(ctx, "acme"); got == nil || got.Status != silo.TenantActive {
		t.Fatalf("after a delete given up: %+v, want active", got)
	}
	if n := len(w.snapshot(t, "acme")); n != 2 {
		t.Fatalf("after a delete given up: %d rows, want 2", n)
	}
	// Left "deleting" (a failure after the claim, or a crash): a delete
	// finishes it.
	if err := w.catalog.SetStatus(ctx, tn.ID, silo.TenantDeleting); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Delete(ctx, "acme"); err != nil {
		t.Fatalf("finishing a delete left half-way: %v", err)
	}
	if got, _ := w.catalog.TenantBySlugAnyStatus(ctx, "acme"); got == nil || got.Status != silo.TenantDeleted {
		t.Fatalf("after finishing: %+v, want deleted", got)
	}
}

// TestDeleteOutlivesItsCaller: a delete whose caller goes away once the
// tenant's data is being removed still runs to its end. Before, the
// cancelled context cut the removal short: for a tenant in shared.db,
// half-way through removing its rows, which left it unserved and
// "deleting" with its rows still there until another delete. (Giving up
// while waiting for the tenant's requests changes nothing, as
// TestDeleteRetryAfterGivingUp shows.) The removal is caught in the act by
// holding shared.db's write lock, which every removal takes: the tenant's
// file is gone and its shared rows not yet.
func TestDeleteOutlivesItsCaller(t *testing.T) {
	dir := t.TempDir()
	w := open(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []tenants.NewTenant{{Slug: "acme"}, {Slug: "other", Strategy: silo.StrategyShared}} {
		if _, _, err := w.svc.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		w.fill(t, n.Slug, 2, 3)
	}
	tn, err := w.catalog.TenantBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	path, err := w.store.Path(tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	blocker, err := sqlite.Open(filepath.Join(dir, "shared.db"), sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	conn, err := blocker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	callerCtx, callerGone := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.svc.Delete(callerCtx, "acme") }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delete never removed the tenant's file")
		}
	}
	callerGone()
	time.Sleep(100 * time.Millisecond)
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("delete: %v", err)
	}
	got, err := w.catalog.TenantBySlugAnyStatus(ctx, "acme")
	if err != nil || got.Status != silo.TenantDeleted {
		t.Fatalf("after the delete: %+v, %v; want status deleted", got, err)
	}
	if n := len(w.snapshot(t, "other")); n != 2+2*3 {
		t.Fatalf("the neighbour has %d rows, want 8", n)
	}
}
