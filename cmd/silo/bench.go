package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/silohq/silo/internal/bench"
	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/placement"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// runBench is `silo bench`: Silo in-process on 127.0.0.1:0 over a temp
// (or kept) data dir, driven over real HTTP; see internal/bench.
//
// Unlike the other commands it reads no SILO_* environment variables: a
// server's SILO_DATA must never point a benchmark at real tenants.
func runBench(ctx context.Context, e env, args []string) error {
	var (
		c            Config
		cfg          bench.Config
		dir          string
		placement    string
		asJSON       bool
		compare      bool
		writeScaling bool
		writeDur     time.Duration
		cpuProfile   string
		pgTenants    int
		target       string
		opToken      string
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&dir, "data", "", "data directory to provision into and keep (default: a temp dir, removed at the end); tenants a previous run left there are reused")
	fs.StringVar(&c.Durability, "durability", "normal", "normal or full, as for serve")
	fs.StringVar(&c.LogLevel, "log-level", "warn", "the server's log level")
	fs.IntVar(&cfg.Tenants, "tenants", 10000, "tenants to provision and drive")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time per run (--compare: per scenario, default 15s)")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured time before each measured run")
	fs.StringVar(&cfg.Mix, "mix", bench.MixRead, "read, write, or mixed (80 % reads, 20 % creates/updates)")
	fs.StringVar(&cfg.Dist, "dist", bench.DistZipf, "tenant choice: uniform or zipf")
	fs.Float64Var(&cfg.ZipfS, "zipf-s", 1.1, "Zipf exponent (> 1)")
	fs.IntVar(&cfg.MaxOpenTenants, "max-open-tenants", 1000, "tenant files kept open (LRU)")
	fs.StringVar(&placement, "placement", string(silo.StrategyDatabase), "database (a file per tenant) or shared (data/shared.db)")
	fs.IntVar(&cfg.ProvisionConcurrency, "provision-concurrency", 8, "parallel signups while provisioning")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the tenant choice")
	fs.BoolVar(&asJSON, "json", false, "write the report as JSON")
	fs.BoolVar(&compare, "compare", false, "run the scenarios side by side: one tenant, all cached, cache < working set, shared; then write scaling")
	fs.BoolVar(&writeScaling, "write-scaling", false, "run only the write-scaling comparison (own files vs shared file at concurrency 1, 2, 4, 16)")
	fs.DurationVar(&writeDur, "write-duration", 5*time.Second, "measured time per write-scaling run")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase to this file (single runs)")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL URL (the app's role): enables --placement schema|pgshared, and adds both to --compare")
	fs.StringVar(&c.PostgresAdmin, "postgres-admin", "", "PostgreSQL URL of an owner role, to set up the pgshared tables first")
	fs.IntVar(&pgTenants, "pg-tenants", 1000, "tenants in each PostgreSQL placement with --compare (a schema signup costs ~15 ms)")
	fs.BoolVar(&c.Backup, "backup", false, "run with continuous backup (the built-in litestream.yml, replica in the data dir), to measure its cost")
	fs.StringVar(&target, "target", "", "drive a Silo already serving at this URL (e.g. silo serve --data DIR --no-backup, in another process) with the tenants an earlier run provisioned in --data DIR, instead of one started in-process")
	fs.StringVar(&opToken, "operator-token", "", "with --target: the server's operator token, to report its handle cache")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		return &usageError{err.Error()} // exit 2, as every command-line mistake
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("bench: unexpected argument %q", fs.Arg(0))}
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if compare && !durationSet {
		cfg.Duration = 15 * time.Second
	}
	cfg.Placement = silo.Strategy(placement)
	if err := cfg.Check(); err != nil {
		return &usageError{"bench: " + err.Error()}
	}
	if cfg.Placement.Postgres() && c.Postgres == "" {
		return &usageError{fmt.Sprintf("bench: --placement %s needs --postgres", cfg.Placement)}
	}
	if compare && writeScaling {
		return &usageError{"bench: --compare already includes the write-scaling runs"}
	}
	if writeDur <= 0 {
		return &usageError{"bench: --write-duration must be positive"}
	}
	if target != "" {
		if dir == "" || compare || writeScaling || c.Backup || cpuProfile != "" || c.Postgres != "" {
			return &usageError{"bench: --target needs --data DIR (the fleet the server serves) and takes none of --compare, --write-scaling, --backup, --cpuprofile, --postgres"}
		}
		return benchTarget(ctx, e, target, opToken, dir, cfg, asJSON)
	}
	if c.Backup && !compare && !writeScaling && (cfg.Tenants <= 2*bench.LagProbes || cfg.Placement != silo.StrategyDatabase) {
		// The probes take tenants of their own out of the load.
		fmt.Fprintf(e.stderr, "bench: replication lag is measured with more than %d tenants in their own files (--placement database); not measured in this run\n", 2*bench.LagProbes)
	}
	c.MigrateOnOpen = true
	c.TenantIdleTimeout = 5 * time.Minute
	c.DefaultStrategy = string(silo.StrategyDatabase)
	log, err := c.logger(e)
	if err != nil {
		return err
	}

	if dir == "" {
		tmp, err := os.MkdirTemp("", "silo-bench-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		// The temp dir goes; so must the tenants it made in PostgreSQL.
		defer dropPGTenants(context.WithoutCancel(ctx), c, tmp, log)
		dir = tmp
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		unlock, err := lockDataDir(dir)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", dir, err)
		}
		defer unlock()
	}
	cfg.Progress = e.stderr
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.CPUProfile = f
	}

	open := benchOpener(c, log)
	var out any
	switch {
	case compare, writeScaling:
		cc := bench.CompareConfig{Config: cfg, WriteScaling: true, WriteDuration: writeDur}
		if c.Postgres != "" {
			cc.PGTenants = pgTenants
		}
		cc.CPUProfile = nil
		var cmp *bench.Comparison
		if compare {
			cmp, err = bench.Compare(ctx, open, dir, cc)
		} else {
			cmp, err = bench.WriteScaling(ctx, open, dir, cc)
		}
		if err != nil {
			return err
		}
		if !asJSON {
			bench.WriteComparisonText(e.stdout, cmp)
		}
		out = cmp
	default:
		rep, err := bench.Run(ctx, open, dir, cfg)
		if err != nil {
			return err
		}
		if !asJSON {
			bench.WriteText(e.stdout, rep)
		}
		out = rep
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return nil
}

