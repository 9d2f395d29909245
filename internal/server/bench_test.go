package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silohq/silo/internal/latency"
)

// BenchmarkSignupHTTP measures signups over real HTTP on 127.0.0.1: each
// creates a catalog row, a token and a tenant file from the template. It
// reports signups/s and the latency quantiles (-cpu sets the clients).
//
//	go test -run '^$' -bench SignupHTTP -benchtime 2000x ./internal/server/
func BenchmarkSignupHTTP(b *testing.B) {
	s := newStack(&testing.T{}, stackOpts{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	var lat latency.Histogram
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"slug":"bench-%d"}`, n.Add(1))
			req, _ := http.NewRequest("POST", s.URL+"/api/tenants", bytes.NewBufferString(body))
			req.Host = "localhost"
			t0 := time.Now()
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			lat.Observe(time.Since(t0))
			if res.StatusCode != 201 {
				b.Errorf("status %d", res.StatusCode)
			}
		}
	})
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "signups/s")
	b.ReportMetric(float64(lat.Quantile(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.Quantile(0.99).Microseconds())/1000, "p99-ms")
}

// parallelism × GOMAXPROCS concurrent clients; 2 on the 2-core machine.
var parallelism = 1
