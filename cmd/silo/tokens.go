package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// runTokens manages a tenant's API tokens: list, create, revoke.
//
// Tokens live in the catalog only, so these commands open the catalog and
// nothing else: they are safe to run beside a live server on the same data
// directory, which is the point of revoking a leaked token. The server
// checks the catalog on every request, so a revocation takes effect at once.
func runTokens(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return &usageError{"tokens: want list, create or revoke"}
	}
	sub, args := args[0], args[1:]
	var c Config
	var name string
	fs := flag.NewFlagSet("tokens "+sub, flag.ContinueOnError)
	c.dataFlags(fs)
	c.backupFlags(fs)
	if sub == "create" {
		fs.StringVar(&name, "name", "cli", "a label for the token, shown by list")
	}
	pos, err := interspersed(fs, args, e)
	if err != nil {
		return err
	}
	want := map[string]int{"list": 1, "create": 1, "revoke": 2}
	n, ok := want[sub]
	if !ok {
		return &usageError{fmt.Sprintf("tokens: unknown subcommand %q", sub)}
	}
	if len(pos) != n {
		return &usageError{fmt.Sprintf("tokens %s: want %d argument(s), got %d", sub, n, len(pos))}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cat, err := openCatalog(ctx, &c, log)
	if err != nil {
		return err
	}
	if sub != "list" {
		defer syncCatalogIfStopped(ctx, &c, log) // after the deferred Close below
	}
	defer cat.Close()
	t, err := cat.TenantBySlugAnyStatus(ctx, silo.LowerASCII(pos[0]))
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		toks, err := cat.Tokens(ctx, t.ID)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tREVOKED")
		for _, k := range toks {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.Format("2006-01-02T15:04:05Z"), revoked)
		}
		return tw.Flush()
	case "create":
		if t.Status != silo.TenantActive {
			// Deleted tenants are not served: the token would never work,
			// and an undelete should not come back with one nobody asked
			// for after the delete.
			if t.Strategy != silo.StrategyDatabase {
				return fmt.Errorf("tenant %s is %s; it cannot be undeleted, and a token for it would never work", t.Slug, t.Status)
			}
			return fmt.Errorf("tenant %s is %s; undelete it before making tokens for it", t.Slug, t.Status)
		}
		secret, k, err := cat.CreateToken(ctx, t.ID, name)
		if silo.ErrorCode(err) == silo.EINVALIDNAME {
			return &usageError{"tokens create: --name: " + silo.ErrorMessage(err)}
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "created token %s for tenant %s; its secret, shown once:\n", k.ID, t.Slug)
		fmt.Fprintln(e.stdout, secret)
	case "revoke":
		if err := cat.RevokeToken(ctx, t.ID, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "revoked token %s of tenant %s\n", pos[1], t.Slug)
	}
	return nil
}

// openCatalog opens the catalog of an existing data directory: a typo in
// --data must not create an empty one. A catalog lost with its replica
// intact is restored first, as every command does (disaster recovery).
func openCatalog(ctx context.Context, c *Config, log *slog.Logger) (*catalog.Catalog, error) {
	dur := sqlite.Durability(c.Durability)
	if dur != sqlite.DurabilityNormal && dur != sqlite.DurabilityFull {
		return nil, &usageError{fmt.Sprintf("--durability must be normal or full, not %q", c.Durability)}
	}
	if _, err := os.Stat(c.Data); err != nil {
		return nil, fmt.Errorf("no data directory at %s (check --data)", c.Data)
	}
	if !c.NoBackup {
		if err := recoverMissingStandalone(ctx, c, log); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(c.Data, "catalog.db")
	// Empty is as lost as missing: opened, it would become a new catalog,
	// and the next start would take every tenant file for an orphan.
	if _, err := os.Stat(path); err != nil || sqlite.Empty(path) {
		return nil, noCatalog(c)
	}
	return catalog.Open(ctx, path, sqlite.Options{Durability: dur})
}
