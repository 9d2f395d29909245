package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/silohq/silo/internal/tenants"
)

func runTenants(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return &usageError{"tenants: want create, list or delete"}
	}
	sub, args := args[0], args[1:]
	var c Config
	var name string
	fs := flag.NewFlagSet("tenants "+sub, flag.ContinueOnError)
	c.dataFlags(fs)
	c.storeFlags(fs)
	if sub == "create" {
		fs.StringVar(&name, "name", "", "display name (default: the slug)")
	}
	pos, err := interspersed(fs, args, e)
	if err != nil {
		return err
	}
	want := map[string]int{"create": 1, "delete": 1, "list": 0}
	n, ok := want[sub]
	if !ok {
		return &usageError{fmt.Sprintf("tenants: unknown subcommand %q", sub)}
	}
	if len(pos) != n {
		return &usageError{fmt.Sprintf("tenants %s: want %d argument(s), got %d", sub, n, len(pos))}
	}
	log, err := c.logger(e)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, &c, log)
	if err != nil {
		return err
	}
	defer a.Close(context.WithoutCancel(ctx))

	switch sub {
	case "create":
		t, token, err := a.tenants.Create(ctx, tenants.NewTenant{Slug: pos[0], Name: name})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "created tenant %s (%s); its owner token, shown once:\n", t.Slug, t.ID)
		fmt.Fprintln(e.stdout, token)
	case "list":
		ts, err := a.tenants.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SLUG\tID\tNAME\tSTRATEGY\tSTATUS\tVERSION\tCREATED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Slug, t.ID, t.Name, t.Strategy, t.Status, t.SchemaVersion, t.CreatedAt.Format("2006-01-02T15:04:05Z"))
		}
		return tw.Flush()
	case "delete":
		if err := a.tenants.Delete(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "deleted tenant %s\n", pos[0])
	}
	return nil
}
