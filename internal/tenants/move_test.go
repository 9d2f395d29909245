package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/pg/pgtest"
	"github.com/silohq/silo/internal/placement"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// world is the real storage of one data dir, reopenable as after a crash.
type world struct {
	dir      string
	catalog  *catalog.Catalog
	store    *tenantdb.Store
	svc      *tenants.Service
	projects silo.ProjectService
	tasks    silo.TaskService
	pg       *pg.Engine
}

func open(t *testing.T, dir string, hook func(string) error) *world {
	return openPG(t, dir, hook, nil)
}

// openPG opens the world with the PostgreSQL placements of e (nil: none).
func openPG(t *testing.T, dir string, hook func(string) error, e *pg.Engine) *world {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tenantdb.Open(ctx, tenantdb.Config{Dir: dir, Cache: tenantdb.CacheConfig{Capacity: 4}, MigrateOnOpen: true, MoveHook: hook})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{dir: dir, catalog: cat, store: st, svc: tenants.New(cat, st, "", nil), pg: e}
	var pgp silo.ProjectService
	var pgt silo.TaskService
	if e != nil {
		w.svc.SetPostgres(e)
		st.SetExternal(e)
		pgp, pgt = pg.NewProjectService(e), pg.NewTaskService(e)
	}
	w.projects = placement.NewProjects(st, tenantdb.NewProjectService(st), pgp)
	w.tasks = placement.NewTasks(st, tenantdb.NewTaskService(st), pgt)
	t.Cleanup(w.close)
	return w
}

func (w *world) close() {
	if w.store != nil {
		w.store.Close(context.Background())
		w.catalog.Close()
		w.store = nil
	}
}

// waitQueued waits until a request or an operation waits for a tenant
// another one holds: the moment a race test lets the holder go on.
func (w *world) waitQueued(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); w.store.Cache().Stats().HoldWaiters == 0; {
		if time.Now().After(deadline) {
			t.Fatal("nothing ever waited for the held tenant")
		}
		time.Sleep(time.Millisecond)
	}
}

