package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/silohq/silo/internal/latency"
	"github.com/silohq/silo/internal/tenantdb"
)

// target is a tenant as the load generator sees it, with its headers
// prepared once.
type target struct {
	host, auth string
	projects   []string
	tasks      []string
}

func targets(ts []Tenant) []target {
	out := make([]target, len(ts))
	for i, t := range ts {
		out[i] = target{host: t.Slug + ".localhost", auth: "Bearer " + t.Token, projects: t.Projects, tasks: t.Tasks}
	}
	return out
}

// picker chooses tenants: uniformly, or by a Zipf law over a fixed random
// permutation of them (so that the hottest tenants are not simply the first
// or last provisioned). Each worker has its own; none is shared.
type picker struct {
	r    *rand.Rand
	zipf *rand.Zipf
	perm []int32
	n    int
}

func newPicker(seed, worker uint64, n int, dist string, s float64, perm []int32) *picker {
	p := &picker{r: rand.New(rand.NewPCG(seed, worker+1)), perm: perm, n: n}
	if dist == DistZipf && n > 1 {
		p.zipf = rand.NewZipf(p.r, s, 1, uint64(n-1))
	}
	return p
}

func (p *picker) next() int {
	if p.n == 1 {
		return 0
	}
	if p.zipf != nil {
		return int(p.perm[p.zipf.Uint64()])
	}
	return p.r.IntN(p.n)
}

func permutation(seed uint64, n int) []int32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	r.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return perm
}

// result is what drive measured.
type result struct {
	requests, reads, writes int64
	elapsed                 time.Duration
	lat                     latency.Histogram
	errors                  map[string]int64
	before, after           tenantdb.CacheStats
	proc                    Process
}

// errorCounts counts failed requests by status without a lock on the hot
// path for the common statuses.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errorCounts) add(key string) {
	e.mu.Lock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[key]++
	e.mu.Unlock()
}

// drive serves h on 127.0.0.1 and drives it; see driveURL.
func drive(ctx context.Context, h http.Handler, stats func() tenantdb.CacheStats, ts []target, cfg Config) (*result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return driveURL(ctx, "http://"+ln.Addr().String(), stats, ts, cfg)
}

// driveURL sends the server at base cfg's mix from cfg.Concurrency clients:
// cfg.Warmup unmeasured, then cfg.Duration measured. stats reads the
// server's cache counters at the phase boundaries.
func driveURL(ctx context.Context, base string, stats func() tenantdb.CacheStats, ts []target, cfg Config) (*result, error) {
	tr := &http.Transport{
		Proxy:               nil, // straight to the server (127.0.0.1, or --target), whatever HTTP_PROXY says
		MaxIdleConns:        2 * cfg.Concurrency,
		MaxIdleConnsPerHost: 2 * cfg.Concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	// Every phase is bounded: the clients stop starting requests at the
	// end, and each request times out on its own.
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+time.Minute)
	defer cancel()

	res := &result{}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		errs      errorCounts
		done      atomic.Int64 // measured requests, for progress
		failed    atomic.Int64
		reads     atomic.Int64
		writes    atomic.Int64
	)
	if cfg.touchAll {
		if err := touch(ctx, client, base, ts, cfg); err != nil {
			return nil, err
		}
	}
	perm := permutation(cfg.Seed, len(ts))
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPicker(cfg.Seed, uint64(w), len(ts), cfg.Dist, cfg.ZipfS, perm)
			var body bytes.Reader
			for !stop.Load() && ctx.Err() == nil {
				t := &ts[p.next()]
				method, path, payload, write := op(p.r, cfg.Mix, t)
				var rd io.Reader
				if payload != nil {
					body.Reset(payload)
					rd = &body
				}
				req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
				if err != nil {
					errs.add("client")
					continue
				}
				req.Host = t.host
				req.Header.Set("Authorization", t.auth)
				if payload != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				measured := measuring.Load()
				t0 := time.Now()
				resp, err := client.Do(req)
				status := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(t0)
				if !measured {
					continue
				}
				res.lat.Observe(d)
				done.Add(1)
				if write {
					writes.Add(1)
				} else {
					reads.Add(1)
				}
				switch {
				case err != nil:
					if ctx.Err() == nil {
						errs.add("transport")
						failed.Add(1)
					}
				case status >= 300:
					errs.add(strconv.Itoa(status))
					failed.Add(1)
				}
			}
		}()
	}

	if cfg.Warmup > 0 {
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
		}
	}
	res.before = stats()
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			stop.Store(true)
			wg.Wait()
			return nil, err
		}
	}
	start := time.Now()
	measuring.Store(true)
	stopProgress := progressLoop(cfg.Progress, func(el time.Duration) string {
		st := stats()
		return fmt.Sprintf("bench: %4.0fs/%s  %7.0f req/s  p99 %6.2f ms  errors %d  hit ratio %.3f  open handles %d",
			el.Seconds(), cfg.Duration, float64(done.Load())/el.Seconds(), ms(res.lat.Quantile(0.99)), failed.Load(),
			hitRatio(res.before, st), st.OpenHandles)
	})
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	res.elapsed = time.Since(start)
	stopProgress()
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	res.after = stats()
	res.proc = readProcess()
	res.requests, res.reads, res.writes = done.Load(), reads.Load(), writes.Load()
	res.errors = errs.m
	if res.errors == nil {
		res.errors = map[string]int64{}
	}
	return res, ctx.Err()
}

