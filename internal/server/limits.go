package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/httprate"
	"github.com/silohq/silo/internal/silo"
)

// Limits against floods and noisy tenants. Every rejection is 429 with a
// Retry-After header and the JSON error code rate_limited, so a client can
// back off the same way whichever limit it hit.
//
//   - Signups are limited per peer IP (Config.SignupRate per minute).
//   - A tenant's requests are limited per second (Config.TenantRate) and in
//     number at once (Config.TenantMaxInflight), so that one tenant cannot
//     take every worker and every SQLite connection from the others.
//
// Both tenant limits run after authentication: only requests carrying a
// valid token of the tenant count against its budget, so a stranger who
// knows a slug cannot use up a tenant's allowance.

// inflightWait is how long a request over its tenant's concurrency bound
// waits for a slot before it is rejected: enough to absorb a short burst,
// too short to pile up waiting goroutines.
const inflightWait = 100 * time.Millisecond

// limitSignups limits POST /api/tenants to Config.SignupRate requests per
// minute per client IP; 0 turns the limit off.
//
// The key is the TCP peer address (r.RemoteAddr), never X-Forwarded-For or
// X-Real-IP: any client can write those headers, and trusting them would let
// a flood pick a fresh key per request. Behind a reverse proxy every client
// therefore shares the proxy's budget; trusting the header from a configured
// proxy address is future work. IPv6 peers are keyed by their /64, which a
// single host usually controls whole.
func (s *Server) limitSignups() func(http.Handler) http.Handler {
	if s.cfg.SignupRate <= 0 {
		return passThrough
	}
	return httprate.LimitBy(s.cfg.SignupRate, time.Minute, peerIP,
		httprate.WithLimitHandler(s.rateLimited("Too many signups from this address; retry later.")),
		httprate.WithErrorHandler(s.writeError))
}

// limitTenantRate limits each tenant to Config.TenantRate requests per
// second (a sliding window); 0 turns the limit off. It must run after
// resolveTenant.
func (s *Server) limitTenantRate() func(http.Handler) http.Handler {
	if s.cfg.TenantRate <= 0 {
		return passThrough
	}
	return httprate.LimitBy(s.cfg.TenantRate, time.Second, tenantKey,
		httprate.WithLimitHandler(s.rateLimited("Too many requests for this tenant; retry later.")),
		httprate.WithErrorHandler(s.writeError))
}

// limitTenantInflight bounds each tenant to Config.TenantMaxInflight
// requests at once; 0 means no bound. A request over the bound waits up to
// inflightWait for a slot, then gets 429 rate_limited.
//
// 429, not 503: the tenant is over its own share while the server is fine
// and keeps serving everyone else. A 503 would tell load balancers and
// monitors that the instance is unhealthy.
func (s *Server) limitTenantInflight() func(http.Handler) http.Handler {
	if s.cfg.TenantMaxInflight <= 0 {
		return passThrough
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t := silo.TenantFromContext(r.Context())
			if t == nil { // resolveTenant runs first; never serve unscoped
				s.writeError(w, r, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant."))
				return
			}
			release, ok := s.inflight.acquire(r.Context(), t.ID, inflightWait)
			if !ok {
				w.Header().Set("Retry-After", "1")
				s.writeError(w, r, silo.Errorf(silo.ERATELIMITED, "Too many concurrent requests for this tenant; retry later."))
				return
			}
			defer release()
			next.ServeHTTP(w, r)
		})
	}
}

// InflightTenants is the number of tenants with a request in flight under
// the concurrency bound: the size of its table, which never holds an idle
// tenant. Zero when the bound is off.
func (s *Server) InflightTenants() int {
	s.inflight.mu.Lock()
	defer s.inflight.mu.Unlock()
	return len(s.inflight.m)
}

// inflight is a counting semaphore per tenant. An entry lives only while
// some request holds or waits for one of its slots, so the table is bounded
// by the requests in flight, not by the number of tenants ever served.
type inflight struct {
	max int
	mu  sync.Mutex
	m   map[silo.TenantID]*slots
}

type slots struct {
	refs int           // holders and waiters; guarded by inflight.mu
	ch   chan struct{} // one element per running request, capacity max
}

// acquire takes a slot of tenant id, waiting up to wait. It returns the
// function that gives the slot back, or ok false if none freed in time or
// ctx ended.
func (l *inflight) acquire(ctx context.Context, id silo.TenantID, wait time.Duration) (release func(), ok bool) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[silo.TenantID]*slots)
	}
	e := l.m[id]
	if e == nil {
		e = &slots{ch: make(chan struct{}, l.max)}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()

	select {
	case e.ch <- struct{}{}:
	default:
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case e.ch <- struct{}{}:
		case <-timer.C:
			l.unref(id, e)
			return nil, false
		case <-ctx.Done():
			l.unref(id, e)
			return nil, false
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.ch
			l.unref(id, e)
		})
	}, true
}

func (l *inflight) unref(id silo.TenantID, e *slots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.m, id)
	}
}

// rateLimited answers 429 rate_limited; httprate has already set
// Retry-After and the X-RateLimit-* headers.
func (s *Server) rateLimited(msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, silo.Errorf(silo.ERATELIMITED, "%s", msg))
	}
}

// peerIP is the rate-limit key of a signup: the TCP peer's address.
func peerIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return httprate.CanonicalizeIP(host), nil
}

// tenantKey is the rate-limit key of a tenant request: the tenant's id.
func tenantKey(r *http.Request) (string, error) {
	t := silo.TenantFromContext(r.Context())
	if t == nil {
		return "", silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	return string(t.ID), nil
}

func passThrough(next http.Handler) http.Handler { return next }
