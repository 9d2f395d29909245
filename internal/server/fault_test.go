package server_test

import (
	"os/exec"
	"testing"
)

// TestReadOnlyTenantFile makes a tenant's file immutable (chattr +i: even
// root cannot write it) under a running server: writes answer the
// documented 503 tenant_unavailable, never a 500; other tenants are
// unaffected; once the file is writable again, writes succeed.
func TestReadOnlyTenantFile(t *testing.T) {
	s := newStack(t, stackOpts{})
	c := s.tenant("acme", s.signup("acme"))
	other := s.tenant("other", s.signup("other"))
	p := c.do("POST", "/api/projects", map[string]string{"name": "before"})
	ts, _ := s.Catalog.TenantBySlug(t.Context(), "acme")
	path, _ := s.Store.Path(ts.ID)
	if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
		t.Skipf("chattr +i not possible here (needs root on ext4): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
	// Force a reopen so the process meets the immutable file, as after an
	// eviction.
	s.Store.Cache().Discard(ts.ID)
	refused := 0
	for i := range 5 {
		r := c.do("POST", "/api/projects", map[string]string{"name": "during" + string(rune('a'+i))})
		switch {
		case r.Status == 503 && r.code() == "tenant_unavailable":
			if r.Header.Get("Retry-After") != "1" {
				t.Fatalf("503 without Retry-After: %v", r.Header)
			}
			refused++
		case r.Status == 201: // landed in the WAL, which stays writable
		default:
			t.Fatalf("write to a read-only file: %d %s", r.Status, r.Raw)
		}
	}
	if refused == 0 {
		t.Fatal("no write was refused while the file was immutable")
	}
	if r := c.do("GET", "/api/projects/"+p.str("id"), nil); r.Status >= 500 && r.code() != "tenant_unavailable" {
		t.Fatalf("read: %d %s", r.Status, r.Raw)
	}
	if r := other.do("POST", "/api/projects", map[string]string{"name": "fine"}); r.Status != 201 {
		t.Fatalf("other tenant: %d %s", r.Status, r.Raw)
	}
	exec.Command("chattr", "-i", path).Run()
	s.Store.Cache().Discard(ts.ID)
	if r := c.do("POST", "/api/projects", map[string]string{"name": "after"}); r.Status != 201 {
		t.Fatalf("write after the fault: %d %s", r.Status, r.Raw)
	}
}
