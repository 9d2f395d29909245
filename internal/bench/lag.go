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
// transaction.
type Lag struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
	Lost    int     `json:"not_replicated"` // probes still missing from the replica after 30 s
}

// lagProbes is how many probes run side by side, each writing to a random
// tenant and waiting for that write to reach the replica before the next;
// they add a few writes per second to the load.
const lagProbes = 4

// probeLag measures replication lag while the load runs: from the end of
// warm-up until ctx is done, each probe reads a tenant's replicated
// transaction ID, creates a project through the handler (in-process, the
// same path as a client's request), and polls the replica until its
// transaction ID passes the one read before.
func probeLag(ctx context.Context, app *App, ts []Tenant, warmup time.Duration) *Lag {
	select {
	case <-time.After(warmup):
	case <-ctx.Done():
		return nil
	}
	var (
		mu   sync.Mutex
		hist latency.Histogram
		lag  Lag
		wg   sync.WaitGroup
	)
	for p := range lagProbes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(p), 99))
			for i := 0; ctx.Err() == nil; i++ {
				t := ts[r.IntN(len(ts))]
				d, ok, err := lagOnce(ctx, app, t, i)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				switch {
				case err != nil:
					// A failed probe write is not lag; the load's own error
					// counts show failures.
				case !ok:
					lag.Lost++
				default:
					hist.Observe(d)
					lag.Samples++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	lag.P50, lag.P99, lag.Max = ms(hist.Quantile(0.50)), ms(hist.Quantile(0.99)), ms(hist.Max())
	return &lag
}

// lagOnce writes once to t and waits for the replica. ok is false if the
// write had not reached the replica after 30 s.
func lagOnce(ctx context.Context, app *App, t Tenant, i int) (d time.Duration, ok bool, err error) {
	before, err := app.ReplicaTXID(ctx, t.Slug)
	if err != nil {
		return 0, false, err
	}
	req := httptest.NewRequestWithContext(ctx, "POST", "/api/projects", strings.NewReader(fmt.Sprintf(`{"name":"lag probe %d"}`, i)))
	req.Host = t.Slug + ".localhost"
	req.Header.Set("Authorization", "Bearer "+t.Token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	app.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		return 0, false, fmt.Errorf("lag probe write: %d %s", rec.Code, rec.Body.String())
	}
	acked := time.Now()
	for time.Since(acked) < 30*time.Second {
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
