// Package bench drives a real Silo (the same handler `silo serve` runs) over
// HTTP on 127.0.0.1 with many tenants, and reports throughput, latency, the
// handle cache's behaviour and the process's memory and file descriptors.
// `silo bench` is its command line; cmd/silo supplies the Opener so that
// the benchmark runs exactly what serve runs.
package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/silohq/silo/internal/catalog"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// App is one Silo instance over a data directory: its HTTP API and the
// storage underneath, which provisioning uses directly.
type App struct {
	Handler http.Handler
	Catalog *catalog.Catalog
	Store   *tenantdb.Store
	Close   func(ctx context.Context) error
	// With PostgreSQL (nil otherwise): provisioning of `schema` tenants,
	// and the services that route by placement, to seed them.
	Schemas interface {
		CreateSchemaTenant(context.Context, silo.TenantID) error
	}
	Projects silo.ProjectService
	Tasks    silo.TaskService
	// ReplicaTXID, set when backups run, returns the last transaction of
	// the tenant with this slug that its replica holds; a run then measures
	// replication lag too.
	ReplicaTXID func(ctx context.Context, slug string) (uint64, error)
}

// Opener opens an App on dir with a handle cache of capacity tenant files.
// Opening the same dir again after Close sees the same tenants.
type Opener func(ctx context.Context, dir string, capacity int) (*App, error)

// Mixes and distributions.
const (
	MixRead  = "read"  // reads of existing projects and tasks
	MixWrite = "write" // task creates and updates
	MixMixed = "mixed" // 80 % reads, 20 % writes

	DistUniform = "uniform"
	DistZipf    = "zipf"
)

// Config is one benchmark run.
type Config struct {
	Tenants        int           // tenants driven (and provisioned if missing)
	Concurrency    int           // clients, each one request at a time
	Duration       time.Duration // measured time
	Warmup         time.Duration // unmeasured time before it, on the same app
	Mix            string        // MixRead, MixWrite or MixMixed
	Dist           string        // DistUniform or DistZipf
	ZipfS          float64       // Zipf exponent (> 1)
	MaxOpenTenants int           // the handle cache's capacity
	Placement      silo.Strategy // database or shared
	Seed           uint64        // seeds tenant choice; runs with one seed pick the same sequence
	// ProvisionConcurrency bounds parallel signups; 0 means 8.
	ProvisionConcurrency int
	// Progress, if set, gets a line per second while the benchmark runs.
	Progress io.Writer
	// CPUProfile, if set, receives a pprof CPU profile of the measured
	// phase (not provisioning, not warm-up).
	CPUProfile io.Writer

	// touchAll sends one request of the mix to every tenant before the
	// warm-up, so that a scenario meant to have every tenant open (and, for
	// writes, every WAL started) starts that way.
	touchAll bool
}

// Defaults fills unset fields with `silo bench`'s defaults.
func (c *Config) Defaults() {
	if c.Tenants == 0 {
		c.Tenants = 10000
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mix == "" {
		c.Mix = MixRead
	}
	if c.Dist == "" {
		c.Dist = DistZipf
	}
	if c.ZipfS == 0 {
		c.ZipfS = 1.1
	}
	if c.MaxOpenTenants == 0 {
		c.MaxOpenTenants = 1000
	}
	if c.Placement == "" {
		c.Placement = silo.StrategyDatabase
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.ProvisionConcurrency == 0 {
		c.ProvisionConcurrency = 8
	}
}

// Check reports a setting that cannot work.
func (c *Config) Check() error {
	switch {
	case c.Tenants < 1:
		return fmt.Errorf("tenants must be at least 1")
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0:
		return fmt.Errorf("duration must be positive and warm-up not negative")
	case c.Mix != MixRead && c.Mix != MixWrite && c.Mix != MixMixed:
		return fmt.Errorf("mix must be read, write or mixed, not %q", c.Mix)
	case c.Dist != DistUniform && c.Dist != DistZipf:
		return fmt.Errorf("dist must be uniform or zipf, not %q", c.Dist)
	case c.Dist == DistZipf && !(c.ZipfS > 1 && c.ZipfS <= 100):
		// Written so that NaN fails too: with it the sampler never returns.
		return fmt.Errorf("zipf-s must be greater than 1 and at most 100")
	case c.MaxOpenTenants < 1:
		return fmt.Errorf("max-open-tenants must be at least 1")
	case !c.Placement.Valid():
		return fmt.Errorf("placement must be one of %v, not %q", silo.Strategies, c.Placement)
	}
	return nil
}

// Report is what one run measured. Durations are in milliseconds.
type Report struct {
	Scenario       string  `json:"scenario,omitempty"`
	Target         string  `json:"target,omitempty"` // the URL of an outside server (--target)
	Tenants        int     `json:"tenants"`
	Placement      string  `json:"placement"`
	Mix            string  `json:"mix"`
	Dist           string  `json:"dist"`
	ZipfS          float64 `json:"zipf_s,omitempty"`
	Concurrency    int     `json:"concurrency"`
	MaxOpenTenants int     `json:"max_open_tenants"`
	DurationS      float64 `json:"duration_s"` // measured wall time
	WarmupS        float64 `json:"warmup_s"`

	// Provisioning: how many tenants this run created and how long it took
	// (0 when every tenant already existed in the data dir).
	Provisioned  int     `json:"provisioned"`
	ProvisionS   float64 `json:"provision_s"`
	ProvisionPer float64 `json:"provision_per_tenant_ms"`

	// CeilingRatio is req/s over the one-tenant ceiling's (--compare).
	CeilingRatio float64 `json:"ceiling_ratio,omitempty"`

	Requests  int64            `json:"requests"`
	Reads     int64            `json:"reads"`
	Writes    int64            `json:"writes"`
	ReqPerSec float64          `json:"req_per_s"`
	Latency   Latency          `json:"latency_ms"`
	Errors    map[string]int64 `json:"errors"` // HTTP status (or "transport") → count

	Cache Cache   `json:"cache"`
	Proc  Process `json:"process"`
	// ReplicationLag, with backups only.
	ReplicationLag *Lag `json:"replication_lag,omitempty"`
}

// Latency quantiles of every measured request, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Cache is the handle cache during the measured phase. Hits, misses,
// evictions and the hit ratio count the measured phase only; the open
// latency quantiles cover every open since the app was opened (warm-up
// included); open handles is the count at the end.
type Cache struct {
	Hits           int64   `json:"hits"`
	Misses         int64   `json:"misses"`
	HitRatio       float64 `json:"hit_ratio"`
	Evictions      int64   `json:"evictions"`
	OpenHandles    int     `json:"open_handles"`
	OpenErrors     int64   `json:"open_errors"`
	OpenLatencyP50 float64 `json:"open_latency_p50_ms"`
	OpenLatencyP99 float64 `json:"open_latency_p99_ms"`
}

// Process is the whole process (server and load generator together) at
// the end of the measured phase.
type Process struct {
	RSSMB     float64 `json:"rss_mb"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	FDs       int     `json:"open_fds"`
	FDLimit   int     `json:"fd_limit"`
}

// ErrorCount is the number of failed requests.
func (r *Report) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}
