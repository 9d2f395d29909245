package tenants_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silohq/silo/internal/latency"
	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenants"
)

// BenchmarkMovePause measures the write pause of moving a tenant with
// 10,000 tasks between placements (the time its requests are held):
//
//	go test -run '^$' -bench MovePause -benchtime 4x ./internal/tenants/
func BenchmarkMovePause(b *testing.B) {
	w := open(&testing.T{}, b.TempDir(), nil)
	defer w.close()
	ctx := context.Background()
	if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: "big"}); err != nil {
		b.Fatal(err)
	}
	tctx := w.ctxFor(&testing.T{}, "big")
	for p := range 10 {
		pr, err := w.projects.CreateProject(tctx, fmt.Sprint("P", p))
		if err != nil {
			b.Fatal(err)
		}
		for i := range 1000 {
			if _, err := w.tasks.CreateTask(tctx, pr.ID, silo.NewTask{Title: fmt.Sprintf("task %d of project %d", i, p)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var worst time.Duration
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		to := silo.StrategyShared
		if i%2 == 1 {
			to = silo.StrategyDatabase
		}
		st, err := w.svc.Move(ctx, "big", to)
		if err != nil || st.Tasks != 10000 {
			b.Fatalf("%+v %v", st, err)
		}
		total += st.Pause
		worst = max(worst, st.Pause)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "pause-ms/move")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-pause-ms")
}

// BenchmarkNoisyNeighbour measures what a busy tenant costs its neighbours:
// one tenant writes flat out from 4 goroutines while 3 neighbours each
// write one project at a time; it reports the neighbours' write latency
// with every tenant in its own file, then with all of them in shared.db.
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 3s ./internal/tenants/
func BenchmarkNoisyNeighbour(b *testing.B) {
	for _, placement := range []silo.Strategy{silo.StrategyDatabase, silo.StrategyShared} {
		b.Run(string(placement), func(b *testing.B) {
			w := open(&testing.T{}, b.TempDir(), nil)
			defer w.close()
			ctx := context.Background()
			for _, s := range []string{"noisy", "n1", "n2", "n3"} {
				if _, _, err := w.svc.Create(ctx, tenants.NewTenant{Slug: s, Strategy: placement}); err != nil {
					b.Fatal(err)
				}
			}
			stop := make(chan struct{})
			var noisyWrites atomic.Int64
			var wg sync.WaitGroup
			nctx := w.ctxFor(&testing.T{}, "noisy")
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := w.projects.CreateProject(nctx, fmt.Sprintf("noise-%d-%d", g, i)); err == nil {
							noisyWrites.Add(1)
						}
					}
				}()
			}
			var lat latency.Histogram
			var seq atomic.Int64
			b.ResetTimer()
			start := time.Now()
			b.SetParallelism(2) // 2×GOMAXPROCS neighbour writers
			b.RunParallel(func(pb *testing.PB) {
				slug := fmt.Sprintf("n%d", seq.Add(1)%3+1)
				tctx := w.ctxFor(&testing.T{}, slug)
				for pb.Next() {
					t0 := time.Now()
					if _, err := w.projects.CreateProject(tctx, fmt.Sprint("p", seq.Add(1))); err != nil {
						b.Error(err)
						return
					}
					lat.Observe(time.Since(t0))
				}
			})
			el := time.Since(start)
			b.StopTimer()
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(lat.Quantile(0.5).Microseconds())/1000, "neighbour-p50-ms")
			b.ReportMetric(float64(lat.Quantile(0.99).Microseconds())/1000, "neighbour-p99-ms")
			b.ReportMetric(float64(noisyWrites.Load())/el.Seconds(), "noisy-writes/s")
		})
	}
}
