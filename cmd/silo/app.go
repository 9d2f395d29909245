package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/pg"
	"github.com/silohq/silo/internal/placement"
	"github.com/silohq/silo/internal/replication"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// Config is every setting of Silo; each command registers the flags it uses.
type Config struct {
	Data              string
	Durability        string
	MaxOpenTenants    int
	TenantIdleTimeout time.Duration
	MigrateOnOpen     bool
	DefaultStrategy   string
	TenantMaxBytes    int64
	Postgres          string // URL of the app role; "" keeps Silo PostgreSQL-free
	PostgresAdmin     string // URL of an owner role, to create the shared tables
	DeletedRetention  time.Duration

	Addr            string
	BaseDomain      string
	OperatorToken   string
	ShutdownTimeout time.Duration
	LogLevel        string

	// PostgresLazy (serve) starts while PostgreSQL is unreachable: its
	// tenants answer 503 until it is back; other commands refuse to run.
	PostgresLazy bool

	Backup     bool   // set by the commands that run the embedded Litestream
	Litestream string // path of litestream.yml
	NoBackup   bool

	// Existing is set by every command that acts on a fleet rather than
	// starting one (all but serve and tenants create): a mistyped --data,
	// or a data dir with no catalog that its replica could not bring back,
	// is an error for them, never a new empty fleet. An empty catalog
	// would also hide the backup from the next start, which would
	// replicate it as the newest state.
	Existing bool
}

func (c *Config) dataFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", "./data", "data directory (serve and tenants create make it if missing; other commands need it)")
	fs.StringVar(&c.Durability, "durability", "normal", "normal: no acknowledged write lost to a process crash; full: nor to power loss (fsync per commit)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
}

func (c *Config) storeFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxOpenTenants, "max-open-tenants", 1000, "tenant files kept open (LRU)")
	fs.DurationVar(&c.TenantIdleTimeout, "tenant-idle-timeout", 5*time.Minute, "close a tenant file unused this long (0: never)")
	fs.BoolVar(&c.MigrateOnOpen, "migrate-on-open", true, "migrate a tenant file that is behind on its first open; if false such a tenant answers 503 tenant_migrating")
	fs.StringVar(&c.DefaultStrategy, "default-strategy", string(silo.StrategyDatabase), "placement of new tenants: database or shared")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL URL (a plain role, not the tables' owner) enabling the schema and pgshared placements")
	fs.StringVar(&c.PostgresAdmin, "postgres-admin", "", "PostgreSQL URL of an owner role: at start, create or update the pgshared tables and their row-level security, and grant --postgres's role what it needs")
	fs.Int64Var(&c.TenantMaxBytes, "tenant-max-bytes", 0, "storage quota of each tenant file in bytes; a write past it answers 507 quota_exceeded (0: none)")
}

func (c *Config) logger(e env) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, &usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// app is Silo's storage opened on one data directory.
type app struct {
	catalog *catalog.Catalog
	store   *tenantdb.Store
	tenants *tenants.Service
	backup  *replication.Replicator // nil with backups off
	pg      *pg.Engine              // nil without --postgres
	log     *slog.Logger
}

// check refuses store settings that cannot work, before anything is made
// on disk.
func (c *Config) check() error {
	dur := sqlite.Durability(c.Durability)
	strategy := silo.Strategy(c.DefaultStrategy)
	switch {
	case dur != sqlite.DurabilityNormal && dur != sqlite.DurabilityFull:
		return &usageError{fmt.Sprintf("--durability must be normal or full, not %q", c.Durability)}
	case !strategy.Valid():
		return &usageError{fmt.Sprintf("--default-strategy: unknown strategy %q", c.DefaultStrategy)}
	case strategy.Postgres() && c.Postgres == "":
		return &usageError{fmt.Sprintf("--default-strategy %s needs --postgres", strategy)}
	case c.MaxOpenTenants < 1:
		return &usageError{"--max-open-tenants must be at least 1"}
	case c.TenantMaxBytes < 0:
		return &usageError{"--tenant-max-bytes must not be negative"}
	case c.TenantIdleTimeout < 0:
		return &usageError{"--tenant-idle-timeout must not be negative (0: never)"}
	}
	if !c.NoBackup {
		// A missing or malformed --litestream file is found here, before
		// anything is made on disk (the data dir, its lock).
		if _, err := loadLitestream(c); err != nil {
			return err
		}
	}
	return nil
}

