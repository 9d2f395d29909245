package server_test

import (
	"os"
	"strings"
	"testing"
)

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".db") {
			n++
		}
	}
	return n
}

// TestBadInput sends hostile and malformed requests: each gets a 4xx JSON
// error with the expected code, and none changes anything.
func TestBadInput(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.signup("acme")
	acme := s.tenant("acme", tok)
	p := acme.do("POST", "/api/projects", map[string]string{"name": "Keep"})

	big := []byte(`{"name":"` + strings.Repeat("a", 2<<20) + `"}`)
	deep := []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000))
	cases := []struct {
		name, method, host, path string
		token                    bool
		body                     any
		status                   int
		code                     string
	}{
		{"malformed json", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":`), 400, "invalid_json"},
		{"not an object", "POST", "acme.localhost", "/api/projects", true, []byte(`[1,2]`), 400, "invalid_json"},
		{"empty body", "POST", "acme.localhost", "/api/projects", true, []byte(``), 400, "invalid_json"},
		{"unknown field", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"x","admin":true}`), 400, "invalid_json"},
		{"null body", "POST", "acme.localhost", "/api/projects", true, []byte(`null`), 400, "invalid_json"},
		{"null patch", "PATCH", "acme.localhost", "/api/projects/" + p.str("id"), true, []byte(`null`), 400, "invalid_json"},
		{"repeated key", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"a","name":"b"}`), 400, "invalid_json"},
		{"key in another case", "POST", "acme.localhost", "/api/projects", true, []byte(`{"NAME":"x"}`), 400, "invalid_json"},
		{"key twice, cases differ", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"visible","Name":"stored"}`), 400, "invalid_json"},
		{"signup slug twice", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"ln3","Slug":"ln4"}`), 400, "invalid_json"},
		{"wrong type", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":42}`), 400, "invalid_json"},
		{"invalid utf-8", "POST", "acme.localhost", "/api/projects", true, []byte("{\"name\":\"\xff\xfe\"}"), 400, "invalid_json"},
		{"trailing data", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"x"} {"name":"y"}`), 400, "invalid_json"},
		{"deep nesting", "POST", "acme.localhost", "/api/projects", true, deep, 400, "invalid_json"},
		{"body over 1 MiB", "POST", "acme.localhost", "/api/projects", true, big, 413, "body_too_large"},
		{"empty name", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"  "}`), 400, "invalid_name"},
		{"control chars", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"a\u0000b"}`), 400, "invalid_name"},
		{"overlong name", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"` + strings.Repeat("é", 201) + `"}`), 400, "invalid_name"},
		{"lone high surrogate", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"s\udbff"}`), 400, "invalid_json"},
		{"lone low surrogate", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"\udc00s"}`), 400, "invalid_json"},
		{"escaped key", "POST", "acme.localhost", "/api/projects", true, []byte(`{"n\u0061me":"x"}`), 400, "invalid_json"},
		{"null name", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":null}`), 400, "invalid_json"},
		{"patch null name", "PATCH", "acme.localhost", "/api/projects/" + p.str("id"), true, []byte(`{"name":null}`), 400, "invalid_json"},
		{"patch null archived", "PATCH", "acme.localhost", "/api/projects/" + p.str("id"), true, []byte(`{"archived":null}`), 400, "invalid_json"},
		{"invisible name", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"\u200b\ufeff\u3164"}`), 400, "invalid_name"},
		{"bidi override", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"abc\u202edcb"}`), 400, "invalid_name"},
		{"plus limit", "GET", "acme.localhost", "/api/projects?limit=%2B1", true, nil, 400, "invalid_limit"},
		{"limit twice", "GET", "acme.localhost", "/api/projects?limit=1&limit=2", true, nil, 400, "invalid_limit"},
		{"cursor twice", "GET", "acme.localhost", "/api/projects?cursor=&cursor=", true, nil, 400, "invalid_cursor"},
		{"archived twice", "GET", "acme.localhost", "/api/projects?archived=true&archived=false", true, nil, 400, "invalid_request"},
		{"archived twice, same", "GET", "acme.localhost", "/api/projects?archived=true&archived=true", true, nil, 400, "invalid_request"},
		{"variation selector name", "POST", "acme.localhost", "/api/projects", true, []byte(`{"name":"\ufe0f\u034f"}`), 400, "invalid_name"},
		{"patch wrong type", "PATCH", "acme.localhost", "/api/projects/" + p.str("id"), true, []byte(`{"name":null,"done":1}`), 400, "invalid_json"},
		{"task bad done", "POST", "acme.localhost", "/api/projects/" + p.str("id") + "/tasks", true, []byte(`{"title":"x","done":"yes"}`), 400, "invalid_json"},
		{"bad limit", "GET", "acme.localhost", "/api/projects?limit=abc", true, nil, 400, "invalid_limit"},
		{"zero limit", "GET", "acme.localhost", "/api/projects?limit=0", true, nil, 400, "invalid_limit"},
		{"huge limit", "GET", "acme.localhost", "/api/projects?limit=99999999999999999999", true, nil, 400, "invalid_limit"},
		{"bad cursor", "GET", "acme.localhost", "/api/projects?cursor=!!!", true, nil, 400, "invalid_cursor"},
		{"forged cursor", "GET", "acme.localhost", "/api/projects?cursor=" + strings.Repeat("QUFB", 50), true, nil, 400, "invalid_cursor"},
		{"malformed query", "GET", "acme.localhost", "/api/projects?cursor=%%%", true, nil, 400, "invalid_request"},
		{"unknown route", "GET", "acme.localhost", "/api/nothing", true, nil, 404, "not_found"},
		{"unknown base route", "GET", "localhost", "/nothing", false, nil, 404, "not_found"},
		{"method not allowed", "PUT", "acme.localhost", "/api/projects", true, nil, 405, "method_not_allowed"},
		{"signup method", "GET", "localhost", "/api/tenants", false, nil, 405, "method_not_allowed"},
		{"unknown method, no route", "FOO", "localhost", "/nothing", false, nil, 404, "not_found"},
		{"unknown method, no tenant route", "FOO", "acme.localhost", "/api/tasks", true, nil, 404, "not_found"},
		{"unknown method on a route", "FOO", "acme.localhost", "/api/projects", true, nil, 405, "method_not_allowed"},
		{"foreign host", "GET", "evil.com", "/api/projects", true, nil, 404, "not_found"},
		{"suffix trick", "GET", "acme.localhost.evil.com", "/api/projects", true, nil, 404, "not_found"},
		{"port not a number", "GET", "acme.localhost:abc", "/api/projects", true, nil, 404, "not_found"},
		{"port too long", "GET", "acme.localhost:123456", "/api/projects", true, nil, 404, "not_found"},
		{"sub-subdomain", "GET", "a.acme.localhost", "/api/projects", true, nil, 404, "tenant_not_found"},
		{"hostile label", "GET", "..%2f.localhost", "/api/projects", true, nil, 404, "tenant_not_found"},
		{"overlong label", "GET", strings.Repeat("a", 64) + ".localhost", "/api/projects", true, nil, 404, "tenant_not_found"},
		{"cyrillic look-alike", "GET", "аcme.localhost", "/api/projects", true, nil, 404, "tenant_not_found"},
		{"traversal prefix", "GET", "localhost", "/t/..%2f..%2fcatalog/api/projects", true, nil, 404, "tenant_not_found"},
		{"reserved prefix", "GET", "localhost", "/t/www/api/projects", true, nil, 404, "tenant_not_found"},
		{"signup traversal slug", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"../catalog"}`), 400, "invalid_slug"},
		{"signup NUL slug", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"a\u0000b"}`), 400, "invalid_slug"},
		{"signup uppercase", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"Acme2"}`), 400, "invalid_slug"},
		{"signup overlong", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"` + strings.Repeat("a", 64) + `"}`), 400, "invalid_slug"},
		{"signup reserved", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"admin"}`), 400, "invalid_slug"},
		{"signup leading hyphen", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"-acme"}`), 400, "invalid_slug"},
		{"signup punycode", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"xn--80ak6aa92e"}`), 400, "invalid_slug"},
		{"signup hyphens at 3-4", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"ab--c"}`), 400, "invalid_slug"},
		{"signup bad strategy", "POST", "localhost", "/api/tenants", false, []byte(`{"slug":"okay","strategy":"mongo"}`), 400, "invalid_strategy"},
		{"signup on tenant host", "POST", "acme.localhost", "/api/tenants", true, []byte(`{"slug":"other"}`), 404, "not_found"},
		{"operator api off", "GET", "localhost", "/api/operator/stats", false, nil, 404, "not_found"},
		{"operator tenants off", "GET", "localhost", "/api/operator/tenants", true, nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := ""
			if tc.token {
				token = tok
			}
			r := s.do(tc.method, tc.host, tc.path, token, tc.body)
			if r.Status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %q, want %d %q: %.200s", r.Status, r.code(), tc.status, tc.code, r.Raw)
			}
		})
	}
	// Nothing changed: one tenant, one project, untouched.
	r := acme.do("GET", "/api/projects", nil)
	ps := r.Body["projects"].([]any)
	if len(ps) != 1 || ps[0].(map[string]any)["name"] != "Keep" {
		t.Fatalf("state changed: %s", r.Raw)
	}
	if n := countFiles(t, s.Store.Dir()); n != 1 {
		t.Fatalf("%d tenant files, want 1", n)
	}
}

