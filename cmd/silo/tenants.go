package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

func runTenants(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return &usageError{"tenants: want create, list, delete, undelete or move"}
	}
	sub, args := args[0], args[1:]
	var c Config
	var name, strategy, to, serverURL string
	fs := flag.NewFlagSet("tenants "+sub, flag.ContinueOnError)
	c.dataFlags(fs)
	c.storeFlags(fs)
	c.backupFlags(fs)
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "display name (default: the slug)")
		fs.StringVar(&strategy, "strategy", "", "placement: database, shared, schema or pgshared (the last two need --postgres; default: --default-strategy)")
	case "move", "delete":
		if sub == "move" {
			fs.StringVar(&to, "to", "", "target placement: database, shared, schema or pgshared")
		}
		fs.StringVar(&serverURL, "server", "", "base URL of the running silo serve to act through (its operator API)")
		fs.StringVar(&c.OperatorToken, "operator-token", "", "the server's operator token (with --server)")
	}
	pos, err := interspersed(fs, args, e)
	if err != nil {
		return err
	}
	want := map[string]int{"create": 1, "delete": 1, "list": 0, "move": 1, "undelete": 1}
	n, ok := want[sub]
	if !ok {
		return &usageError{fmt.Sprintf("tenants: unknown subcommand %q", sub)}
	}
	if len(pos) != n {
		return &usageError{fmt.Sprintf("tenants %s: want %d argument(s), got %d", sub, n, len(pos))}
	}
	if sub != "create" && n > 0 {
		pos[0] = silo.LowerASCII(pos[0])
	}
	if err := refuseEmpty(fs, "server", "strategy"); err != nil {
		return err
	}
	if sub == "create" {
		// Before anything opens: a refused create leaves no fleet behind.
		if err := silo.ValidateNewSlug(pos[0]); err != nil {
			return &usageError{"tenants create: " + silo.ErrorMessage(err)}
		}
		if name != "" {
			if _, err := silo.CleanText(name, "name", silo.EINVALIDNAME); err != nil {
				return &usageError{"tenants create: --name: " + silo.ErrorMessage(err)}
			}
		}
		if strategy != "" && !silo.Strategy(strategy).Valid() {
			return &usageError{fmt.Sprintf("tenants create: --strategy must be one of %v", silo.Strategies)}
		}
		if silo.Strategy(strategy).Postgres() && c.Postgres == "" {
			return &usageError{fmt.Sprintf("tenants create: --strategy %s needs --postgres", strategy)}
		}
	}
	if sub == "move" || sub == "delete" {
		if sub == "move" && !silo.Strategy(to).Valid() {
			return &usageError{fmt.Sprintf("tenants move: --to must be one of %v", silo.Strategies)}
		}
		if serverURL != "" {
			if sub == "delete" {
				return callOperator(ctx, e, "DELETE", serverURL, c.OperatorToken, "/api/operator/tenants/"+url.PathEscape(pos[0]), nil)
			}
			return callOperator(ctx, e, "POST", serverURL, c.OperatorToken, "/api/operator/tenants/"+url.PathEscape(pos[0])+"/move", map[string]string{"to": to})
		}
		// Moves and deletes must be made by the process that serves the
		// tenant: only it can hold the tenant's requests, and close its
		// file and backup, before the data changes place or goes.
		if err := requireDataDir(c.Data); err != nil {
			return err
		}
		unlock, err := lockOrAdvise(c.Data, "act through it: add --server http://HOST:PORT --operator-token TOKEN")
		if err != nil {
			return err
		}
		defer unlock()
		// Acting for a stopped server, as it would: the file a move fills
		// and the file a delete removes are synced to their replicas.
		c.Backup = !c.NoBackup
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	c.Existing = sub != "create"
	a, err := openApp(ctx, &c, log)
	if err != nil {
		return err
	}
	if (sub == "create" || sub == "undelete") && !c.Backup {
		// Runs after the deferred Close below.
		defer syncCatalogIfStopped(ctx, &c, log)
	}
	defer a.Close(context.WithoutCancel(ctx))

	switch sub {
	case "create":
		t, token, err := a.tenants.Create(ctx, tenants.NewTenant{Slug: pos[0], Name: name, Strategy: silo.Strategy(strategy)})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "created tenant %s (%s); its owner token, shown once:\n", t.Slug, t.ID)
		fmt.Fprintln(e.stdout, token)
	case "list":
		ts, err := a.tenants.ListWithSizes(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SLUG\tID\tNAME\tPLACEMENT\tSIZE\tSTATUS\tVERSION\tCREATED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Slug, t.ID, t.Name, t.Strategy, humanBytes(t.Bytes), t.Status, t.SchemaVersion, t.CreatedAt.Format("2006-01-02T15:04:05Z"))
		}
		return tw.Flush()
	case "move":
		st, err := a.tenants.Move(ctx, pos[0], silo.Strategy(to))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "moved %s from %s to %s: %d projects, %d tasks, verified (sha256 %.12s), requests paused %s\n",
			pos[0], st.From, st.To, st.Projects, st.Tasks, st.Hash, st.Pause.Round(time.Microsecond))
	case "delete":
		if err := a.tenants.Delete(ctx, pos[0]); err != nil {
			return err
		}
		if t, err := a.catalog.TenantBySlugAnyStatus(ctx, pos[0]); err == nil && t.Strategy != silo.StrategyDatabase {
			fmt.Fprintf(e.stderr, "deleted tenant %s; placed %s, it had no backup of its own and cannot be undeleted\n", pos[0], t.Strategy)
		} else if c.NoBackup {
			fmt.Fprintf(e.stderr, "deleted tenant %s; with --no-backup its last writes were not synced to its replica: an undelete brings back only what the replica held (if it holds anything)\n", pos[0])
		} else {
			fmt.Fprintf(e.stderr, "deleted tenant %s; its backup is kept for the deleted-retention period (silo tenants undelete %s)\n", pos[0], pos[0])
		}
	case "undelete":
		// Restores from the replica without registering anything, so it is
		// safe beside a running server: the file is back before the
		// catalog says the tenant is.
		rep, err := standaloneReplicator(&c, log)
		if err != nil {
			return err
		}
		defer rep.Close(context.WithoutCancel(ctx))
		err = a.tenants.Undelete(ctx, pos[0], func(ctx context.Context, name, out string) error {
			return rep.Restore(ctx, name, out, time.Time{}, 0)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "undeleted tenant %s\n", pos[0])
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
