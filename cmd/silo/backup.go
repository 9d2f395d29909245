package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/silohq/silo/internal/replication"
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
	cfg, err := replication.ReadConfigFile(c.Litestream, c.Data)
	if errors.Is(err, os.ErrNotExist) && c.Litestream == defaultLitestream {
		return replication.ParseConfig(strings.NewReader(replication.DefaultConfigYAML), c.Data)
	}
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--litestream %s: %v", c.Litestream, err)}
	}
	return cfg, nil
}

// openBackup starts the embedded Litestream. On an empty data dir whose
// replica exists (disaster recovery: a new machine with the same
// litestream.yml) it first restores the catalog; tenants then restore
// lazily on first use, or all at once with `silo restore --all`.
func openBackup(ctx context.Context, c *Config, catPath string, log *slog.Logger) (*replication.Replicator, error) {
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
	if _, err := os.Stat(catPath); errors.Is(err, os.ErrNotExist) {
		if err := rep.Restore(ctx, catPath, catPath, timeZero, 0); err == nil {
			log.Info("backup: restored the catalog from its replica (empty data dir)")
		} else {
			log.Debug("backup: no catalog replica to restore; starting fresh", "err", err)
			_ = os.Remove(catPath)
		}
	}
	return rep, nil
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

var timeZero time.Time
