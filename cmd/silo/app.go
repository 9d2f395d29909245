package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/silohq/silo/internal/catalog"
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

	Addr            string
	BaseDomain      string
	OperatorToken   string
	ShutdownTimeout time.Duration
	LogLevel        string
}

func (c *Config) dataFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", "./data", "data directory (created if missing)")
	fs.StringVar(&c.Durability, "durability", "normal", "normal: no acknowledged write lost to a process crash; full: nor to power loss (fsync per commit)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
}

func (c *Config) storeFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxOpenTenants, "max-open-tenants", 1000, "tenant files kept open (LRU)")
	fs.DurationVar(&c.TenantIdleTimeout, "tenant-idle-timeout", 5*time.Minute, "close a tenant file unused this long (0: never)")
	fs.BoolVar(&c.MigrateOnOpen, "migrate-on-open", true, "migrate a tenant file that is behind on its first open; if false such a tenant answers 503 tenant_migrating")
	fs.StringVar(&c.DefaultStrategy, "default-strategy", string(silo.StrategyDatabase), "placement of new tenants")
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
	log     *slog.Logger
}

func openApp(ctx context.Context, c *Config, log *slog.Logger) (*app, error) {
	dur := sqlite.Durability(c.Durability)
	if dur != sqlite.DurabilityNormal && dur != sqlite.DurabilityFull {
		return nil, &usageError{fmt.Sprintf("--durability must be normal or full, not %q", c.Durability)}
	}
	strategy := silo.Strategy(c.DefaultStrategy)
	if !strategy.Valid() {
		return nil, &usageError{fmt.Sprintf("--default-strategy: unknown strategy %q", c.DefaultStrategy)}
	}
	if c.MaxOpenTenants < 1 {
		return nil, &usageError{"--max-open-tenants must be at least 1"}
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return nil, err
	}
	cat, err := catalog.Open(ctx, filepath.Join(c.Data, "catalog.db"), sqlite.Options{Durability: dur})
	if err != nil {
		return nil, err
	}
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir:    c.Data,
		SQLite: sqlite.Options{Durability: dur, MaxConns: 4, CacheKiB: 1024},
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
		return nil, err
	}
	return &app{catalog: cat, store: store, tenants: tenants.New(cat, store, strategy, log), log: log}, nil
}

// Close closes every tenant file, then the catalog.
func (a *app) Close(ctx context.Context) error {
	return errors.Join(a.store.Close(ctx), a.catalog.Close())
}

// handler builds the HTTP API over the app's storage; serve and bench
// share it so that a benchmark measures exactly what serve runs.
func (a *app) handler(cfg server.Config) http.Handler {
	return server.New(cfg, server.Deps{
		Directory:  a.catalog,
		Admin:      a.tenants,
		Projects:   tenantdb.NewProjectService(a.store),
		Tasks:      tenantdb.NewTaskService(a.store),
		CacheStats: a.store.Cache().Stats,
		Logger:     a.log,
	})
}
