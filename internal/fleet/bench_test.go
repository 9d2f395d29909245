package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/fleet"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/sqlite"
)

// BenchmarkMigrateFleet creates SILO_BENCH_TENANTS tenants (default
// 10,000) at schema version 1, then times one `silo migrate` of all of them
// to the latest version, with -cpu as the concurrency:
//
//	go test -run '^$' -bench MigrateFleet -benchtime 1x -cpu 4 ./internal/fleet/
func BenchmarkMigrateFleet(b *testing.B) {
	n := 10000
	if s := os.Getenv("SILO_BENCH_TENANTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		e := newEnv(b, true)
		// A version-1 file to copy: cheaper than signing up and rolling back
		// every tenant.
		v1 := filepath.Join(b.TempDir(), "v1.db")
		db, _ := sqlite.Open(v1, sqlite.Options{})
		if err := sqlite.SetWAL(ctx, db); err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.store.Migrator().Migrate(ctx, db, 1); err != nil {
			b.Fatal(err)
		}
		db.Close()
		data, _ := os.ReadFile(v1)
		for i := range n {
			t := &silo.Tenant{ID: silo.TenantID(uuid.Must(uuid.NewV7()).String()), Slug: fmt.Sprintf("b%05d", i),
				Name: "bench", Strategy: silo.StrategyDatabase, Status: silo.TenantActive, SchemaVersion: 1}
			_, hash := catalog.NewToken()
			if err := e.catalog.CreateTenant(ctx, t, "owner", hash); err != nil {
				b.Fatal(err)
			}
			p, _ := e.store.Path(t.ID)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := e.fleet.Migrate(ctx, fleet.Options{Concurrency: runtime.GOMAXPROCS(0)})
		b.StopTimer()
		if err != nil || res.Migrated != n {
			b.Fatalf("%+v %v", res, err)
		}
		b.ReportMetric(res.Elapsed.Seconds(), "s/fleet")
		b.ReportMetric(float64(n)/res.Elapsed.Seconds(), "tenants/s")
	}
}
