package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/silohq/silo/internal/fleet"
	"github.com/silohq/silo/internal/silo"
)

func runMigrate(ctx context.Context, e env, args []string) error {
	sub := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	var c Config
	var opts fleet.Options
	var tenantList string
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	c.dataFlags(fs)
	c.backupFlags(fs)
	fs.IntVar(&opts.Concurrency, "concurrency", 4, "tenants migrated in parallel")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL URL: migrate tenants placed in their own schema too")
	fs.StringVar(&tenantList, "tenants", "", "comma-separated slugs (default: every tenant)")
	fs.IntVar(&opts.CanaryPct, "canary", 0, "migrate only this percentage of tenants, chosen stably by id (1-99)")
	fs.BoolVar(&opts.ContinueOnError, "continue-on-error", false, "keep going past failed tenants")
	fs.DurationVar(&opts.BusyTimeout, "busy-timeout", 0, "how long to wait for a tenant file locked by another connection (default 5s)")
	if sub == "down" {
		fs.Int64Var(&opts.Target, "to", -1, "schema version to roll back to (required)")
	}
	if err := parseFlags(fs, args, e); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("migrate %s: unexpected argument %q", sub, fs.Arg(0))}
	}
	if tenantList != "" {
		if opts.CanaryPct != 0 {
			return &usageError{"--tenants and --canary exclude each other"}
		}
		for _, s := range strings.Split(tenantList, ",") {
			if s = strings.TrimSpace(s); s != "" {
				opts.Tenants = append(opts.Tenants, s)
			}
		}
	}
	canarySet := false
	fs.Visit(func(f *flag.Flag) { canarySet = canarySet || f.Name == "canary" })
	// 0 is the flag's "not given": given, it would migrate every tenant,
	// the opposite of a canary.
	if opts.CanaryPct < 0 || opts.CanaryPct > 99 || (canarySet && opts.CanaryPct == 0) {
		return &usageError{"--canary takes a percentage from 1 to 99 (to migrate every tenant, leave it out)"}
	}
	if opts.Concurrency < 0 || opts.Concurrency > 256 {
		return &usageError{"--concurrency takes 1 to 256 tenants at once (0: the default, 4)"}
	}
	if opts.BusyTimeout < 0 {
		return &usageError{"--busy-timeout must not be negative (0: the default, 5s)"}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	// A mistyped --data must not become a new, empty fleet "migrated".
	if err := requireDataDir(c.Data); err != nil {
		return err
	}
	if sub == "down" {
		// A rollback drops what a running server's queries use: its open
		// tenants would answer 500 until it restarts. Only with the
		// server stopped.
		unlock, err := lockOrAdvise(c.Data, "stop it for a rollback (its open tenants would keep querying the newer schema)")
		if err != nil {
			return err
		}
		defer unlock()
	}
	// The fleet opens files itself; the cache settings do not matter here.
	c.MaxOpenTenants, c.DefaultStrategy = 1, "database"
	c.Existing = true
	a, err := openApp(ctx, &c, log)
	if errors.Is(err, errNoCatalog) && sub == "up" {
		// A first deploy that runs "silo migrate && silo serve" on an empty
		// volume: nothing to migrate, and nothing is made (an empty
		// catalog here would hide a backup from the next start).
		fmt.Fprintf(e.stderr, "silo: no fleet in %s yet (no catalog, and none in its replica): nothing to migrate\n", c.Data)
		return nil
	}
	if err != nil {
		return err
	}
	if sub != "status" && sub != "verify" {
		defer syncCatalogIfStopped(ctx, &c, log) // after the deferred Close below
	}
	defer a.Close(context.WithoutCancel(ctx))
	fl := fleet.New(a.catalog, a.store, filepath.Join(c.Data, "templates"), log)
	if a.pg != nil {
		fl.SetSchemas(a.pg)
	}

	switch sub {
	case "up", "down":
		if sub == "down" {
			if opts.Target < 0 {
				return &usageError{"migrate down: --to N (a version from 1 up) is required"}
			}
			if opts.Target == 0 {
				return &usageError{"migrate down: --to 0 would drop every table; the lowest version is 1"}
			}
			if latest := a.store.Migrator().Latest(); opts.Target > latest {
				return &usageError{fmt.Sprintf("migrate down: --to %d is above this binary's latest version, %d", opts.Target, latest)}
			}
		}
		opts.Progress = newProgress(e.stderr, "migrate")
		// With backups, a missing file is a data dir being recovered: the
		// server restores each tenant at its first request and migrates
		// it up then ("silo migrate && silo serve" must get to serve). A
		// rollback cannot leave it for later: restored, it would be ahead
		// of the older binary.
		opts.SkipMissing = !c.NoBackup && sub == "up"
		res, err := fl.Migrate(ctx, opts)
		fmt.Fprintf(e.stdout, "%d tenants: %d migrated, %d already current, %d failed, in %s\n",
			res.Total, res.Migrated, res.Current, len(res.Failed), res.Elapsed.Round(1e6))
		if res.Missing > 0 {
			fmt.Fprintf(e.stdout, "  %d skipped: file missing (a server restores each from its replica at the tenant's first request and migrates it on open, --migrate-on-open; or run silo restore --all, then migrate again), or moved out of its PostgreSQL schema meanwhile\n", res.Missing)
		}
		for _, f := range res.Failed {
			fmt.Fprintf(e.stdout, "  failed %s: %v\n", f.Slug, f.Err)
		}
		if a.pg == nil {
			warnSchemasSkipped(ctx, e, a)
		}
		if err != nil {
			return err
		}
		if res.Stopped && res.Migrated+res.Current+res.Missing+len(res.Failed) < res.Total {
			return fmt.Errorf("stopped after a failure; fix it and rerun (finished tenants are skipped), or pass --continue-on-error")
		}
		if len(res.Failed) > 0 {
			return fmt.Errorf("%d tenant(s) failed; rerun to retry them", len(res.Failed))
		}
		return nil
	case "status":
		st, err := fl.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "binary schema version: %d\n", st.Latest)
		versions := make([]int64, 0, len(st.Versions))
		for v := range st.Versions {
			versions = append(versions, v)
		}
		sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tTENANTS")
		for _, v := range versions {
			fmt.Fprintf(tw, "%d\t%d\n", v, st.Versions[v])
		}
		tw.Flush()
		if len(st.Failed) == 0 {
			fmt.Fprintln(e.stdout, "failed: none")
			return nil
		}
		fmt.Fprintf(e.stdout, "failed: %d\n", len(st.Failed))
		for _, f := range st.Failed {
			fmt.Fprintf(e.stdout, "  %s (at %d, target %d, %s): %s\n", f.Slug, f.To, f.Target, f.FinishedAt.Format("2006-01-02T15:04:05Z"), f.Error)
		}
		return nil
	case "verify":
		drifts, n, skipped, err := fl.Verify(ctx, opts)
		if err != nil {
			return err
		}
		// A file that could not be read (missing, held by a server without
		// backups, corrupt) is not known to have drifted: count it apart.
		unread := 0
		for _, d := range drifts {
			if d.Err != nil {
				unread++
			}
		}
		fmt.Fprintf(e.stdout, "%d tenants verified, %d drifted, %d not readable\n", n, len(drifts)-unread, unread)
		if skipped > 0 {
			fmt.Fprintf(e.stdout, "  %d not checked: placed in PostgreSQL schemas, which have no file to compare (migrate status shows their versions)\n", skipped)
		}
		for _, d := range drifts {
			fmt.Fprintf(e.stdout, "  %s\n", d)
		}
		switch {
		case len(drifts) > unread && unread > 0:
			return fmt.Errorf("%d tenant(s) drifted, %d not readable", len(drifts)-unread, unread)
		case len(drifts) > unread:
			return fmt.Errorf("%d tenant(s) drifted", len(drifts)-unread)
		case unread > 0:
			return fmt.Errorf("%d tenant(s) not readable", unread)
		}
		return nil
	}
	return &usageError{fmt.Sprintf("migrate: unknown subcommand %q (want status, verify or down)", sub)}
}

// warnSchemasSkipped says when tenants placed in their own PostgreSQL
// schema were left out for want of --postgres: a run that reports "0
// tenants" must not read as a fleet at the latest version.
func warnSchemasSkipped(ctx context.Context, e env, a *app) {
	ts, err := a.catalog.Tenants(ctx)
	if err != nil {
		return
	}
	n := 0
	for _, t := range ts {
		if t.Status == silo.TenantActive && t.Strategy == silo.StrategySchema {
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(e.stderr, "note: %d tenant(s) placed in their own PostgreSQL schema were not migrated; pass --postgres to migrate them too\n", n)
	}
}
