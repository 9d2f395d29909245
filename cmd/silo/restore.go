package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/silohq/silo/internal/replication"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

// runRestore is `silo restore SLUG [--at T | --txid N] [--to FILE]` and
// `silo restore --all`.
func runRestore(ctx context.Context, e env, args []string) error {
	var c Config
	var at, to, serverURL string
	var txid uint64
	var all bool
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	c.dataFlags(fs)
	c.storeFlags(fs)
	c.backupFlags(fs)
	fs.StringVar(&at, "at", "", "point in time to restore to (RFC 3339); default: the latest")
	fs.Uint64Var(&txid, "txid", 0, "transaction to restore to; default: the latest")
	fs.StringVar(&to, "to", "", "write the restored copy to this file instead of replacing the tenant")
	fs.BoolVar(&all, "all", false, "restore every tenant whose file is missing (disaster recovery)")
	fs.StringVar(&serverURL, "server", "", "restore in place through this running silo serve (its operator API)")
	fs.StringVar(&c.OperatorToken, "operator-token", "", "the server's operator token (with --server)")
	pos, err := interspersed(fs, args, e)
	if err != nil {
		return err
	}
	if all != (len(pos) == 0) || len(pos) > 1 {
		return &usageError{"restore: want one SLUG, or --all"}
	}
	if len(pos) == 1 {
		pos[0] = silo.LowerASCII(pos[0])
	}
	if all && (at != "" || txid != 0 || to != "") {
		return &usageError{"restore --all brings back the latest state of every missing file; --at, --txid and --to are for one SLUG"}
	}
	if all && serverURL != "" {
		// Restoring files behind a serving process would race its own
		// restores; and it needs none: it restores each missing tenant on
		// the tenant's first request.
		return &usageError{"restore --all runs without a server: a running silo serve restores each missing tenant on its first request; stop it to restore them all at once"}
	}
	if to != "" && serverURL != "" {
		// Refused rather than guessed: --server means "in place", and a
		// copy is written locally, from the replica, beside any server.
		return &usageError{"--to writes a copy from the replica and needs no --server; without --to, --server restores in place"}
	}
	var atSet, txidSet bool
	fs.Visit(func(f *flag.Flag) {
		atSet = atSet || f.Name == "at"
		txidSet = txidSet || f.Name == "txid"
	})
	if err := refuseEmpty(fs, "to", "server"); err != nil {
		return err
	}
	var atp *string
	var txidp *uint64
	if atSet {
		atp = &at
	}
	if txidSet {
		txidp = &txid
	}
	when, txid, err := tenants.ParsePoint(atp, txidp)
	if err != nil {
		return &usageError{"restore: " + silo.ErrorMessage(err)}
	}
	if c.NoBackup {
		return &usageError{"restore needs backups; drop --no-backup"}
	}
	if serverURL != "" {
		return callOperator(ctx, e, "POST", serverURL, c.OperatorToken, "/api/operator/tenants/"+url.PathEscape(pos[0])+"/restore", restoreBody(atp, txidp))
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	if to != "" {
		// A copy for inspection reads only the replica: safe beside a
		// running server, and no need for the data dir's lock.
		b, done, err := openBackupReader(ctx, &c, log)
		if err != nil {
			return err
		}
		defer done()
		start := time.Now()
		if err := b.RestoreTo(ctx, pos[0], to, when, txid); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "restored %s to %s in %s\n", pos[0], to, time.Since(start).Round(time.Millisecond))
		return nil
	}
	// In place: only the process that serves the tenants may do it.
	advice := fmt.Sprintf("restore through it: silo restore %s --server http://HOST:PORT --operator-token TOKEN (or --to FILE for a copy)", strings.Join(pos, " "))
	if all {
		advice = "it restores each missing tenant on its first request (stop it to restore them all at once)"
	}
	made := "" // the outermost directory this command made, if any
	if all {
		// Disaster recovery on a new machine: the data dir may not exist
		// yet, only the replica (elsewhere, per --litestream).
		if made = firstMissing(c.Data); made != "" {
			if err := os.MkdirAll(c.Data, 0o700); err != nil {
				return err
			}
		}
	} else if err := requireDataDir(c.Data); err != nil {
		return err
	}
	unlock, err := lockOrAdvise(c.Data, advice)
	if err != nil {
		return err // a server took the dir meanwhile: it is not ours to remove
	}
	defer unlock()
	c.Backup, c.Existing = true, true
	a, err := openApp(ctx, &c, log)
	if errors.Is(err, errNoCatalog) && made != "" {
		// Nothing to restore: take back the directories this made. Only
		// then: once the catalog is back, the dir holds restored data
		// even if some tenants fail.
		os.RemoveAll(made)
	}
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))
	b := tenants.NewBackups(a.tenants, a.backup)
	if all {
		prog := newProgress(e.stderr, "restore")
		failed := 0
		n, err := b.RestoreMissing(ctx, prog.Start, func(slug string, err error) {
			if err != nil {
				failed++
				fmt.Fprintf(e.stderr, "restore %s: %v\n", slug, err)
			}
			prog.Step(slug, err)
		})
		prog.Finish()
		fmt.Fprintf(e.stdout, "restored %d tenant(s) whose files were missing\n", n-failed)
		if err == nil && failed > 0 {
			err = fmt.Errorf("%d tenant(s) could not be restored; rerun to retry them", failed)
		}
		return err
	}
	start := time.Now()
	if err := b.Restore(ctx, pos[0], when, txid); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored %s in place in %s\n", pos[0], time.Since(start).Round(time.Millisecond))
	return nil
}

