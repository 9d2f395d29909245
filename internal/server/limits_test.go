package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawDo sends a request with extra headers and returns the status, the
// headers and the decoded error code.
func (s *stack) rawDo(method, host, path, token string, hdr map[string]string) (int, http.Header, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(`{"slug":"spoofed"}`))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &body); err != nil {
			s.t.Fatalf("%s %s: %d with a non-JSON body %q", method, path, res.StatusCode, raw)
		}
	}
	return res.StatusCode, res.Header, body.Error.Code
}

// wantRateLimited checks a 429 answer: Retry-After in whole seconds and the
// rate_limited JSON error.
func wantRateLimited(t *testing.T, r resp, retryAfter string) {
	h := r.Header
	t.Helper()
	if r.Status != 429 || r.code() != "rate_limited" {
		t.Fatalf("got %d %q, want 429 rate_limited: %s", r.Status, r.code(), r.Raw)
	}
	if got := h.Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// TestSignupFlood: one IP gets --signup-rate signups a minute, then 429s
// that create nothing; X-Forwarded-For does not buy a fresh budget, and
// loopback is not exempt (the test client is 127.0.0.1).
func TestSignupFlood(t *testing.T) {
	s := newStack(t, stackOpts{signupRate: 3})
	var tokens []string
	for i := range 3 {
		tokens = append(tokens, s.signup(fmt.Sprintf("flood%d", i)))
	}
	r := s.do("POST", "localhost", "/api/tenants", "", map[string]string{"slug": "flood3"})
	wantRateLimited(t, r, "60")
	if l := r.Header.Get("X-RateLimit-Limit"); l != "3" {
		t.Fatalf("X-RateLimit-Limit %q", l)
	}
	for _, hdr := range []map[string]string{
		{"X-Forwarded-For": "203.0.113.7"},
		{"X-Real-IP": "203.0.113.8"},
		{"Forwarded": "for=203.0.113.9", "True-Client-IP": "203.0.113.10"},
	} {
		if st, _, code := s.rawDo("POST", "localhost", "/api/tenants", "", hdr); st != 429 || code != "rate_limited" {
			t.Fatalf("spoofed %v: %d %q", hdr, st, code)
		}
	}
	if n := countFiles(t, s.Store.Dir()); n != 3 {
		t.Fatalf("%d tenant files after the flood, want 3", n)
	}
	// The limit is on signups only: the tenants just created work.
	if r := s.tenant("flood0", tokens[0]).do("GET", "/api/projects", nil); r.Status != 200 {
		t.Fatalf("tenant API under the signup limit: %d %s", r.Status, r.Raw)
	}
}

// TestTenantRateLimit: a tenant over --tenant-rate gets 429 while another
// tenant is served; requests without a valid token do not use up a
// tenant's budget; the limit lifts once the window has passed.
func TestTenantRateLimit(t *testing.T) {
	const limit = 5
	s := newStack(t, stackOpts{tenantRate: limit})
	acme := s.tenant("acme", s.signup("acme"))
	globex := s.tenant("globex", s.signup("globex"))

	// Strangers hammer globex with bad tokens: 401s, and globex keeps its
	// whole budget.
	for range 3 * limit {
		if st, _, code := s.rawDo("GET", "globex.localhost", "/api/projects", "silo_wrong", nil); st != 401 || code != "unauthorized" {
			t.Fatalf("bad token: %d %q", st, code)
		}
	}

	ok, limited := 0, false
	for range 20 * limit {
		r := s.do("GET", "acme.localhost", "/api/projects", acme.token, nil)
		if r.Status == 200 {
			ok++
			continue
		}
		wantRateLimited(t, r, "1")
		limited = true
		break
	}
	if !limited || ok < limit {
		t.Fatalf("%d requests served before a 429 (limited %v), want at least %d then 429", ok, limited, limit)
	}
	for range limit - 1 {
		if r := globex.do("GET", "/api/projects", nil); r.Status != 200 {
			t.Fatalf("globex while acme is limited: %d %s", r.Status, r.Raw)
		}
	}
	// Two windows later the sliding estimate is back to zero.
	time.Sleep(2100 * time.Millisecond)
	if r := acme.do("GET", "/api/projects", nil); r.Status != 200 {
		t.Fatalf("acme after the window: %d %s", r.Status, r.Raw)
	}
}

// TestTenantInflightBound holds --tenant-max-inflight requests of one
// tenant open for real (POSTs whose bodies have not arrived yet, so their
// handlers sit reading), then checks that one more gets 429 while another
// tenant is served, and that finishing the held requests frees the slots
// and empties the limiter's table.
func TestTenantInflightBound(t *testing.T) {
	const bound = 4
	s := newStack(t, stackOpts{tenantMaxInflight: bound})
	acme := s.tenant("acme", s.signup("acme"))
	globex := s.tenant("globex", s.signup("globex"))

	type result struct {
		status int
		err    error
	}
	results := make(chan result, bound)
	writers := make([]*io.PipeWriter, bound)
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range bound {
		pr, pw := io.Pipe()
		writers[i] = pw
		t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) }) // unblock on failure
		req, err := http.NewRequest("POST", s.URL+"/api/projects", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "acme.localhost"
		req.Header.Set("Authorization", "Bearer "+acme.token)
		go func() {
			res, err := client.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			results <- result{status: res.StatusCode}
		}()
	}

	// The held requests reach the handler in their own time; poll until
	// the next one is turned away.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := s.do("GET", "acme.localhost", "/api/projects", acme.token, nil)
		if r.Status == 429 {
			wantRateLimited(t, r, "1")
			break
		}
		if r.Status != 200 {
			t.Fatalf("acme while filling: %d %s", r.Status, r.Raw)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 429 with %d requests held open", bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Server.InflightTenants(); n != 1 {
		t.Fatalf("%d tenants in the inflight table, want 1", n)
	}
	if r := globex.do("GET", "/api/projects", nil); r.Status != 200 {
		t.Fatalf("globex while acme is saturated: %d %s", r.Status, r.Raw)
	}

	// Release: each held request completes normally.
	for i, pw := range writers {
		fmt.Fprintf(pw, `{"name":"held %d"}`, i)
		pw.Close()
	}
	for range bound {
		if res := <-results; res.err != nil || res.status != 201 {
			t.Fatalf("held request: %d %v", res.status, res.err)
		}
	}
	r := acme.do("GET", "/api/projects", nil)
	if ps, _ := r.Body["projects"].([]any); r.Status != 200 || len(ps) != bound {
		t.Fatalf("after release: %d %s", r.Status, r.Raw)
	}
	// Slots are returned after the answer is written; the table empties.
	for deadline := time.Now().Add(5 * time.Second); s.Server.InflightTenants() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d tenants left in the inflight table", s.Server.InflightTenants())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLimitsOffByDefault: a zero Config has no limits (the flags supply
// the defaults), and the table of an unbounded server stays empty.
func TestLimitsOffByDefault(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.signup("acme")
	for i := range 40 {
		if i < 5 {
			s.signup(fmt.Sprintf("more%d", i))
		}
		if r := s.tenant("acme", tok).do("GET", "/api/projects", nil); r.Status != 200 {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	if n := s.Server.InflightTenants(); n != 0 {
		t.Fatalf("inflight table has %d entries with the bound off", n)
	}
}
