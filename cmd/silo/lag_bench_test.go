package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/silohq/silo/internal/latency"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// BenchmarkReplicationLag measures, with the default backup settings, the
// time from an acknowledged write to the moment the replica holds it (the
// replica's newest transaction moves past the one before the write):
//
//	go test -run '^$' -bench ReplicationLag -benchtime 20x ./cmd/silo/
func BenchmarkReplicationLag(b *testing.B) {
	ctx := context.Background()
	c := &Config{Data: b.TempDir(), Durability: "normal", MaxOpenTenants: 10, MigrateOnOpen: true,
		DefaultStrategy: "database", Backup: true, Litestream: defaultLitestream, LogLevel: "error"}
	a, err := openApp(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(ctx)
	t, _, err := a.tenants.Create(ctx, tenants.NewTenant{Slug: "lag"})
	if err != nil {
		b.Fatal(err)
	}
	tctx := silo.NewContextWithTenant(ctx, t)
	projects := tenantdb.NewProjectService(a.store)
	projects.Projects(tctx, silo.Page{}, silo.ProjectFilter{}) // open and register it
	name := string(t.ID) + ".db"
	var lag latency.Histogram
	b.ResetTimer()
	for i := range b.N {
		before, err := a.backup.Status(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := projects.CreateProject(tctx, fmt.Sprint("p", i)); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			st, err := a.backup.Status(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			if st.TXID > before.TXID {
				break
			}
			if time.Since(acked) > 30*time.Second {
				b.Fatal("write never replicated")
			}
			time.Sleep(10 * time.Millisecond)
		}
		lag.Observe(time.Since(acked))
		time.Sleep(time.Duration(i%7) * 97 * time.Millisecond) // spread writes over the poll cycle
	}
	b.ReportMetric(lag.Quantile(0.5).Seconds(), "lag-p50-s")
	b.ReportMetric(lag.Quantile(0.99).Seconds(), "lag-p99-s")
}
