package pg_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

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
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return g
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