// TestEscapesStoredAsSent: what JSON escapes stand for is stored exactly:
// a surrogate pair is its one character, an escaped backslash stays a
// backslash, and a name with visible characters around invisible ones
// (an emoji joined by U+200D) is a name.
func TestEscapesStoredAsSent(t *testing.T) {
	s := newStack(t, stackOpts{})
	acme := s.tenant("acme", s.signup("acme"))
	for body, want := range map[string]string{
		`{"name":"\ud83d\ude00 ok"}`:                "\U0001F600 ok",
		`{"name":"a\\udc00"}`:                       `a\udc00`,
		`{"name":"\ud83d\udc69\u200d\ud83d\udcbb"}`: "\U0001F469\u200d\U0001F4BB",
	} {
		r := acme.do("POST", "/api/projects", []byte(body))
		if r.Status != 201 || r.str("name") != want {
			t.Errorf("%s: %d %s, want name %q", body, r.Status, r.Raw, want)
		}
	}
}

func TestOperatorAPI(t *testing.T) {
	s := newStack(t, stackOpts{operatorToken: "op-secret"})
	tok := s.signup("acme")
	s.tenant("acme", tok).do("GET", "/api/projects", nil)
	for _, path := range []string{"/api/operator/stats", "/api/operator/tenants"} {
		for _, bad := range []string{"", tok, "op-secre", "op-secret2"} {
			if r := s.do("GET", "localhost", path, bad, nil); r.Status != 401 || r.code() != "unauthorized" {
				t.Fatalf("%s with token %q: %d %s", path, bad, r.Status, r.Raw)
			}
		}
	}
	r := s.do("GET", "localhost", "/api/operator/stats", "op-secret", nil)
	cache, _ := r.Body["cache"].(map[string]any)
	if r.Status != 200 || cache["open_handles"] != float64(1) || cache["misses"] != float64(1) {
		t.Fatalf("stats: %d %s", r.Status, r.Raw)
	}
	r = s.do("GET", "localhost", "/api/operator/tenants", "op-secret", nil)
	if ts, _ := r.Body["tenants"].([]any); r.Status != 200 || len(ts) != 1 {
		t.Fatalf("tenants: %d %s", r.Status, r.Raw)
	}
}