// benchTarget drives a server in another process; see bench.RunTarget.
func benchTarget(ctx context.Context, e env, target, opToken, dir string, cfg bench.Config, asJSON bool) error {
	cfg.Progress = e.stderr
	var stats func() (tenantdb.CacheStats, error)
	if opToken != "" {
		// Like the load's own client: no proxy, and a bound on each read so
		// that a stalled server cannot hang the run's progress line.
		client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
		stats = func() (tenantdb.CacheStats, error) {
			raw, err := operatorRequest(ctx, client, "GET", target, opToken, "/api/operator/stats", nil)
			if err != nil {
				return tenantdb.CacheStats{}, err
			}
			var body struct {
				Cache tenantdb.CacheStats `json:"cache"`
			}
			err = json.Unmarshal(raw, &body)
			return body.Cache, err
		}
	}
	rep, err := bench.RunTarget(ctx, target, dir, cfg, stats)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	bench.WriteText(e.stdout, rep)
	return nil
}

// benchOpener opens the app exactly as serve does, with serve's handler
// minus its limits (no signup, rate or in-flight bounds: a benchmark
// measures the path, not the throttles).
func benchOpener(base Config, log *slog.Logger) bench.Opener {
	return func(ctx context.Context, dir string, capacity int) (*bench.App, error) {
		c := base
		c.Data, c.MaxOpenTenants = dir, capacity
		c.NoBackup = !c.Backup // a bench dir is never restored from a replica
		if c.Backup {
			c.Litestream = defaultLitestream
		}
		a, err := openApp(ctx, &c, log)
		if err != nil {
			return nil, err
		}
		app := &bench.App{
			Handler: a.handler(server.Config{BaseDomain: "localhost"}),
			Catalog: a.catalog,
			Store:   a.store,
			Close:   a.Close,
		}
		if a.backup != nil {
			app.ReplicaTXID = func(ctx context.Context, slug string) (uint64, error) {
				t, err := a.catalog.TenantBySlug(ctx, slug)
				if err != nil {
					return 0, err
				}
				st, err := a.backup.Status(ctx, string(t.ID)+".db")
				return st.TXID, err
			}
		}
		if a.pg != nil {
			app.Schemas = a.pg
			app.Projects = placement.NewProjects(a.store, tenantdb.NewProjectService(a.store), pg.NewProjectService(a.pg))
			app.Tasks = placement.NewTasks(a.store, tenantdb.NewTaskService(a.store), pg.NewTaskService(a.pg))
		}
		return app, nil
	}
}

// dropPGTenants drops the PostgreSQL data of the tenants of a bench's data
// dir.
func dropPGTenants(ctx context.Context, base Config, dir string, log *slog.Logger) {
	if base.Postgres == "" {
		return
	}
	c := base
	c.Data, c.MaxOpenTenants, c.PostgresAdmin = dir, 1, ""
	a, err := openApp(ctx, &c, log)
	if err != nil {
		log.Error("bench: drop PostgreSQL tenants", "err", err)
		return
	}
	defer a.Close(ctx)
	ts, _ := a.catalog.Tenants(ctx)
	for _, t := range ts {
		if t.Strategy.Postgres() {
			if err := a.pg.DropTenant(ctx, t.ID, t.Strategy); err != nil {
				log.Error("bench: drop PostgreSQL tenant", "tenant", t.Slug, "err", err)
			}
		}
	}
}