// ctxFor resolves a tenant as a request would.
func (w *world) ctxFor(t *testing.T, slug string) context.Context {
	t.Helper()
	tn, err := w.catalog.TenantBySlug(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return silo.NewContextWithTenant(context.Background(), tn)
}

// snapshot lists a tenant's rows as the API sees them.
func (w *world) snapshot(t *testing.T, slug string) []string {
	t.Helper()
	ctx := w.ctxFor(t, slug)
	ps, _, err := w.projects.Projects(ctx, silo.Page{Limit: silo.MaxPageLimit}, silo.ProjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, "p:"+p.ID+":"+p.Name)
		ts, _, err := w.tasks.Tasks(ctx, p.ID, silo.Page{Limit: silo.MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range ts {
			out = append(out, "t:"+tk.ID+":"+tk.Title)
		}
	}
	sort.Strings(out)
	return out
}

func (w *world) fill(t *testing.T, slug string, projects, tasks int) {
	t.Helper()
	ctx := w.ctxFor(t, slug)
	for i := range projects {
		p, err := w.projects.CreateProject(ctx, fmt.Sprintf("P%d", i))
		if err != nil {
			t.Fatal(err)
		}
		for j := range tasks {
			if _, err := w.tasks.CreateTask(ctx, p.ID, silo.NewTask{Title: fmt.Sprintf("T%d-%d", i, j)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// placedAt reports where a tenant's data physically is.
func (w *world) placedAt(t *testing.T, slug string) (file bool, sharedRows int) {
	t.Helper()
	tn, _ := w.catalog.TenantBySlugAnyStatus(context.Background(), slug)
	p, _ := w.store.Path(tn.ID)
	_, err := os.Stat(p)
	db, _ := sqlite.Open(filepath.Join(w.dir, "shared.db"), sqlite.Options{MaxConns: 1})
	defer db.Close()
	db.QueryRow("SELECT (SELECT count(*) FROM projects WHERE tenant_id = ?1) + (SELECT count(*) FROM tasks WHERE tenant_id = ?1)", tn.ID).Scan(&sharedRows)
	return err == nil, sharedRows
}

// TestOverlappingMoves sends a second move of a tenant while the first
// one holds it, both ways: the second must find the tenant already moved
// and change nothing. It used to decide its source before waiting for the
// hold, drop the first move's target as leftovers and copy an empty source:
// the tenant's data was gone.
func TestOverlappingMoves(t *testing.T) {
	var mu sync.Mutex
	var entered, proceed chan struct{}
	hook := func(step string) error {
		if step != "journaled" {
			return nil
		}
		mu.Lock()
		e, p := entered, proceed
		entered = nil
		mu.Unlock()
		if e != nil { // the first move: wait until the second one is queued
			close(e)
			<-p
		}
		return nil
	}
	w := open(t, t.TempDir(), hook)
	ctx := context.Background()
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	w.fill(t, "acme", 2, 3)
	before := w.snapshot(t, "acme")
	for _, to := range []silo.Strategy{silo.StrategyShared, silo.StrategyDatabase} {
		mu.Lock()
		entered, proceed = make(chan struct{}), make(chan struct{})
		e, p := entered, proceed
		mu.Unlock()
		errs := make(chan error, 2)
		go func() { _, err := w.svc.Move(ctx, "acme", to); errs <- err }()
		<-e
		go func() { _, err := w.svc.Move(ctx, "acme", to); errs <- err }()
		w.waitQueued(t) // the second reads the tenant and waits for the hold
		close(p)
		var ok, conflict int
		for range 2 {
			switch err := <-errs; {
			case err == nil:
				ok++
			case silo.ErrorCode(err) == silo.ECONFLICT:
				conflict++
			default:
				t.Errorf("move to %s: %v", to, err)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Fatalf("two moves to %s: %d done, %d conflicts; want one of each", to, ok, conflict)
		}
		file, rows := w.placedAt(t, "acme")
		if want := to == silo.StrategyDatabase; file != want || (rows == 0) != want {
			t.Fatalf("after moves to %s: file %v, shared rows %d", to, file, rows)
		}
		if got := w.snapshot(t, "acme"); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("after moves to %s the data changed:\n%v\nwant\n%v", to, got, before)
		}
		tn, _ := w.catalog.TenantBySlug(ctx, "acme")
		if tn.Strategy != to || tn.MovingTo != "" {
			t.Fatalf("catalog after moves to %s: %+v", to, tn)
		}
	}
}

func TestMoveBothWays(t *testing.T) {
	w := open(t, t.TempDir(), nil)
	ctx := context.Background()
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "neighbour", Strategy: silo.StrategyShared}); err != nil {
		t.Fatal(err)
	}
	w.fill(t, "acme", 3, 4)
	w.fill(t, "neighbour", 2, 2)
	before, neighbour := w.snapshot(t, "acme"), w.snapshot(t, "neighbour")

	st, err := w.svc.Move(ctx, "acme", silo.StrategyShared)
	if err != nil || st.Projects != 3 || st.Tasks != 12 || st.Hash == "" {
		t.Fatalf("move to shared: %+v %v", st, err)
	}
	if file, rows := w.placedAt(t, "acme"); file || rows != 15 {
		t.Fatalf("after move to shared: file %v, shared rows %d", file, rows)
	}
	if got := w.snapshot(t, "acme"); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("data changed by the move:\n%v\n%v", got, before)
	}
	if _, err := w.svc.Move(ctx, "acme", silo.StrategyShared); silo.ErrorCode(err) != silo.ECONFLICT {
		t.Fatalf("move to the same placement: %v", err)
	}
	if _, err := w.svc.Move(ctx, "acme", silo.StrategyDatabase); err != nil {
		t.Fatal(err)
	}
	if file, rows := w.placedAt(t, "acme"); !file || rows != 0 {
		t.Fatalf("after move back: file %v, shared rows %d", file, rows)
	}
	if got := w.snapshot(t, "acme"); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("data changed by the move back")
	}
	if got := w.snapshot(t, "neighbour"); fmt.Sprint(got) != fmt.Sprint(neighbour) {
		t.Fatalf("the neighbour's data changed")
	}
	tn, _ := w.catalog.TenantBySlug(ctx, "acme")
	if tn.Strategy != silo.StrategyDatabase || tn.MovingTo != "" {
		t.Fatalf("catalog: %+v", tn)
	}
}

// TestMoveCrashAtEachStep kills a move at each step (without any rollback,
// as a crash would), reopens the data dir, and checks that the tenant is
// whole and served from exactly one place, and that a rerun completes.
func TestMoveCrashAtEachStep(t *testing.T) {
	for _, from := range []silo.Strategy{silo.StrategyDatabase, silo.StrategyShared} {
		to := silo.StrategyShared
		if from == to {
			to = silo.StrategyDatabase
		}
		for _, step := range []string{"journaled", "copied", "verified", "committed"} {
			t.Run(fmt.Sprintf("%s-to-%s/%s", from, to, step), func(t *testing.T) {
				dir := t.TempDir()
				w := open(t, dir, func(s string) error {
					if s == step {
						return tenantdb.ErrSimulatedCrash
					}
					return nil
				})
				ctx := context.Background()
				if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme", Strategy: from}); err != nil {
					t.Fatal(err)
				}
				w.fill(t, "acme", 2, 5)
				before := w.snapshot(t, "acme")
				if _, err := w.svc.Move(ctx, "acme", to); !errors.Is(err, tenantdb.ErrSimulatedCrash) {
					t.Fatalf("move: %v", err)
				}
				w.close()

				w = open(t, dir, nil)
				if err := w.svc.Sweep(ctx); err != nil {
					t.Fatal(err)
				}
				tn, _ := w.catalog.TenantBySlug(ctx, "acme")
				want := from
				if step == "committed" {
					want = to
				}
				if tn.Strategy != want || tn.MovingTo != "" {
					t.Fatalf("after restart: placement %s (moving %q), want %s", tn.Strategy, tn.MovingTo, want)
				}
				file, rows := w.placedAt(t, "acme")
				if (want == silo.StrategyDatabase) != file || (want == silo.StrategyShared) != (rows > 0) {
					t.Fatalf("data in more or fewer than one place: file %v, shared rows %d", file, rows)
				}
				if got := w.snapshot(t, "acme"); fmt.Sprint(got) != fmt.Sprint(before) {
					t.Fatalf("data after restart:\n%v\nwant\n%v", got, before)
				}
				// A rerun finishes the move.
				if want != to {
					if _, err := w.svc.Move(ctx, "acme", to); err != nil {
						t.Fatalf("rerun: %v", err)
					}
					if got := w.snapshot(t, "acme"); fmt.Sprint(got) != fmt.Sprint(before) {
						t.Fatal("data after rerun differs")
					}
				}
			})
		}
	}
}

func TestSharedTenantDelete(t *testing.T) {
	w := open(t, t.TempDir(), nil)
	ctx := context.Background()
	for _, s := range []string{"a", "b"} {
		if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: s + "co", Strategy: silo.StrategyShared}); err != nil {
			t.Fatal(err)
		}
		w.fill(t, s+"co", 2, 2)
	}
	keep := w.snapshot(t, "bco")
	if err := w.svc.Delete(ctx, "aco"); err != nil {
		t.Fatal(err)
	}
	if _, rows := w.placedAt(t, "bco"); rows != 6 {
		t.Fatalf("neighbour rows %d", rows)
	}
	if got := w.snapshot(t, "bco"); fmt.Sprint(got) != fmt.Sprint(keep) {
		t.Fatal("deleting a shared tenant touched its neighbour")
	}
	db, _ := sqlite.Open(filepath.Join(w.dir, "shared.db"), sqlite.Options{MaxConns: 1})
	defer db.Close()
	var n int
	db.QueryRow("SELECT count(*) FROM projects").Scan(&n)
	if n != 2 {
		t.Fatalf("%d projects left in shared.db, want the neighbour's 2", n)
	}
}