var (
	taskBody = []byte(`{"title":"bench task","done":false}`)
	doneTrue = []byte(`{"done":true}`)
	doneNo   = []byte(`{"done":false}`)
)

// op picks one request of the mix against tenant t. Reads ask for rows
// that exist: a project (50 %), a task (30 %), the project list (10 %) or
// a project's tasks (10 %). Writes create a task (50 %) or toggle one
// (50 %).
func op(r *rand.Rand, mix string, t *target) (method, path string, body []byte, write bool) {
	write = mix == MixWrite || (mix == MixMixed && r.IntN(100) < 20)
	x := r.IntN(100)
	pid := t.projects[r.IntN(len(t.projects))]
	if write {
		if x < 50 {
			return "POST", "/api/projects/" + pid + "/tasks", taskBody, true
		}
		b := doneNo
		if x%2 == 0 {
			b = doneTrue
		}
		return "PATCH", "/api/tasks/" + t.tasks[r.IntN(len(t.tasks))], b, true
	}
	switch {
	case x < 50:
		return "GET", "/api/projects/" + pid, nil, false
	case x < 80:
		return "GET", "/api/tasks/" + t.tasks[r.IntN(len(t.tasks))], nil, false
	case x < 90:
		return "GET", "/api/projects?limit=20", nil, false
	default:
		return "GET", "/api/projects/" + pid + "/tasks?limit=20", nil, false
	}
}

func hitRatio(before, after tenantdb.CacheStats) float64 {
	h, m := after.Hits-before.Hits, after.Misses-before.Misses
	if h+m == 0 {
		return 0
	}
	return float64(h) / float64(h+m)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// progressLoop calls line every second and writes what it returns to w
// until the returned stop is called. With a nil w it does nothing.
func progressLoop(w io.Writer, line func(elapsed time.Duration) string) (stop func()) {
	if w == nil {
		return func() {}
	}
	start := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last time.Time
		for {
			select {
			case <-quit:
				// A last line with the final figures, also for a run
				// shorter than the first tick, unless a tick just said it.
				if time.Since(last) > 100*time.Millisecond {
					fmt.Fprintln(w, line(time.Since(start)))
				}
				return
			case <-t.C:
				fmt.Fprintln(w, line(time.Since(start)))
				last = time.Now()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); wg.Wait() }) }
}

// touch sends one request of cfg's mix to every tenant, from
// cfg.Concurrency clients; any failure is an error.
func touch(ctx context.Context, client *http.Client, base string, ts []target, cfg Config) error {
	var next atomic.Int64
	errc := make(chan error, cfg.Concurrency)
	for w := range cfg.Concurrency {
		go func() {
			r := rand.New(rand.NewPCG(cfg.Seed, uint64(w)+1000))
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ts) {
					errc <- nil
					return
				}
				t := &ts[i]
				method, path, payload, _ := op(r, cfg.Mix, t)
				var rd io.Reader
				if payload != nil {
					rd = bytes.NewReader(payload)
				}
				req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
				if err != nil {
					errc <- err
					return
				}
				req.Host = t.host
				req.Header.Set("Authorization", t.auth)
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					errc <- fmt.Errorf("touch %s %s%s: status %d", method, t.host, path, resp.StatusCode)
					return
				}
			}
		}()
	}
	var first error
	for range cfg.Concurrency {
		if err := <-errc; err != nil && first == nil {
			first = err
			next.Store(int64(len(ts))) // stop the others
		}
	}
	return first
}
