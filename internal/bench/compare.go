package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/silohq/silo/internal/silo"
)

// CompareConfig is `silo bench --compare`: the same mix against several
// scenarios in one process, and optionally the write-scaling runs.
type CompareConfig struct {
	Config // Tenants, MaxOpenTenants, Duration (per scenario), mix, dist...

	// WriteScaling adds writes/s of tenants in their own files against the
	// same number of tenants in the shared file, at each of WriteLevels.
	WriteScaling  bool
	WriteTenants  int           // tenants written to; 0 means min(Tenants, 1000)
	WriteDuration time.Duration // per level and placement; 0 means 5 s
	WriteLevels   []int         // 0 means 1, 2, 4, 16
	// PGTenants, if positive, adds the PostgreSQL placements (schema and
	// pgshared) with this many tenants each; the opener must connect it.
	PGTenants int
}

// Comparison is the outcome of Compare.
type Comparison struct {
	Scenarios    []*Report    `json:"scenarios"`
	WriteScaling []WritePoint `json:"write_scaling,omitempty"`
	// WriteTenants is how many tenants the write-scaling runs spread over.
	WriteTenants int     `json:"write_tenants,omitempty"`
	Provisioned  int     `json:"provisioned"`
	ProvisionS   float64 `json:"provision_s"`
	ElapsedS     float64 `json:"elapsed_s"`
}

// WritePoint is writes/s at one concurrency, per placement.
type WritePoint struct {
	Concurrency    int     `json:"concurrency"`
	DatabasePerSec float64 `json:"database_writes_per_s"`
	DatabaseP99    float64 `json:"database_p99_ms"`
	DatabaseErrors int64   `json:"database_errors"`
	SharedPerSec   float64 `json:"shared_writes_per_s"`
	SharedP99      float64 `json:"shared_p99_ms"`
	SharedErrors   int64   `json:"shared_errors"`
}

// fdsPerHandle is what one open tenant handle costs in descriptors: the
// file, its -wal, and its -shm (with backups) or the owner's lock (without).
const fdsPerHandle = 3

// fittingTenants is how many tenants can all be open at once under the
// process's descriptor limit, with room for extra connections of hot
// tenants, the catalog, sockets and the load generator.
func fittingTenants(n, fdLimit int) int {
	if fdLimit <= 0 {
		return n
	}
	m := (fdLimit - 1500) / fdsPerHandle
	if m >= 1000 {
		m = m / 1000 * 1000
	}
	return max(1, min(n, m))
}

// Compare provisions N tenants in their own files and N in the shared
// file (once; a kept data dir is reused), then runs the same mix against:
// one tenant (the ceiling), N tenants with every one fitting in the cache,
// N tenants with cfg.MaxOpenTenants slots, and N tenants in the shared
// file. Each scenario gets a freshly opened app, so each starts cold.
func Compare(ctx context.Context, open Opener, dir string, cfg CompareConfig) (*Comparison, error) {
	cfg.Defaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	start := time.Now()
	f, err := loadFleet(dir)
	if err != nil {
		return nil, err
	}
	out := &Comparison{}
	for _, p := range []silo.Strategy{silo.StrategyDatabase, silo.StrategyShared} {
		prov, err := ensure(ctx, open, dir, f, p, cfg.Tenants, cfg.ProvisionConcurrency, cfg.Progress)
		out.Provisioned += prov.Created
		out.ProvisionS += prov.Elapsed.Seconds()
		if err != nil {
			return nil, err
		}
	}
	n := cfg.Tenants
	db, shared := f.Database[:n], f.Shared[:n]
	fit := fittingTenants(n, readProcess().FDLimit)

	type scenario struct {
		name      string
		tenants   []Tenant
		capacity  int
		placement silo.Strategy
	}
	fitName := "all tenants cached"
	if fit < n {
		fitName = fmt.Sprintf("all cached (%d: fd limit)", fit)
	}
	// The cache-smaller-than-the-fleet scenario needs a cache smaller than
	// the fleet: with a small --tenants, a tenth of it.
	small := cfg.MaxOpenTenants
	if small >= n {
		small = max(1, n/10)
	}
	scenarios := []scenario{
		{"ceiling: one tenant", db[:1], cfg.MaxOpenTenants, silo.StrategyDatabase},
		{fitName, db[:fit], fit + 64, silo.StrategyDatabase},
		{fmt.Sprintf("cache %d < working set", small), db, small, silo.StrategyDatabase},
		{"shared placement", shared, cfg.MaxOpenTenants, silo.StrategyShared},
	}
	if cfg.PGTenants > 0 {
		for _, p := range []silo.Strategy{silo.StrategySchema, silo.StrategyPGShared} {
			prov, err := ensure(ctx, open, dir, f, p, cfg.PGTenants, cfg.ProvisionConcurrency, cfg.Progress)
			out.Provisioned += prov.Created
			out.ProvisionS += prov.Elapsed.Seconds()
			if err != nil {
				return nil, err
			}
		}
		scenarios = append(scenarios,
			scenario{fmt.Sprintf("schema placement (%d)", cfg.PGTenants), f.Schema[:cfg.PGTenants], cfg.MaxOpenTenants, silo.StrategySchema},
			scenario{fmt.Sprintf("pgshared placement (%d)", cfg.PGTenants), f.PGShared[:cfg.PGTenants], cfg.MaxOpenTenants, silo.StrategyPGShared})
	}
	for _, sc := range scenarios {
		c := cfg.Config
		c.MaxOpenTenants, c.Placement = sc.capacity, sc.placement
		// "All cached" means all cached: open every tenant before the
		// warm-up, or the run measures the cold start instead.
		c.touchAll = sc.capacity >= len(sc.tenants)
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "scenario %q: %d tenants, %d slots, %s\n", sc.name, len(sc.tenants), sc.capacity, sc.placement)
		}
		rep, err := runOn(ctx, open, dir, sc.tenants, c)
		if err != nil {
			return nil, fmt.Errorf("scenario %q: %w", sc.name, err)
		}
		rep.Scenario = sc.name
		out.Scenarios = append(out.Scenarios, rep)
	}
	if ceil := out.Scenarios[0].ReqPerSec; ceil > 0 {
		for _, r := range out.Scenarios {
			r.CeilingRatio = r.ReqPerSec / ceil
		}
	}
	if cfg.WriteScaling {
		ws, w, err := writeScaling(ctx, open, dir, f, cfg)
		if err != nil {
			return nil, err
		}
		out.WriteScaling, out.WriteTenants = ws, w
	}
	out.ElapsedS = time.Since(start).Seconds()
	return out, nil
}