// placedIn counts a tenant's rows in one placement, whatever the engine.
func (w *world) placedIn(t *testing.T, slug string, p silo.Strategy) int {
	t.Helper()
	tn, _ := w.catalog.TenantBySlugAnyStatus(context.Background(), slug)
	if p.Postgres() {
		ps, ts, err := w.pg.ReadRows(context.Background(), tn.ID, p)
		if err != nil {
			return 0 // e.g. no schema
		}
		return len(ps) + len(ts)
	}
	file, rows := w.placedAt(t, slug)
	if p == silo.StrategyShared {
		return rows
	}
	if file {
		return 1 // the file exists; its rows are checked through the API
	}
	return 0
}

// TestMoveCrashAcrossEngines kills moves between SQLite and PostgreSQL at
// each step, as a crash would, and checks after a restart that the tenant
// is whole and served from exactly one place, and that a rerun completes.
func TestMoveCrashAcrossEngines(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	e := pgtest.Engine(t)
	for _, pair := range [][2]silo.Strategy{
		{silo.StrategyDatabase, silo.StrategySchema},
		{silo.StrategySchema, silo.StrategyDatabase},
		{silo.StrategyShared, silo.StrategyPGShared},
		{silo.StrategyPGShared, silo.StrategyDatabase},
	} {
		from, to := pair[0], pair[1]
		for _, step := range []string{"journaled", "copied", "verified", "committed"} {
			t.Run(fmt.Sprintf("%s-to-%s/%s", from, to, step), func(t *testing.T) {
				dir := t.TempDir()
				w := openPG(t, dir, func(s string) error {
					if s == step {
						return tenantdb.ErrSimulatedCrash
					}
					return nil
				}, e)
				ctx := context.Background()
				slug := fmt.Sprintf("x%d", time.Now().UnixNano()%1e9)
				tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug, Strategy: from})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					e.DropTenant(context.Background(), tn.ID, silo.StrategySchema)
					e.DropTenant(context.Background(), tn.ID, silo.StrategyPGShared)
				})
				w.fill(t, slug, 2, 3)
				before := w.snapshot(t, slug)
				if _, err := w.svc.Move(ctx, slug, to); !errors.Is(err, tenantdb.ErrSimulatedCrash) {
					t.Fatalf("move: %v", err)
				}
				w.close()

				w = openPG(t, dir, nil, e)
				if err := w.svc.Sweep(ctx); err != nil {
					t.Fatal(err)
				}
				got, _ := w.catalog.TenantBySlug(ctx, slug)
				want := from
				if step == "committed" {
					want = to
				}
				if got.Strategy != want || got.MovingTo != "" {
					t.Fatalf("after restart: %s (moving %q), want %s", got.Strategy, got.MovingTo, want)
				}
				if n := w.placedIn(t, slug, want); n == 0 {
					t.Fatalf("no data where the tenant is served (%s)", want)
				}
				if other := map[silo.Strategy]silo.Strategy{from: to, to: from}[want]; step != "committed" && w.placedIn(t, slug, other) != 0 {
					t.Fatalf("a rolled-back move left data in %s", other)
				}
				// A finished move's source is removed by the restart's
				// cleanup, in any engine (the catalog journals it).
				if step == "committed" && w.placedIn(t, slug, from) != 0 {
					t.Fatalf("the finished move's source %s was not cleaned up", from)
				}
				if s := w.snapshot(t, slug); fmt.Sprint(s) != fmt.Sprint(before) {
					t.Fatalf("data after restart:\n%v\nwant\n%v", s, before)
				}
				if want != to {
					if _, err := w.svc.Move(ctx, slug, to); err != nil {
						t.Fatalf("rerun: %v", err)
					}
					if s := w.snapshot(t, slug); fmt.Sprint(s) != fmt.Sprint(before) {
						t.Fatal("data after rerun differs")
					}
				}
			})
		}
	}
}