// tenantFileCount counts the tenant files in dir (tenantdb.IsTenantFile).
func tenantFileCount(dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if tenantdb.IsTenantFile(e.Name()) && e.Type().IsRegular() {
			n++
		}
	}
	return n
}

func openApp(ctx context.Context, c *Config, log *slog.Logger) (*app, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	dur := sqlite.Durability(c.Durability)
	strategy := silo.Strategy(c.DefaultStrategy)
	if c.Existing {
		if err := requireDataDir(c.Data); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return nil, err
	}
	catPath := filepath.Join(c.Data, "catalog.db")
	var rep *replication.Replicator
	if c.Backup {
		var err error
		if rep, err = openBackup(ctx, c, log); err != nil {
			return nil, err
		}
	} else if !c.NoBackup {
		if err := recoverMissingStandalone(ctx, c, log); err != nil {
			return nil, err
		}
	} else if err := refuseToHideCatalog(ctx, c, log); err != nil {
		return nil, err
	}
	if _, err := os.Stat(catPath); errors.Is(err, os.ErrNotExist) || sqlite.Empty(catPath) {
		if c.Existing {
			closeBackup(ctx, rep, "")
			return nil, noCatalog(c)
		}
		// A new catalog beside tenant files: the catalog was lost (deleted
		// or truncated) with no replica that held it. A new one would name
		// none of the files, and the start's sweep would remove them as
		// orphans of interrupted signups.
		if n := tenantFileCount(filepath.Join(c.Data, "tenants")); n > 0 {
			closeBackup(ctx, rep, "")
			return nil, fmt.Errorf("%s has no catalog (catalog.db is missing or empty) but %d tenant files in %s: the catalog was lost, and a new one would take them for orphans and remove them. Restore catalog.db (from its replica: start with the litestream.yml that backed it up; or from a copy), or move the tenants directory away to start a new fleet", c.Data, n, filepath.Join(c.Data, "tenants"))
		}
	}
	cat, err := catalog.Open(ctx, catPath, sqlite.Options{Durability: dur})
	if err != nil {
		closeBackup(ctx, rep, "")
		return nil, err
	}
	if rep != nil {
		if err := rep.Register(ctx, catPath); err != nil {
			log.Warn("backup: register catalog failed; it will catch up at the next start", "err", err)
		}
	}
	var backup tenantdb.Backup
	var onBackup func(context.Context, silo.TenantID, bool)
	if rep != nil {
		backup = rep
		onBackup = func(ctx context.Context, id silo.TenantID, registered bool) {
			var err error
			if registered {
				err = cat.MarkBackupDirty(context.WithoutCancel(ctx), id)
			} else {
				err = cat.ClearBackupDirty(context.WithoutCancel(ctx), id)
			}
			if err != nil {
				log.Error("backup: record state", "tenant", id, "err", err)
			}
		}
	}
	var backupSeen func(context.Context, silo.TenantID) (bool, error)
	var onUnbacked func(context.Context, silo.TenantID)
	if rep != nil {
		backupSeen = cat.BackupSeen
	} else {
		// Files changed with no replica following: the next serve with
		// backups syncs them once it serves (BackupUnbacked).
		onUnbacked = func(ctx context.Context, id silo.TenantID) {
			if err := cat.MarkBackupUnbacked(context.WithoutCancel(ctx), id); err != nil {
				log.Error("backup: record a change made without backups", "tenant", id, "err", err)
			}
		}
	}
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Backup:          backup,
		OnBackupState:   onBackup,
		BackupSeen:      backupSeen,
		OnUnbackedWrite: onUnbacked,
		Dir:             c.Data,
		SQLite:          sqlite.Options{Durability: dur, MaxConns: 4, CacheKiB: 1024},
		Cache: tenantdb.CacheConfig{
			Capacity:    c.MaxOpenTenants,
			IdleTimeout: c.TenantIdleTimeout,
		},
		MigrateOnOpen: c.MigrateOnOpen,
		Logger:        log,
		OnMigrate: func(ctx context.Context, m silo.MigrationRun) {
			if err := cat.RecordMigration(ctx, m); err != nil {
				log.Error("record migration", "tenant", m.Tenant, "err", err)
			}
		},
	})
	if err != nil {
		cat.Close()
		closeBackup(ctx, rep, catPath)
		return nil, err
	}
	store.SetTenantMaxBytes(c.TenantMaxBytes)
	a := &app{catalog: cat, store: store, tenants: tenants.New(cat, store, strategy, log), backup: rep, log: log}
	if c.Postgres != "" {
		if a.pg, err = openPostgres(ctx, c, log); err != nil {
			a.Close(ctx)
			return nil, err
		}
		a.tenants.SetPostgres(a.pg)
		a.store.SetExternal(a.pg)
	}
	return a, nil
}

