package server_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/silohq/silo/internal/server"
	"github.com/silohq/silo/internal/silo"
)

// fuzzBaseDomains are the base domains every fuzzed Host is resolved
// against: the default and a multi-label one.
var fuzzBaseDomains = []string{"localhost", "silo.example.com"}

// otherSlugs are valid slugs swapped into a resolved Host to check that the
// label, and only the label, picks the tenant.
var otherSlugs = []string{"acme", "beta-2", "z9"}

// asciiLower lower-cases ASCII letters only. Tenant hosts are ASCII; a
// Unicode case mapping (KELVIN SIGN to 'k') must not make a foreign host
// name a tenant.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// hostNames reports whether host, as a client wrote it, names tenant slug
// under base: "<slug>.<base>" in any ASCII case, optionally with one
// trailing dot and a port. The bracketed form "[<slug>.<base>]:port", which
// net.SplitHostPort unwraps, is tolerated: it still names the same tenant.
func hostNames(host, slug, base string) bool {
	h := asciiLower(host)
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]:")
		if end < 0 {
			return false
		}
		h = h[1:end]
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return h == slug+"."+base
}

// FuzzResolveHost checks that a Host header resolves to a tenant only when
// its first label is that tenant's valid slug, that swapping the label
// swaps the tenant, and that every rejection is a 4xx silo error.
func FuzzResolveHost(f *testing.F) {
	for _, h := range []string{
		"acme.localhost", "ACME.LOCALHOST", "acme.localhost:8080", "acme.localhost.",
		"acme.localhost.:8080", "localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080",
		"::1", "acme.silo.example.com", "a.b.localhost", "www.localhost", ".localhost",
		"../acme.localhost", "%2e%2e.localhost", "acme\x00.localhost", "\u0430cme.localhost",
		"ａｃｍｅ.localhost", "xn--cme-8cd.localhost", strings.Repeat("a", 64) + ".localhost",
		"acme.localhost..", "acme.evil.com", "evil.com", "", ":", "[acme.localhost]:80",
		"acme.localhost:80:80", "[fe80::1%25eth0]:80", "acme.localhost:abc", "acme.localhost:",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, host string) {
		for _, base := range fuzzBaseDomains {
			checkResolve(t, host, base)
		}
	})
}

func checkResolve(t *testing.T, host, base string) {
	slug, isBase, err := server.ResolveHost(host, base)
	if err != nil {
		if slug != "" || isBase {
			t.Fatalf("ResolveHost(%q, %q) = %q, %v, %v: an error with a result", host, base, slug, isBase, err)
		}
		var e *silo.Error
		if !errors.As(err, &e) {
			t.Fatalf("ResolveHost(%q, %q): error %v is not a *silo.Error", host, base, err)
		}
		if st := server.Status(e.Code); st < 400 || st > 499 {
			t.Fatalf("ResolveHost(%q, %q): code %q maps to %d, want 4xx", host, base, e.Code, st)
		}
		return
	}
	if isBase {
		if slug != "" {
			t.Fatalf("ResolveHost(%q, %q) = %q and base", host, base, slug)
		}
		h := host
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if h != base && net.ParseIP(strings.Trim(h, "[]")) == nil {
			t.Fatalf("ResolveHost(%q, %q) took a host that is neither the base domain nor an IP for the base", host, base)
		}
		return
	}
	if slug == "" {
		t.Fatalf("ResolveHost(%q, %q) returned no slug, no base and no error", host, base)
	}
	if err := silo.ValidateSlug(slug); err != nil {
		t.Fatalf("ResolveHost(%q, %q) = %q, an invalid slug: %v", host, base, slug, err)
	}
	if !hostNames(host, slug, base) {
		t.Fatalf("ResolveHost(%q, %q) = %q, but the host does not name that tenant", host, base, slug)
	}
	// Swap the label for another tenant's: the answer must follow the label.
	start := 0
	if strings.HasPrefix(host, "[") {
		start = 1
	}
	dot := strings.IndexByte(host, '.')
	for _, other := range otherSlugs {
		if other == slug {
			continue
		}
		h2 := host[:start] + other + host[dot:]
		got, _, err := server.ResolveHost(h2, base)
		if got == slug {
			t.Fatalf("ResolveHost(%q, %q) = %q, the tenant of %q", h2, base, got, host)
		}
		if err != nil || got != other {
			t.Fatalf("ResolveHost(%q, %q) = %q, %v, want %q", h2, base, got, err, other)
		}
	}
}
