package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// Run provisions what cfg needs in dir (reusing the tenants a previous run
// left there), then opens a fresh app on dir with cfg.MaxOpenTenants slots
// and drives it.
func Run(ctx context.Context, open Opener, dir string, cfg Config) (*Report, error) {
	f, err := prepare(&cfg, dir)
	if err != nil {
		return nil, err
	}
	prov, err := ensure(ctx, open, dir, f, cfg.Placement, cfg.Tenants, cfg.ProvisionConcurrency, cfg.Progress)
	if err != nil {
		return nil, err
	}
	ts := (*f.of(cfg.Placement))[:cfg.Tenants]
	rep, err := runOn(ctx, open, dir, ts, cfg)
	if rep != nil {
		rep.setProvisioning(prov)
	}
	return rep, err
}

// prepare fills in cfg's defaults, checks it, and loads the fleet a
// previous run left in dir (empty if none).
func prepare(cfg *Config, dir string) (*Fleet, error) {
	cfg.Defaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return loadFleet(dir)
}

func (r *Report) setProvisioning(p provisioning) {
	r.Provisioned = p.Created
	r.ProvisionS = p.Elapsed.Seconds()
	if p.Created > 0 {
		r.ProvisionPer = ms(p.Elapsed) / float64(p.Created)
	}
}

// runOn opens an app on dir and drives it against ts.
func runOn(ctx context.Context, open Opener, dir string, ts []Tenant, cfg Config) (rep *Report, err error) {
	// Provisioning's garbage is not the server's memory: hand it back to
	// the OS before measuring RSS.
	debug.FreeOSMemory()
	app, err := open(ctx, dir, cfg.MaxOpenTenants)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, app.Close(cctx))
	}()
	return runApp(ctx, app, ts, cfg)
}

// runApp drives an open app against ts.
//
// With backups (app.ReplicaTXID set) and tenants in their own files, the
// last LagProbes tenants are set aside for measuring replication lag and
// the load runs on the others.
func runApp(ctx context.Context, app *App, ts []Tenant, cfg Config) (*Report, error) {
	var lag *Lag
	var probed sync.WaitGroup
	stop := make(chan struct{})
	if app.ReplicaTXID != nil && cfg.Placement == silo.StrategyDatabase && len(ts) > 2*LagProbes {
		probes := ts[len(ts)-LagProbes:]
		ts = ts[:len(ts)-LagProbes]
		probed.Go(func() { lag = probeLag(ctx, stop, app, probes, cfg.Warmup) })
	}
	res, err := drive(ctx, app.Handler, app.Store.Cache().Stats, targets(ts), cfg)
	close(stop)
	probed.Wait()
	if err != nil {
		return nil, err
	}
	if res.requests == 0 {
		return nil, fmt.Errorf("bench: no request completed in %s", cfg.Duration)
	}
	rep := newReport(cfg, len(ts), res)
	rep.ReplicationLag = lag
	return rep, nil
}

func newReport(cfg Config, tenants int, res *result) *Report {
	r := &Report{
		Tenants:        tenants,
		Placement:      string(cfg.Placement),
		Mix:            cfg.Mix,
		Dist:           cfg.Dist,
		Concurrency:    cfg.Concurrency,
		MaxOpenTenants: cfg.MaxOpenTenants,
		DurationS:      res.elapsed.Seconds(),
		WarmupS:        cfg.Warmup.Seconds(),
		Requests:       res.requests,
		Reads:          res.reads,
		Writes:         res.writes,
		ReqPerSec:      float64(res.requests) / res.elapsed.Seconds(),
		Latency: Latency{
			P50: ms(res.lat.Quantile(0.50)),
			P90: ms(res.lat.Quantile(0.90)),
			P99: ms(res.lat.Quantile(0.99)),
			Max: ms(res.lat.Max()),
		},
		Errors: res.errors,
		Cache: Cache{
			Hits:           res.after.Hits - res.before.Hits,
			Misses:         res.after.Misses - res.before.Misses,
			HitRatio:       hitRatio(res.before, res.after),
			Evictions:      res.after.Evictions - res.before.Evictions,
			OpenHandles:    res.after.OpenHandles,
			OpenErrors:     res.after.OpenErrors - res.before.OpenErrors,
			OpenLatencyP50: res.after.OpenLatencyP50,
			OpenLatencyP99: res.after.OpenLatencyP99,
		},
		Proc: res.proc,
	}
	if cfg.Dist == DistZipf {
		r.ZipfS = cfg.ZipfS
	}
	return r
}

// RunTarget drives a Silo that is already serving at base (`silo serve` in
// another process, say) with the tenants an earlier run provisioned in dir,
// from a load generator outside the server: the same mix, tenant choice and
// report as Run. stats, if not nil, reads the server's cache counters (its
// operator API). The process figures would be the generator's, not the
// server's, so the report leaves them out; MaxOpenTenants is whatever the
// server was started with and is reported as 0.
func RunTarget(ctx context.Context, base, dir string, cfg Config, stats func() (tenantdb.CacheStats, error)) (*Report, error) {
	f, err := prepare(&cfg, dir)
	if err != nil {
		return nil, err
	}
	all := *f.of(cfg.Placement)
	if len(all) < cfg.Tenants {
		return nil, fmt.Errorf("bench: %s holds %d %s tenants, not %d: provision them first with `silo bench --data %s --tenants %d --placement %s`, then serve that dir", dir, len(all), cfg.Placement, cfg.Tenants, dir, cfg.Tenants, cfg.Placement)
	}
	// drive reads the stats before the measured phase, every second for the
	// progress line, and after. A failed read shows the last good figures;
	// only a failure of the first or the last read fails the run, since the
	// report is their difference.
	var (
		mu          sync.Mutex
		last        tenantdb.CacheStats
		reads       int
		firstErr    error
		lastReadErr error
	)
	read := func() tenantdb.CacheStats {
		if stats == nil {
			return tenantdb.CacheStats{}
		}
		st, err := stats()
		mu.Lock()
		defer mu.Unlock()
		reads++
		lastReadErr = err
		if err != nil {
			if reads == 1 {
				firstErr = err
			}
			return last
		}
		last = st
		return st
	}
	res, err := driveURL(ctx, strings.TrimRight(base, "/"), read, targets(all[:cfg.Tenants]), cfg)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(firstErr, lastReadErr); err != nil {
		return nil, fmt.Errorf("bench: reading the server's cache stats: %w", err)
	}
	if res.requests == 0 {
		return nil, fmt.Errorf("bench: no request completed in %s", cfg.Duration)
	}
	rep := newReport(cfg, cfg.Tenants, res)
	rep.Target, rep.MaxOpenTenants, rep.Proc = base, 0, Process{}
	return rep, nil
}
