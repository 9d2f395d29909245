package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/silohq/silo/internal/fleet"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

// BenchmarkSchemas1000 signs up 1,000 tenants in the `schema` placement,
// then migrates all of them down to version 1 and up again with
// `silo migrate`'s machinery (concurrency 4), and reports each phase:
//
//	SILO_TEST_POSTGRES_URL=... go test -run '^$' -bench Schemas1000 -benchtime 1x ./cmd/silo/
func BenchmarkSchemas1000(b *testing.B) {
	app, admin := pgURLs(b)
	ctx := context.Background()
	for range b.N {
		c := &Config{Data: b.TempDir(), Durability: "normal", MaxOpenTenants: 10, MigrateOnOpen: true,
			DefaultStrategy: "database", LogLevel: "error", Postgres: app, PostgresAdmin: admin}
		a, err := openApp(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		const n = 1000
		start := time.Now()
		for i := range n {
			if _, _, err := a.tenants.Create(ctx, tenants.NewTenant{Slug: fmt.Sprintf("sch%04d", i), Strategy: silo.StrategySchema}); err != nil {
				b.Fatal(err)
			}
		}
		signup := time.Since(start)
		fl := fleet.New(a.catalog, a.store, c.Data, nil)
		fl.SetSchemas(a.pg)
		down, err := fl.Migrate(ctx, fleet.Options{Target: 1, Concurrency: 4})
		if err != nil || down.Migrated != n {
			b.Fatalf("%+v %v", down, err)
		}
		up, err := fl.Migrate(ctx, fleet.Options{Concurrency: 4})
		if err != nil || up.Migrated != n {
			b.Fatalf("%+v %v", up, err)
		}
		b.ReportMetric(float64(n)/signup.Seconds(), "signups/s")
		b.ReportMetric(float64(signup.Microseconds())/1000/n, "ms/signup")
		b.ReportMetric(up.Elapsed.Seconds(), "s/migrate-1000-up")
		b.ReportMetric(down.Elapsed.Seconds(), "s/migrate-1000-down")
		for _, tn := range mustTenants(b, a) {
			a.pg.DropTenant(ctx, tn.ID, tn.Strategy)
		}
		a.Close(ctx)
	}
}

func mustTenants(b *testing.B, a *app) []*silo.Tenant {
	ts, err := a.catalog.Tenants(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return ts
}
