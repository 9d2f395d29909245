package tenantdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silohq/silo/internal/latency"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
)

// BenchmarkCacheHit is one borrow and release of a handle already open:
// the cache's cost on every request. The parallel variant shows the cost
// of its one mutex under contention (-cpu sets the goroutines).
//
//	go test -run '^$' -bench CacheHit -cpu 1,2,16 ./internal/tenantdb/
func BenchmarkCacheHit(b *testing.B) {
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "t.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	open := func(context.Context, silo.TenantID) (*sql.DB, error) { return db, nil }
	closeFn := func(silo.TenantID, *sql.DB) error { return nil }
	const tenants = 1000
	ids := make([]silo.TenantID, tenants)
	for i := range ids {
		ids[i] = silo.TenantID(fmt.Sprintf("t%04d", i))
	}
	newCache := func() *tenantdb.Cache {
		c := tenantdb.NewCache(tenantdb.CacheConfig{Capacity: tenants}, open, closeFn)
		for _, id := range ids { // warm: every tenant open
			_, release, err := c.Acquire(context.Background(), id)
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
		return c
	}
	b.Run("serial", func(b *testing.B) {
		c := newCache()
		defer c.Close(context.Background())
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			_, release, err := c.Acquire(ctx, ids[i%tenants])
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		c := newCache()
		defer c.Close(context.Background())
		ctx := context.Background()
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(n.Add(1)) * 7919
			for pb.Next() {
				i++
				_, release, err := c.Acquire(ctx, ids[i%tenants])
				if err != nil {
					b.Error(err)
					return
				}
				release()
			}
		})
	})
}

// BenchmarkColdOpen is a request's cost when its tenant's file is closed:
// Acquire opens the file (stat, sqlite.Open with the DSN pragmas, the
// schema-version gate), the first query is answered, and the release
// evicts the previous tenant (closed in the background, whose CPU this
// benchmark also pays). A cache of one over 200 provisioned tenants, round
// robin, so that every op opens. It reports the open-to-first-answer
// quantiles (target: p99 ≤ 3 ms).
//
//	go test -run '^$' -bench ColdOpen -benchtime 5000x ./internal/tenantdb/
func BenchmarkColdOpen(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir:           dir,
		SQLite:        sqlite.Options{MaxConns: 4, CacheKiB: 1024}, // as cmd/silo's openApp
		Cache:         tenantdb.CacheConfig{Capacity: 1},
		MigrateOnOpen: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close(ctx)
	projects := tenantdb.NewProjectService(store)
	const tenants = 200
	ctxs := make([]context.Context, tenants)
	ids := make([]string, tenants)
	for i := range tenants {
		t := &silo.Tenant{ID: silo.TenantID(fmt.Sprintf("cold-%04d", i)), Slug: fmt.Sprintf("cold-%04d", i), Strategy: silo.StrategyDatabase, Status: silo.TenantActive}
		if err := store.Provision(ctx, t.ID); err != nil {
			b.Fatal(err)
		}
		ctxs[i] = silo.NewContextWithTenant(ctx, t)
		p, err := projects.CreateProject(ctxs[i], "Apollo")
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
	}
	before := store.Cache().Stats()
	var lat latency.Histogram
	b.ResetTimer()
	for i := range b.N {
		k := i % tenants
		t0 := time.Now()
		if _, err := projects.Project(ctxs[k], ids[k]); err != nil {
			b.Fatal(err)
		}
		lat.Observe(time.Since(t0))
	}
	b.StopTimer()
	after := store.Cache().Stats()
	if hits := after.Hits - before.Hits; hits > 0 {
		b.Fatalf("%d of %d ops were cache hits", hits, b.N)
	}
	b.ReportMetric(float64(lat.Quantile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.Quantile(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(after.OpenLatencyP50, "open-p50-ms")
	b.ReportMetric(after.OpenLatencyP99, "open-p99-ms")
}