// postgresRetry is how often a server that started without PostgreSQL
// tries it again.
const postgresRetry = 5 * time.Second

// openPostgres connects the PostgreSQL engine, first running its setup as
// the owner role if --postgres-admin is given.
func openPostgres(ctx context.Context, c *Config, log *slog.Logger) (*pg.Engine, error) {
	var setup func(context.Context) error
	if c.PostgresAdmin != "" {
		u, err := url.Parse(c.Postgres)
		if err != nil || u.User == nil || u.User.Username() == "" {
			return nil, &usageError{"--postgres must be a postgres:// URL naming the app's role"}
		}
		setup = func(ctx context.Context) error {
			if err := pg.Setup(ctx, c.PostgresAdmin, u.User.Username(), pg.Config{}); err != nil {
				return fmt.Errorf("postgres setup: %w", err)
			}
			return nil
		}
	}
	if c.PostgresLazy {
		e, err := pg.OpenLazy(ctx, c.Postgres, pg.Config{}, setup, postgresRetry, log)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		return e, nil
	}
	if setup != nil {
		if err := setup(ctx); err != nil {
			return nil, err
		}
	}
	e, err := pg.Open(ctx, c.Postgres, pg.Config{})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return e, nil
}

// Close closes every tenant file (each syncs its backup as it closes), then
// the catalog, then syncs the catalog's backup.
func (a *app) Close(ctx context.Context) error {
	if a.pg != nil {
		a.pg.Close()
	}
	err := errors.Join(a.store.Close(ctx), a.catalog.Close())
	return errors.Join(err, closeBackup(ctx, a.backup, filepath.Join(filepath.Dir(a.store.Dir()), "catalog.db")))
}

// handler builds the HTTP API over the app's storage; serve and bench
// share it so that a benchmark measures exactly what serve runs.
func (a *app) handler(cfg server.Config) http.Handler {
	var pgProjects placement.ProjectService
	var pgTasks placement.TaskService
	if a.pg != nil {
		pgProjects, pgTasks = pg.NewProjectService(a.pg), pg.NewTaskService(a.pg)
	}
	deps := server.Deps{
		Directory:  a.catalog,
		Admin:      a.tenants,
		Projects:   placement.NewProjects(a.store, tenantdb.NewProjectService(a.store), pgProjects),
		Tasks:      placement.NewTasks(a.store, tenantdb.NewTaskService(a.store), pgTasks),
		CacheStats: a.store.Cache().Stats,
		Quota:      a.store,
		Logger:     a.log,
	}
	if a.backup != nil {
		deps.Backups = tenants.NewBackups(a.tenants, a.backup)
	}
	return server.New(cfg, deps)
}

// noCatalog is the error of a command that needs a fleet where there is
// none: it names what was looked at.
func noCatalog(c *Config) error {
	if c.NoBackup {
		return fmt.Errorf("%w in %s (check --data; with backups on, it would be restored from its replica)", errNoCatalog, c.Data)
	}
	return fmt.Errorf("%w in %s, and none in its replica (check --data and --litestream)", errNoCatalog, c.Data)
}

var errNoCatalog = errors.New("no catalog")