// WriteScaling runs only the write-scaling part of Compare.
func WriteScaling(ctx context.Context, open Opener, dir string, cfg CompareConfig) (*Comparison, error) {
	cfg.Defaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	start := time.Now()
	f, err := loadFleet(dir)
	if err != nil {
		return nil, err
	}
	out := &Comparison{}
	w := cfg.writeTenants()
	for _, p := range []silo.Strategy{silo.StrategyDatabase, silo.StrategyShared} {
		prov, err := ensure(ctx, open, dir, f, p, w, cfg.ProvisionConcurrency, cfg.Progress)
		out.Provisioned += prov.Created
		out.ProvisionS += prov.Elapsed.Seconds()
		if err != nil {
			return nil, err
		}
	}
	if out.WriteScaling, out.WriteTenants, err = writeScaling(ctx, open, dir, f, cfg); err != nil {
		return nil, err
	}
	out.ElapsedS = time.Since(start).Seconds()
	return out, nil
}

func (cfg *CompareConfig) writeTenants() int {
	if cfg.WriteTenants > 0 {
		return cfg.WriteTenants
	}
	return min(cfg.Tenants, 1000)
}

// writeScaling measures writes/s over the same number of tenants in each
// placement, all cached (uniform choice), so that what differs is where
// the rows live: many files with a writer each, or one file and one writer.
func writeScaling(ctx context.Context, open Opener, dir string, f *Fleet, cfg CompareConfig) ([]WritePoint, int, error) {
	w := min(cfg.writeTenants(), len(f.Database), len(f.Shared))
	levels := cfg.WriteLevels
	if len(levels) == 0 {
		levels = []int{1, 2, 4, 16}
	}
	d := cfg.WriteDuration
	if d <= 0 {
		d = 5 * time.Second
	}
	points := make([]WritePoint, len(levels))
	for _, p := range []silo.Strategy{silo.StrategyDatabase, silo.StrategyShared} {
		ts := f.Database[:w]
		if p == silo.StrategyShared {
			ts = f.Shared[:w]
		}
		if err := writeLevels(ctx, open, dir, ts, p, levels, d, cfg, points); err != nil {
			return nil, 0, err
		}
	}
	return points, w, nil
}

// writeLevels runs the write mix at each concurrency on one app, whose
// every tenant was written once first (opened, its WAL started), so that
// the levels measure writing rather than opening.
func writeLevels(ctx context.Context, open Opener, dir string, ts []Tenant, p silo.Strategy, levels []int, d time.Duration, cfg CompareConfig, points []WritePoint) (err error) {
	app, err := open(ctx, dir, len(ts)+64)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, app.Close(cctx))
	}()
	for i, conc := range levels {
		c := cfg.Config
		c.Mix, c.Dist, c.Placement = MixWrite, DistUniform, p
		c.Concurrency, c.Duration, c.Warmup = conc, d, min(cfg.Warmup, time.Second)
		c.MaxOpenTenants = len(ts) + 64
		c.CPUProfile = nil
		c.touchAll = i == 0
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "write scaling: %s, %d tenants, concurrency %d\n", p, len(ts), conc)
		}
		rep, err := runApp(ctx, app, ts, c)
		if err != nil {
			return fmt.Errorf("write scaling %s at %d: %w", p, conc, err)
		}
		points[i].Concurrency = conc
		if p == silo.StrategyShared {
			points[i].SharedPerSec, points[i].SharedP99, points[i].SharedErrors = rep.ReqPerSec, rep.Latency.P99, rep.ErrorCount()
		} else {
			points[i].DatabasePerSec, points[i].DatabaseP99, points[i].DatabaseErrors = rep.ReqPerSec, rep.Latency.P99, rep.ErrorCount()
		}
	}
	return nil
}