// TestRequestOverlappingMoveIntoPostgres: a request routed to SQLite (the
// router admits it, sees a SQLite placement and hands it to the SQLite
// store) can reach the store just after a move into PostgreSQL took the
// tenant. It waits for the move; once the move commits, its rows are in
// PostgreSQL. It must get a retryable 503 and a retry PostgreSQL's rows,
// not a 500 ("unknown placement").
func TestRequestOverlappingMoveIntoPostgres(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	e := pgtest.Engine(t)
	copied, proceed := make(chan struct{}), make(chan struct{})
	w := openPG(t, t.TempDir(), func(step string) error {
		if step == "copied" {
			close(copied)
			<-proceed
		}
		return nil
	}, e)
	ctx := context.Background()
	slug := fmt.Sprintf("r%d", time.Now().UnixNano()%1e9)
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DropTenant(context.Background(), tn.ID, silo.StrategySchema) })
	w.fill(t, slug, 1, 1)
	before := w.snapshot(t, slug)
	tctx := w.ctxFor(t, slug) // resolved as in SQLite, before the move

	moved := make(chan error, 1)
	go func() {
		_, err := w.svc.Move(ctx, slug, silo.StrategySchema)
		moved <- err
	}()
	<-copied
	// The SQLite store itself, as the router calls it for a tenant it
	// admitted in SQLite.
	got := make(chan error, 1)
	go func() {
		_, _, err := tenantdb.NewProjectService(w.store).Projects(tctx, silo.Page{}, silo.ProjectFilter{})
		got <- err
	}()
	w.waitQueued(t)
	close(proceed)
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	if err := <-got; silo.ErrorCode(err) != silo.ETENANTMOVING {
		t.Fatalf("a request that waited out a move into PostgreSQL: %v (code %q), want tenant_moving", err, silo.ErrorCode(err))
	}
	if s := w.snapshot(t, slug); fmt.Sprint(s) != fmt.Sprint(before) {
		t.Fatalf("the retry through the router:\n%v\nwant\n%v", s, before)
	}
}

