package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/silohq/silo/internal/latency"
)

// readFixture is a stack with one tenant and one project to read.
func readFixture(b *testing.B) (s *stack, path, token string) {
	s = newStack(&testing.T{}, stackOpts{})
	token = s.signup("acme")
	r := s.tenant("acme", token).do("POST", "/api/projects", map[string]string{"name": "Apollo"})
	if r.Status != 201 {
		b.Fatalf("create project: %d %s", r.Status, r.Raw)
	}
	return s, "/api/projects/" + r.str("id"), token
}

// BenchmarkReadProject is GET /api/projects/{id} through the whole
// handler stack (host resolution, catalog lookup, token check, cache
// borrow, query, JSON), called in-process without a socket, so that a
// profile shows the server's own costs:
//
//	go test -run '^$' -bench 'ReadProject$' -cpuprofile cpu.out ./internal/server/
func BenchmarkReadProject(b *testing.B) {
	s, path, token := readFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", path, nil)
			req.Host = "acme.localhost"
			req.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			s.Server.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}

// BenchmarkReadProjectHTTP is the same read over a real connection on
// 127.0.0.1, with keep-alive (-cpu sets the clients).
func BenchmarkReadProjectHTTP(b *testing.B) {
	s, path, token := readFixture(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var lat latency.Histogram
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", s.URL+path, nil)
			req.Host = "acme.localhost"
			req.Header.Set("Authorization", "Bearer "+token)
			t0 := time.Now()
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			lat.Observe(time.Since(t0))
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64(lat.Quantile(0.99).Microseconds())/1000, "p99-ms")
}
