package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/silohq/silo/internal/catalog/catalogsql"
	"github.com/silohq/silo/internal/replication"
	"github.com/silohq/silo/internal/sqlite"
)

const defaultLitestream = "litestream.yml"

func (c *Config) backupFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Litestream, "litestream", defaultLitestream, "Litestream settings (replicas of the catalog and of each tenant); the built-in default if the default file is missing")
	fs.BoolVar(&c.NoBackup, "no-backup", false, "turn continuous backup off")
}

// loadLitestream reads the Litestream settings. The default file falls back
// to the same settings built into the binary, so `silo serve` backs up to
// data/replica with no setup wherever it runs; a file named explicitly
// must exist.
func loadLitestream(c *Config) (*replication.Config, error) {
	cfg, path, err := readLitestream(c)
	if err != nil {
		return nil, err
	}
	// Backups on with no entry for the catalog or the tenants would serve
	// those files unreplicated, with only a warning per tenant to say so.
	for _, p := range []string{filepath.Join(c.Data, "catalog.db"), filepath.Join(c.Data, "tenants", "x.db")} {
		if _, _, err := cfg.Lookup(p); err != nil {
			return nil, &usageError{fmt.Sprintf("--litestream %s: no dbs: entry replicates %s (the built-in litestream.yml has one for data/catalog.db and a dir: entry for data/tenants); add it, or pass --no-backup", path, p)}
		}
	}
	return cfg, nil
}

// readLitestream reads the settings as loadLitestream does, without asking
// them to cover the catalog and the tenants (for commands that only look
// at a replica), and returns the file's path.
func readLitestream(c *Config) (*replication.Config, string, error) {
	path := c.Litestream
	if path == "" { // a command without the flag: as if left at its default
		path = defaultLitestream
	}
	cfg, err := replication.ReadConfigFile(path, c.Data)
	if errors.Is(err, os.ErrNotExist) && path == defaultLitestream {
		cfg, err = replication.ParseConfig(strings.NewReader(replication.DefaultConfigYAML), c.Data)
		return cfg, path, err
	}
	if err != nil {
		return nil, path, &usageError{fmt.Sprintf("--litestream %s: %v", c.Litestream, err)}
	}
	return cfg, path, nil
}

