package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silohq/silo/internal/bench"
	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/sqlite"
	"github.com/silohq/silo/internal/tenantdb"
	"github.com/silohq/silo/internal/tenants"
)

// open wires Silo as cmd/silo's openApp does, without its flags.
func open(ctx context.Context, dir string, capacity int) (*bench.App, error) {
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"), sqlite.Options{})
	if err != nil {
		return nil, err
	}
	store, err := tenantdb.Open(ctx, tenantdb.Config{
		Dir: dir, SQLite: sqlite.Options{MaxConns: 4},
		Cache:         tenantdb.CacheConfig{Capacity: capacity},
		MigrateOnOpen: true,
	})
	if err != nil {
		cat.Close()
		return nil, err
	}
	h := server.New(server.Config{BaseDomain: "localhost"}, server.Deps{
		Directory:  cat,
		Admin:      tenants.New(cat, store, "", nil),
		Projects:   tenantdb.NewProjectService(store),
		Tasks:      tenantdb.NewTaskService(store),
		CacheStats: store.Cache().Stats,
	})
	return &bench.App{Handler: h, Catalog: cat, Store: store, Close: func(ctx context.Context) error {
		return errors.Join(store.Close(ctx), cat.Close())
	}}, nil
}

func small() bench.Config {
	return bench.Config{
		Tenants: 20, Concurrency: 4, Duration: time.Second, Mix: bench.MixMixed,
		Dist: bench.DistZipf, MaxOpenTenants: 5, ProvisionConcurrency: 4,
	}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var progress bytes.Buffer
	cfg := small()
	cfg.Progress = &progress
	r, err := bench.Run(ctx, open, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.ReqPerSec <= 0 {
		t.Fatalf("no requests: %+v", r)
	}
	if n := r.ErrorCount(); n != 0 {
		t.Fatalf("%d errors: %v", n, r.Errors)
	}
	if r.Reads+r.Writes != r.Requests || r.Reads == 0 || r.Writes == 0 {
		t.Errorf("mixed: %d reads + %d writes != %d requests", r.Reads, r.Writes, r.Requests)
	}
	if r.Provisioned != 20 || r.ProvisionS <= 0 {
		t.Errorf("provisioning: %d tenants in %gs", r.Provisioned, r.ProvisionS)
	}
	l := r.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency quantiles out of order: %+v", l)
	}
	c := r.Cache
	if c.Hits+c.Misses == 0 || c.HitRatio < 0 || c.HitRatio > 1 {
		t.Errorf("cache: %+v", c)
	}
	// 20 tenants through 5 slots: the cache must have evicted, and may
	// exceed its capacity only by handles in use.
	if c.Misses == 0 || c.Evictions == 0 || c.OpenHandles > 5+cfg.Concurrency {
		t.Errorf("cache of 5 over 20 tenants: %+v", c)
	}
	if r.Proc.RSSMB <= 0 || r.Proc.FDs <= 0 {
		t.Errorf("process: %+v", r.Proc)
	}
	var text bytes.Buffer
	bench.WriteText(&text, r)
	for _, want := range []string{"req/s", "p99", "hit ratio", "RSS", "open fds", "errors        none"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if !strings.Contains(progress.String(), "bench:") {
		t.Errorf("no progress line: %q", progress.String())
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back["requests"].(float64) != float64(r.Requests) || back["latency_ms"].(map[string]any)["p99"] == nil {
		t.Errorf("JSON report: %s", data)
	}

	// A second run on the same dir reuses the tenants, in the shared
	// placement provisions its own.
	cfg.Progress, cfg.Duration, cfg.Mix = nil, 300*time.Millisecond, bench.MixRead
	r2, err := bench.Run(ctx, open, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Provisioned != 0 || r2.Writes != 0 || r2.ErrorCount() != 0 {
		t.Errorf("second run: provisioned %d, %d writes, errors %v", r2.Provisioned, r2.Writes, r2.Errors)
	}
	cfg.Placement = "shared"
	r3, err := bench.Run(ctx, open, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Provisioned != 20 || r3.ErrorCount() != 0 || r3.Cache.Misses != 0 {
		t.Errorf("shared run: provisioned %d, errors %v, cache %+v", r3.Provisioned, r3.Errors, r3.Cache)
	}
}

func TestCompare(t *testing.T) {
	cfg := bench.CompareConfig{
		Config:       small(),
		WriteScaling: true, WriteTenants: 10, WriteDuration: 200 * time.Millisecond, WriteLevels: []int{1, 2},
	}
	cfg.Duration, cfg.Mix = 300*time.Millisecond, bench.MixRead
	c, err := bench.Compare(context.Background(), open, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Scenarios) != 4 || c.Provisioned != 40 {
		t.Fatalf("%d scenarios, %d provisioned", len(c.Scenarios), c.Provisioned)
	}
	if c.Scenarios[0].Tenants != 1 || c.Scenarios[0].CeilingRatio != 1 {
		t.Errorf("ceiling: %+v", c.Scenarios[0])
	}
	for _, r := range c.Scenarios {
		if r.Requests == 0 || r.ErrorCount() != 0 || r.CeilingRatio <= 0 {
			t.Errorf("scenario %q: %d requests, errors %v, ratio %g", r.Scenario, r.Requests, r.Errors, r.CeilingRatio)
		}
	}
	if all := c.Scenarios[1]; all.Cache.Evictions != 0 || all.Tenants != 20 {
		t.Errorf("all cached: %+v", all.Cache)
	}
	if under := c.Scenarios[2]; under.MaxOpenTenants >= under.Tenants || under.Cache.Evictions == 0 {
		t.Errorf("cache < working set: %d slots for %d tenants, %d evictions", under.MaxOpenTenants, under.Tenants, under.Cache.Evictions)
	}
	if len(c.WriteScaling) != 2 {
		t.Fatalf("write scaling: %+v", c.WriteScaling)
	}
	for _, p := range c.WriteScaling {
		if p.DatabasePerSec <= 0 || p.SharedPerSec <= 0 || p.DatabaseErrors+p.SharedErrors != 0 {
			t.Errorf("write scaling point: %+v", p)
		}
	}
	var text bytes.Buffer
	bench.WriteComparisonText(&text, c)
	for _, want := range []string{"ceiling: one tenant", "shared placement", "vs ceiling", "write scaling"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, text.String())
		}
	}
}

func TestCheck(t *testing.T) {
	for _, mut := range []func(*bench.Config){
		func(c *bench.Config) { c.Mix = "reads" },
		func(c *bench.Config) { c.Dist = "pareto" },
		func(c *bench.Config) { c.ZipfS = 1 },
		func(c *bench.Config) { c.Placement = "mongo" },
		func(c *bench.Config) { c.Concurrency = -1 },
	} {
		c := small()
		mut(&c)
		c.Defaults()
		if c.Check() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

// TestRunTarget drives a server outside the benchmark's own app (here a
// real HTTP server on 127.0.0.1 over the same data dir, as `silo serve`
// would be) with the fleet an earlier run provisioned, and reads its cache
// counters through the stats function.
func TestRunTarget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := small()
	if _, err := bench.Run(ctx, open, dir, cfg); err != nil { // provisions the fleet
		t.Fatal(err)
	}
	app, err := open(ctx, dir, cfg.MaxOpenTenants)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	srv := httptest.NewServer(app.Handler)
	defer srv.Close()

	r, err := bench.RunTarget(ctx, srv.URL, dir, cfg, func() (tenantdb.CacheStats, error) { return app.Store.Cache().Stats(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.ErrorCount() != 0 || r.Reads == 0 || r.Writes == 0 {
		t.Fatalf("requests %d (reads %d, writes %d), errors %v", r.Requests, r.Reads, r.Writes, r.Errors)
	}
	// Every request reached the outside server's cache: hits and misses
	// account for them all (a mixed request borrows the handle once).
	if got := r.Cache.Hits + r.Cache.Misses; got < r.Requests {
		t.Fatalf("the server's cache saw %d borrows for %d requests", got, r.Requests)
	}
	if r.Target != srv.URL || r.Proc != (bench.Process{}) || r.Provisioned != 0 {
		t.Fatalf("report: target %q, process %+v, provisioned %d", r.Target, r.Proc, r.Provisioned)
	}
	var out bytes.Buffer
	bench.WriteText(&out, r)
	if !strings.Contains(out.String(), "server at "+srv.URL) || strings.Contains(out.String(), "RSS") {
		t.Fatalf("text report:\n%s", out.String())
	}

	// A dir without that many tenants is refused with what to do.
	cfg.Tenants = 50
	if _, err := bench.RunTarget(ctx, srv.URL, dir, cfg, nil); err == nil || !strings.Contains(err.Error(), "provision them first") {
		t.Fatalf("RunTarget with too few tenants: %v", err)
	}
}

// TestCompareSmallFleet: with fewer tenants than --max-open-tenants, the
// "cache < working set" scenario still has a cache smaller than the fleet
// (it was labelled so while every tenant fit).
func TestCompareSmallFleet(t *testing.T) {
	cfg := bench.CompareConfig{Config: small()}
	cfg.MaxOpenTenants = 50
	cfg.Duration, cfg.Mix = 200*time.Millisecond, bench.MixRead
	c, err := bench.Compare(context.Background(), open, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	under := c.Scenarios[2]
	if under.MaxOpenTenants != 2 || under.Tenants != 20 || under.Cache.Evictions == 0 || !strings.Contains(under.Scenario, "cache 2 <") {
		t.Fatalf("cache < working set with 20 tenants and 50 slots: %q, %d slots, %d evictions", under.Scenario, under.MaxOpenTenants, under.Cache.Evictions)
	}
}