// openBackupReader opens the data dir and a replicator that only reads
// replicas (it registers nothing), which is safe beside a running server.
func openBackupReader(ctx context.Context, c *Config, log *slog.Logger) (*tenants.Backups, func(), error) {
	c.Existing = true
	a, err := openApp(ctx, c, log)
	if err != nil {
		return nil, nil, err
	}
	rep, err := standaloneReplicator(c, log)
	if err != nil {
		a.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return tenants.NewBackups(a.tenants, rep), func() {
		rep.Close(context.WithoutCancel(ctx))
		a.Close(context.WithoutCancel(ctx))
	}, nil
}

// standaloneReplicator reads replicas without registering anything.
func standaloneReplicator(c *Config, log *slog.Logger) (*replication.Replicator, error) {
	cfg, err := loadLitestream(c)
	if err != nil {
		return nil, err
	}
	return replication.New(cfg, log)
}

// runBackup is `silo backup status`.
func runBackup(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "status" {
		return &usageError{"backup: want status"}
	}
	var c Config
	var serverURL string
	fs := flag.NewFlagSet("backup status", flag.ContinueOnError)
	c.dataFlags(fs)
	c.storeFlags(fs)
	c.backupFlags(fs)
	fs.StringVar(&serverURL, "server", "", "ask this running silo serve (its operator API), which also knows the lag of open tenants")
	fs.StringVar(&c.OperatorToken, "operator-token", "", "the server's operator token (with --server)")
	pos, err := interspersed(fs, args[1:], e)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("backup status: unexpected argument %q", pos[0])}
	}
	if err := refuseEmpty(fs, "server"); err != nil {
		return err
	}
	if serverURL != "" {
		return callOperator(ctx, e, "GET", serverURL, c.OperatorToken, "/api/operator/backup", nil)
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	b, done, err := openBackupReader(ctx, &c, log)
	if err != nil {
		return err
	}
	defer done()
	st, err := b.Status(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tPLACEMENT\tTXID\tREPLICATED AT\tAGE\tERROR")
	for _, b := range st {
		when, age := "-", "-"
		if !b.UpdatedAt.IsZero() {
			when = b.UpdatedAt.UTC().Format(time.RFC3339)
			age = time.Since(b.UpdatedAt).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", b.Slug, b.Strategy, b.TXID, when, age, b.Err)
	}
	return tw.Flush()
}

// restoreBody is the operator API's restore request: only the fields given.
func restoreBody(at *string, txid *uint64) map[string]any {
	body := map[string]any{}
	if at != nil {
		body["at"] = *at
	}
	if txid != nil {
		body["txid"] = *txid
	}
	return body
}

// firstMissing is the outermost directory of path that does not exist ("" if
// path exists): what MkdirAll(path) would make.
func firstMissing(path string) string {
	top := ""
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			return top
		}
		top = p
		if filepath.Dir(p) == p {
			return top
		}
	}
}