// openBackup starts the embedded Litestream. On an empty data dir whose
// replica exists (disaster recovery: a new machine with the same
// litestream.yml) it first restores the catalog and shared.db
// (recoverMissing); tenants then restore lazily on first use, or all at
// once with `silo restore --all`.
func openBackup(ctx context.Context, c *Config, log *slog.Logger) (*replication.Replicator, error) {
	cfg, err := loadLitestream(c)
	if err != nil {
		return nil, err
	}
	rep, err := replication.New(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := rep.Open(ctx); err != nil {
		return nil, err
	}
	if err := recoverMissing(ctx, rep, log); err != nil {
		rep.Close(ctx)
		return nil, err
	}
	return rep, nil
}

// recoverMissing restores each single-file database of the settings (the
// catalog, shared.db) that is missing from the data dir but has a replica:
// disaster recovery, a new machine with the same litestream.yml. It runs
// before anything opens them, for every command, not only serve: a command
// that created an empty catalog first would hide the backup from the next
// start, which would then replicate the empty file as the newest state. A
// replica that cannot be read is an error for the same reason.
func recoverMissing(ctx context.Context, rep *replication.Replicator, log *slog.Logger) error {
	sharedPath := filepath.Join(rep.Config().DataDir, "shared.db")
	sharedEmpty := false
	for _, dbc := range rep.Config().DBs {
		if dbc.Path == "" {
			continue
		}
		// A file truncated to nothing is as lost as a missing one: opened,
		// it would become a new empty catalog (and the sweep would then
		// take every tenant file for an orphan) or an empty shared.db.
		empty := sqlite.Empty(dbc.Path)
		if _, err := os.Stat(dbc.Path); !errors.Is(err, os.ErrNotExist) && !empty {
			continue
		}
		st, err := rep.Status(ctx, dbc.Path)
		if err != nil {
			return fmt.Errorf("backup: %s is missing and its replica cannot be read: %w (restore it when the replica is back, or pass --no-backup to start without it)", dbc.Path, err)
		}
		if st.TXID == 0 {
			sharedEmpty = sharedEmpty || dbc.Path == sharedPath
			continue // nothing replicated yet: a first start
		}
		// What a lost file left beside it describes the lost file: a stale
		// -wal or hot -journal would be applied to the restored one. So do
		// the downloads of earlier attempts that a crash cut short (each
		// as large as the file): a crash loop must not fill the disk.
		stale, err := filepath.Glob(dbc.Path + replication.RestoreTempInfix + "*")
		if err != nil {
			return err
		}
		if empty {
			stale = append(stale, dbc.Path)
		}
		for _, p := range append(stale, dbc.Path+"-wal", dbc.Path+"-shm", dbc.Path+"-journal") {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := replication.RemoveLocalState(dbc.Path); err != nil {
			return err
		}
		if err := rep.Restore(ctx, dbc.Path, dbc.Path, time.Time{}, 0); err != nil {
			return fmt.Errorf("backup: restore missing %s from its replica: %w", dbc.Path, err)
		}
		log.Info("backup: restored a missing file from its replica", "file", dbc.Path, "txid", st.TXID)
	}
	if sharedEmpty {
		// A first start, unless the catalog (perhaps just restored) places
		// tenants in shared.db: then their rows are lost, and serving them
		// from a new empty shared.db would hide it.
		n, err := sharedTenants(ctx, filepath.Join(rep.Config().DataDir, "catalog.db"))
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("backup: shared.db is missing and its replica is empty, but the catalog places %d tenant(s) in it: their rows are not in the backup (check the replica settings; to accept the loss, start once with --no-backup, which creates an empty shared.db)", n)
		}
	}
	return nil
}

// sharedTenants counts the tenants the catalog at path places in shared.db
// (0 if there is no catalog yet).
func sharedTenants(ctx context.Context, path string) (int, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || sqlite.Empty(path) {
		return 0, nil
	}
	db, err := sqlite.Open(path, sqlite.Options{MaxConns: 1, MustExist: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	n, err := catalogsql.New(db).CountSharedTenants(ctx)
	if err != nil {
		return 0, fmt.Errorf("backup: read the catalog: %w", err)
	}
	return int(n), nil
}

// recoverMissingStandalone is recoverMissing for commands that run without
// the embedded Litestream: it reads the replicas only if a file is missing.
func recoverMissingStandalone(ctx context.Context, c *Config, log *slog.Logger) error {
	cfg, err := loadLitestream(c)
	if err != nil {
		return err
	}
	missing := false
	for _, dbc := range cfg.DBs {
		if _, err := os.Stat(dbc.Path); dbc.Path != "" && (errors.Is(err, os.ErrNotExist) || sqlite.Empty(dbc.Path)) {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	rep, err := replication.New(cfg, log)
	if err != nil {
		return err
	}
	defer rep.Close(context.WithoutCancel(ctx))
	return recoverMissing(ctx, rep, log)
}

// refuseToHideCatalog is for a command run with --no-backup on a data dir
// without a catalog: if the replica holds one, a new empty catalog made now
// would hide it, and the next start with backups would replicate the empty
// one as the newest state. Best effort: settings or a replica that cannot
// be read say nothing either way.
func refuseToHideCatalog(ctx context.Context, c *Config, log *slog.Logger) error {
	catPath := filepath.Join(c.Data, "catalog.db")
	if _, err := os.Stat(catPath); !errors.Is(err, os.ErrNotExist) && !sqlite.Empty(catPath) {
		return nil
	}
	cfg, _, err := readLitestream(c)
	if err != nil {
		return nil
	}
	rep, err := replication.New(cfg, log)
	if err != nil {
		return nil
	}
	defer rep.Close(context.WithoutCancel(ctx))
	if st, err := rep.Status(ctx, catPath); err == nil && st.TXID > 0 {
		return fmt.Errorf("%s has no catalog but its replica holds one: start without --no-backup to restore it (with --no-backup a new, empty fleet would hide it)", c.Data)
	}
	return nil
}

// closeBackup syncs the catalog (if registered) and stops Litestream.
func closeBackup(ctx context.Context, rep *replication.Replicator, catPath string) error {
	if rep == nil {
		return nil
	}
	var err error
	if catPath != "" && rep.Registered(catPath) {
		err = rep.Unregister(ctx, catPath)
	}
	return errors.Join(err, rep.Close(ctx))
}

// syncCatalogIfStopped is for commands that write the catalog without the
// embedded Litestream (tokens, tenants create and undelete, migrate). With a
// server running, its Litestream picks the change up. With none, nothing
// would until the next start, and a disaster meanwhile would lose it: a
// revoked token would work again. So, when no server runs, register the
// catalog, sync it to its replica and stop. Call it after the command
// closed the catalog.
func syncCatalogIfStopped(ctx context.Context, c *Config, log *slog.Logger) {
	if c.NoBackup {
		return
	}
	unlock, err := lockDataDir(c.Data)
	if errors.Is(err, errServing) {
		return
	} else if err != nil {
		log.Warn("backup: catalog not synced", "err", err)
		return
	}
	defer unlock()
	cfg, err := loadLitestream(c)
	if err != nil {
		log.Warn("backup: catalog not synced", "err", err)
		return
	}
	catPath := filepath.Join(c.Data, "catalog.db")
	if _, _, err := cfg.Lookup(catPath); err != nil {
		return // these settings do not replicate the catalog
	}
	ctx = context.WithoutCancel(ctx)
	rep, err := replication.New(cfg, log)
	if err == nil {
		defer rep.Close(ctx)
		if err = rep.Open(ctx); err == nil {
			if err = rep.Register(ctx, catPath); err == nil {
				err = rep.Unregister(ctx, catPath)
			}
		}
	}
	if err != nil {
		log.Warn("backup: the change is made but the catalog's replica is behind until the next start", "err", err)
	}
}
