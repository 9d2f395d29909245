package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/silohq/silo/internal/latency"
)

// Lag is the replication lag measured during a run with backups: the time
// from a write's acknowledgement to the moment the replica holds its
// transaction, in milliseconds.
type Lag struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Lost    int     `json:"not_replicated"` // probes still missing from the replica after 30 s
	Failed  int     `json:"failed_writes"`  // probe writes that were not acknowledged
}

// LagProbes is how many probes run side by side. Each owns one tenant that
// the load does not touch, so that nothing but its own write moves that
// tenant's replica; together they add a few writes per second.
const LagProbes = 4

// lagTimeout bounds the wait for one write to reach the replica.
const lagTimeout = 30 * time.Second

// probeLag measures replication lag while the load runs: from the end of
// warm-up until stop is closed, probe p reads its tenant ts[p] (which opens
// and registers it for backup), reads the tenant's replicated transaction
// ID, creates a project through the handler (in-process, the same path as
// a client's request), and polls the replica until its transaction ID
// passes the one read before. A probe under way when stop closes finishes
// (within lagTimeout), so slow replications are not left out.
func probeLag(ctx context.Context, stop <-chan struct{}, app *App, ts []Tenant, warmup time.Duration) *Lag {
	select {
	case <-time.After(warmup):
	case <-stop:
		return nil
	case <-ctx.Done():
		return nil
	}
	var (
		mu   sync.Mutex
		hist latency.Histogram
		lag  Lag
		wg   sync.WaitGroup
	)
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// A random pause, so that writes do not fall into step with
				// Litestream's once-a-second poll (which would measure the
				// same phase of it every time).
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
				d, ok, err := lagOnce(ctx, app, t, i)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				switch {
				case err != nil:
					lag.Failed++
				case !ok:
					lag.Lost++
				default:
					hist.Observe(d)
					lag.Samples++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(100 * time.Millisecond) // do not spin on a failing tenant
				}
			}
		}()
	}
	wg.Wait()
	if lag.Samples > 0 {
		lag.P50, lag.P99, lag.Max = ms(hist.Quantile(0.50)), ms(hist.Quantile(0.99)), ms(hist.Max())
	}
	return &lag
}

// lagOnce writes once to t and waits for the replica. ok is false if the
// write had not reached the replica after lagTimeout.
func lagOnce(ctx context.Context, app *App, t Tenant, i int) (d time.Duration, ok bool, err error) {
	// Open (and so register) the tenant first: registering writes and syncs
	// a transaction of Litestream's own, which must not be taken for ours.
	if code, body := call(ctx, app, t, "GET", "/api/projects?limit=1", ""); code != http.StatusOK {
		return 0, false, fmt.Errorf("lag probe read: %d %s", code, body)
	}
	before, err := app.ReplicaTXID(ctx, t.Slug)
	if err != nil {
		return 0, false, err
	}
	name := fmt.Sprintf(`{"name":"lag probe %d-%d"}`, time.Now().UnixNano(), i) // unique across runs on one dir
	if code, body := call(ctx, app, t, "POST", "/api/projects", name); code != http.StatusCreated {
		return 0, false, fmt.Errorf("lag probe write: %d %s", code, body)
	}
	acked := time.Now()
	for time.Since(acked) < lagTimeout {
		txid, err := app.ReplicaTXID(ctx, t.Slug)
		if err != nil {
			return 0, false, err
		}
		if txid > before {
			return time.Since(acked), true, nil
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
	}
	return 0, false, nil
}

// call serves one request for t through the app's handler, in-process.
func call(ctx context.Context, app *App, t Tenant, method, path, body string) (int, string) {
	req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	req.Host = t.Slug + ".localhost"
	req.Header.Set("Authorization", "Bearer "+t.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	app.Handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}
