package catalog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"golang.org/x/sync/errgroup"
)

// openTwice opens one catalog file twice: as the server and as the CLI
// would, each with its own connections and lookup cache.
func openTwice(t *testing.T) (server, cli *catalog.Catalog) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	for _, c := range []**catalog.Catalog{&server, &cli} {
		var err error
		if *c, err = catalog.Open(context.Background(), path, sqlite.Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { (*c).Close() })
	}
	return server, cli
}

// TestLookupCacheSeesOtherWriters: the request path caches lookups, yet a
// change made through another Catalog on the same file (as the CLI does
// from another process) is seen at the very next lookup.
func TestLookupCacheSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	server, cli := openTwice(t)

	secret, hash := catalog.NewToken()
	tn := &silo.Tenant{ID: "t1", Slug: "acme", Name: "Acme", Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
	if err := cli.CreateTenant(ctx, tn, "owner", hash); err != nil {
		t.Fatal(err)
	}
	// Warm the server's cache.
	for range 3 {
		if _, err := server.TenantBySlug(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if err := server.Authenticate(ctx, "t1", secret); err != nil {
			t.Fatal(err)
		}
	}
	toks, _ := cli.Tokens(ctx, "t1")
	if err := cli.RevokeToken(ctx, "t1", toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := server.Authenticate(ctx, "t1", secret); silo.ErrorCode(err) != silo.EUNAUTHORIZED {
		t.Fatalf("revoked token still accepted: %v", err)
	}
	if err := cli.SetStatus(ctx, "t1", silo.TenantDeleting); err != nil {
		t.Fatal(err)
	}
	if _, err := server.TenantBySlug(ctx, "acme"); silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
		t.Fatalf("deleting tenant still resolved: %v", err)
	}
	// And a new token works at once too.
	secret2, _, err := cli.CreateToken(ctx, "t1", "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Authenticate(ctx, "t1", secret2); err != nil {
		t.Fatalf("new token: %v", err)
	}
}

// TestLookupCacheConcurrentRevocations: many requests share each freshness
// check, yet none of them may be answered by a check that started before it
// arrived. Each goroutine revokes its own token through another Catalog (as
// the CLI would) and must see the revocation at its very next lookup, while
// the others keep the server's check busy.
func TestLookupCacheConcurrentRevocations(t *testing.T) {
	ctx := context.Background()
	server, cli := openTwice(t)

	const workers, rounds = 8, 15
	ids := make([]silo.TenantID, workers)
	for w := range workers {
		_, hash := catalog.NewToken()
		ids[w] = silo.TenantID(fmt.Sprintf("t%d", w))
		tn := &silo.Tenant{ID: ids[w], Slug: fmt.Sprintf("acme%d", w), Name: "Acme", Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
		if err := cli.CreateTenant(ctx, tn, "owner", hash); err != nil {
			t.Fatal(err)
		}
	}
	var g errgroup.Group
	for w := range workers {
		id := ids[w]
		g.Go(func() error {
			for r := range rounds {
				secret, tok, err := cli.CreateToken(ctx, id, fmt.Sprintf("r%d", r))
				if err != nil {
					return err
				}
				if err := server.Authenticate(ctx, id, secret); err != nil {
					return fmt.Errorf("%s round %d: new token refused: %w", id, r, err)
				}
				if err := cli.RevokeToken(ctx, id, tok.ID); err != nil {
					return err
				}
				if err := server.Authenticate(ctx, id, secret); silo.ErrorCode(err) != silo.EUNAUTHORIZED {
					return fmt.Errorf("%s round %d: revoked token still accepted: %v", id, r, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