// TestSweepLeftoverTempFiles: a start after a crash finds a template copy
// (.new-*.db) and a restore's output (.restore-ID.db) beside the tenants.
// The sweep used to take them for tenant files no catalog row names, fail
// to remove them (not tenant ids) and report an error at every start.
func TestSweepLeftoverTempFiles(t *testing.T) {
	w := open(t, t.TempDir(), nil)
	ctx := context.Background()
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "acme"}); err != nil {
		t.Fatal(err)
	}
	w.fill(t, "acme", 1, 1)
	before := w.snapshot(t, "acme")
	old := time.Now().Add(-time.Hour)
	var left []string
	for _, name := range []string{".new-123456.db", ".restore-x.db"} {
		p := filepath.Join(w.store.Dir(), name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		left = append(left, p)
	}
	if err := w.svc.Sweep(ctx); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	for _, p := range left {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: left in place (%v)", filepath.Base(p), err)
		}
	}
	if s := w.snapshot(t, "acme"); fmt.Sprint(s) != fmt.Sprint(before) {
		t.Fatalf("a tenant after the sweep:\n%v\nwant\n%v", s, before)
	}
}

// TestMoveClearsSourceAnEarlierMoveLeft: a move whose source could not be
// removed after its commit (PostgreSQL away; here the move stops right
// after its commit) leaves the catalog's drop_from set for the next start.
// A second move used to overwrite it with its own source: the first
// source's rows (in pgshared, where no file or schema betrays them) were
// then left for good. The next move now removes them first.
func TestMoveClearsSourceAnEarlierMoveLeft(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	e := pgtest.Engine(t)
	var stopAfterCommit atomic.Bool
	stopAfterCommit.Store(true)
	w := openPG(t, t.TempDir(), func(step string) error {
		if step == "committed" && stopAfterCommit.CompareAndSwap(true, false) {
			return errors.New("stopped after the commit, before removing the source")
		}
		return nil
	}, e)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	slug := fmt.Sprintf("left%d", time.Now().UnixNano()%1e9)
	tn, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: slug, Strategy: silo.StrategyPGShared})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DropTenant(context.Background(), tn.ID, silo.StrategyPGShared) })
	w.fill(t, slug, 2, 2)
	want := w.snapshot(t, slug)

	if _, err := w.svc.Move(ctx, slug, silo.StrategyDatabase); err == nil {
		t.Fatal("the move did not stop after its commit")
	}
	if got, _ := w.catalog.TenantBySlug(ctx, slug); got.Strategy != silo.StrategyDatabase || got.DropFrom != silo.StrategyPGShared {
		t.Fatalf("after the first move: %s, drop_from %q", got.Strategy, got.DropFrom)
	}
	if w.placedIn(t, slug, silo.StrategyPGShared) == 0 {
		t.Fatal("the test needs the old rows left in pgshared")
	}

	if _, err := w.svc.Move(ctx, slug, silo.StrategyShared); err != nil {
		t.Fatalf("second move: %v", err)
	}
	if n := w.placedIn(t, slug, silo.StrategyPGShared); n != 0 {
		t.Fatalf("pgshared still holds %d rows of the tenant, which no catalog row points at any more", n)
	}
	if got := w.snapshot(t, slug); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the moves:\n%v\nwant\n%v", got, want)
	}
	if got, _ := w.catalog.TenantBySlug(ctx, slug); got.DropFrom != "" {
		t.Fatalf("drop_from after the second move: %q", got.DropFrom)
	}
}
