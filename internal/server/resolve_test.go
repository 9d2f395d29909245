package server_test

import (
	"testing"

	"github.com/silohq/silo/internal/server"
)

// TestResolveHostFullyQualifiedBase: a base domain given with its root dot
// (--base-domain example.com.) serves the same hosts as without it, with
// or without the dot on the Host's side.
func TestResolveHostFullyQualifiedBase(t *testing.T) {
	for _, base := range []string{"localhost.", "Silo.Example.com."} {
		for _, tc := range []struct {
			host   string
			slug   string
			isBase bool
		}{
			{host: "acme.localhost", slug: "acme"},
			{host: "acme.localhost.", slug: "acme"},
			{host: "ACME.localhost.:8080", slug: "acme"},
			{host: "localhost", isBase: true},
			{host: "localhost.:8080", isBase: true},
		} {
			host := tc.host
			if base != "localhost." {
				host = replaceBase(host, "silo.example.com")
			}
			slug, isBase, err := server.ResolveHost(host, base)
			if err != nil || slug != tc.slug || isBase != tc.isBase {
				t.Errorf("ResolveHost(%q, %q) = %q, %v, %v; want %q, %v", host, base, slug, isBase, err, tc.slug, tc.isBase)
			}
		}
		if _, _, err := server.ResolveHost("acme.localhost.other", base); err == nil {
			t.Errorf("ResolveHost of a host under another domain, base %q: no error", base)
		}
	}
	// A port past 65535, or not a number, names no host.
	for _, host := range []string{"acme.localhost:99999", "acme.localhost:65536", "acme.localhost:+80", "acme.localhost:8x"} {
		if _, _, err := server.ResolveHost(host, "localhost"); err == nil {
			t.Errorf("ResolveHost(%q): no error", host)
		}
	}
	for _, host := range []string{"acme.localhost:65535", "acme.localhost:", "acme.localhost:0080"} {
		if slug, _, err := server.ResolveHost(host, "localhost"); err != nil || slug != "acme" {
			t.Errorf("ResolveHost(%q) = %q, %v; want acme", host, slug, err)
		}
	}
}

// replaceBase swaps "localhost" in host for base.
func replaceBase(host, base string) string {
	for i := 0; i+len("localhost") <= len(host); i++ {
		if host[i:i+len("localhost")] == "localhost" {
			return host[:i] + base + host[i+len("localhost"):]
		}
	}
	return host
}
