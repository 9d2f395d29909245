package pg_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/pg/pgtest"
	"github.com/silohq/silo/internal/silo"
)

// gate is a TCP proxy on 127.0.0.1 to target that, while closed, hangs up
// on every connection at once, as PostgreSQL's host does while it is down.
type gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
	// stalled stops the bytes both ways on the connections made, as a
	// dead network path or a stopped server does: no error, no answer.
	stalled atomic.Bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { g.copy(s, c); s.Close() }()
			go func() { g.copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return g
}

// copy is io.Copy that holds what it read while the gate is stalled.
func (g *gate) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for g.stalled.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// through returns rawURL with its host replaced by the gate's.
func (g *gate) through(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = g.ln.Addr().String()
	return u.String()
}

// TestOpenLazy: a server starting while PostgreSQL is down must start, answer
// 503 for PostgreSQL's tenants, and serve them once PostgreSQL is back and
// its role and setup checks pass; a PostgreSQL that answers and refuses
// (a wrong password) is an error at once, as with Open.
func TestOpenLazy(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	appURL, cfg := pgtest.Role(t)
	u, _ := url.Parse(appURL)
	g := newGate(t, u.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	// The owner's setup (--postgres-admin) waits for PostgreSQL too.
	var setups atomic.Int32
	setup := func(ctx context.Context) error {
		setups.Add(1)
		return pg.Setup(ctx, g.through(t, os.Getenv("SILO_TEST_POSTGRES_URL")), u.User.Username(), cfg)
	}
	e, err := pg.OpenLazy(ctx, g.through(t, appURL), cfg, setup, 100*time.Millisecond, log)
	if err != nil {
		t.Fatalf("open while PostgreSQL is down: %v", err)
	}
	defer e.Close()
	if e.Ready() {
		t.Fatal("ready while PostgreSQL is down")
	}
	tn := &silo.Tenant{ID: silo.TenantID(silo.NewID()), Slug: "lazy", Strategy: silo.StrategyPGShared, Status: silo.TenantActive}
	tctx := silo.NewContextWithTenant(ctx, tn)
	projects := pg.NewProjectService(e)
	if _, err := projects.CreateProject(tctx, "early"); silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("a request while PostgreSQL is down: %v, want unavailable", err)
	}
	if err := e.CreateSchemaTenant(ctx, tn.ID); silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("a signup while PostgreSQL is down: %v, want unavailable", err)
	}
	// A pgshared signup has nothing to create, and asks this.
	if err := e.Reachable(ctx); silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("Reachable while PostgreSQL is down: %v, want unavailable", err)
	}

	g.open.Store(true)
	for !e.Ready() {
		if ctx.Err() != nil {
			t.Fatal("PostgreSQL came back and the engine never served it")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if setups.Load() < 2 {
		t.Fatalf("setup ran %d times: once at the start, and once more when PostgreSQL came back", setups.Load())
	}
	if err := e.Reachable(ctx); err != nil {
		t.Fatalf("Reachable once PostgreSQL is back: %v", err)
	}
	if _, err := projects.CreateProject(tctx, "later"); err != nil {
		t.Fatalf("a request once PostgreSQL is back: %v", err)
	}
	defer e.DropTenant(context.Background(), tn.ID, silo.StrategyPGShared)
	ps, _, err := projects.Projects(tctx, silo.Page{}, silo.ProjectFilter{})
	if err != nil || len(ps) != 1 || ps[0].Name != "later" {
		t.Fatalf("projects: %v %v", ps, err)
	}

	// Reached, and refused: not a reason to wait.
	bad, _ := url.Parse(g.through(t, appURL))
	bad.User = url.UserPassword(bad.User.Username(), "wrong")
	if e2, err := pg.OpenLazy(ctx, bad.String(), cfg, nil, 100*time.Millisecond, log); err == nil {
		e2.Close()
		t.Fatal("a wrong password was taken for PostgreSQL being down")
	}
}

// TestStalledPostgres: a PostgreSQL that stops answering (a dead network
// path, a stopped process: no error, no reply) used to keep a request, a
// signup and a shutdown waiting without end. Each request's work is now
// bounded (Config.RequestTimeout), and it ends in an error the server
// answers 503; the engine then closes within pgx's own bound on closing a
// connection whose query was cut short (15 s: it sends PostgreSQL a
// cancel request, which a stalled path does not answer either).
func TestStalledPostgres(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	appURL, cfg := pgtest.Role(t)
	u, _ := url.Parse(appURL)
	g := newGate(t, u.Host)
	g.open.Store(true)
	cfg.RequestTimeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := pg.Open(ctx, g.through(t, appURL), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &silo.Tenant{ID: silo.TenantID(silo.NewID()), Slug: "stall", Strategy: silo.StrategyPGShared, Status: silo.TenantActive}
	tctx := silo.NewContextWithTenant(ctx, tn)
	projects := pg.NewProjectService(e)
	p, err := projects.CreateProject(tctx, "before")
	if err != nil {
		t.Fatal(err)
	}

	g.stalled.Store(true)
	start := time.Now()
	_, err = projects.Project(tctx, p.ID)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("a request to a stalled PostgreSQL took %v", took)
	}
	if err == nil || (!errors.Is(err, context.DeadlineExceeded) && silo.ErrorCode(err) != silo.EUNAVAILABLE) {
		t.Fatalf("a request to a stalled PostgreSQL: %v, want a timeout", err)
	}
	if err := e.CreateSchemaTenant(ctx, silo.TenantID(silo.NewID())); err == nil {
		t.Fatal("a signup into a stalled PostgreSQL succeeded")
	}
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the engine did not close while PostgreSQL was stalled")
	}
	g.stalled.Store(false)
}

// TestPostgresTimeoutsAnswer503: PostgreSQL's own bounds (lock_timeout
// here, set by its operator) aborting a request's transaction used to
// answer 500; nothing was changed and a retry may pass, so it is 503.
func TestPostgresTimeoutsAnswer503(t *testing.T) {
	if !pgtest.Available() {
		t.Skip(pgtest.Skip)
	}
	appURL, cfg := pgtest.Role(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Unknown URL parameters are run-time settings for pgx.
	e, err := pg.Open(ctx, appURL+"&lock_timeout=200ms", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tn := &silo.Tenant{ID: silo.TenantID(silo.NewID()), Slug: "locked", Strategy: silo.StrategyPGShared, Status: silo.TenantActive}
	tctx := silo.NewContextWithTenant(ctx, tn)
	projects := pg.NewProjectService(e)
	if _, err := projects.CreateProject(tctx, "before"); err != nil {
		t.Fatal(err)
	}
	admin, err := pgxpool.New(ctx, os.Getenv("SILO_TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK "+pgx.Identifier{cfg.SharedSchema, "projects"}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	if _, err := projects.CreateProject(tctx, "during"); silo.ErrorCode(err) != silo.EUNAVAILABLE {
		t.Fatalf("a write blocked past lock_timeout: %v, want unavailable", err)
	}
	tx.Rollback(ctx)
	ps, _, err := projects.Projects(tctx, silo.Page{Limit: 10}, silo.ProjectFilter{})
	if err != nil || len(ps) != 1 {
		t.Fatalf("after the lock: %d projects, %v; want the first only", len(ps), err)
	}
}