// TestMethodNotAllowedAllow: a 405 names the methods the path has (RFC 9110
// requires the Allow header), through the subdomain and the /t/ prefix.
func TestMethodNotAllowedAllow(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.signup("acme")
	p := s.tenant("acme", tok).do("POST", "/api/projects", map[string]string{"name": "A"})
	cases := []struct{ method, host, path, allow string }{
		{"PUT", "acme.localhost", "/api/projects", "GET, HEAD, POST"},
		{"PUT", "localhost", "/t/acme/api/projects", "GET, HEAD, POST"},
		{"POST", "acme.localhost", "/api/projects/" + p.str("id"), "GET, HEAD, PATCH, DELETE"},
		{"PUT", "localhost", "/t/acme/api/tasks/x", "GET, HEAD, PATCH, DELETE"},
		{"GET", "localhost", "/api/tenants", "POST"},
		{"DELETE", "localhost", "/healthz", "GET, HEAD"},
	}
	for _, tc := range cases {
		r := s.do(tc.method, tc.host, tc.path, tok, nil)
		if r.Status != 405 || r.code() != "method_not_allowed" || r.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s%s: %d %q Allow %q, want 405 Allow %q", tc.method, tc.host, tc.path, r.Status, r.code(), r.Header.Get("Allow"), tc.allow)
		}
	}
	// A trailing slash names the same route (a 405 too).
	if r := s.do("GET", "acme.localhost", "/api/projects/", tok, nil); r.Status != 200 {
		t.Errorf("GET /api/projects/: %d %s", r.Status, r.Raw)
	}
	if r := s.do("POST", "localhost", "/t/acme/api/projects/", tok, map[string]string{"name": "B"}); r.Status != 201 {
		t.Errorf("POST /t/acme/api/projects/: %d %s", r.Status, r.Raw)
	}
	for _, tc := range []struct{ host, path string }{{"acme.localhost", "/api/projects/"}, {"localhost", "/t/acme/api/projects/"}} {
		if r := s.do("PUT", tc.host, tc.path, tok, nil); r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("PUT %s%s: %d Allow %q", tc.host, tc.path, r.Status, r.Header.Get("Allow"))
		}
	}
	// HEAD answers as GET, without a body.
	for _, tc := range []struct{ host, path string }{{"localhost", "/healthz"}, {"acme.localhost", "/api/projects"}, {"localhost", "/t/acme/api/projects/" + p.str("id")}} {
		if r := s.do("HEAD", tc.host, tc.path, tok, nil); r.Status != 200 || len(r.Raw) != 0 {
			t.Errorf("HEAD %s%s: %d %q", tc.host, tc.path, r.Status, r.Raw)
		}
	}
}
