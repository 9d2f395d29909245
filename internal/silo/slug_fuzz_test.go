package silo_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/silohq/silo/internal/silo"
)

// slugShape is the documented shape of a slug, restated here so that the
// test does not trust the pattern inside ValidateSlug.
var slugShape = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// knownReserved are names ValidateSlug must refuse. The package may reserve
// more; it must never accept one of these.
var knownReserved = []string{
	"www", "api", "admin", "app", "static", "assets", "t", "mail", "ftp",
	"smtp", "localhost", "silo", "operator", "status", "health", "healthz",
	"metrics", "docs", "help", "support", "billing", "dashboard", "auth",
	"login", "signup", "root", "system", "internal", "cdn", "ns1", "ns2", "mx",
}

// FuzzValidateSlug checks that every slug ValidateSlug accepts is a safe
// DNS label: it names a file and a host, so it must never carry a path
// separator, a dot, a NUL, non-ASCII or a reserved name.
func FuzzValidateSlug(f *testing.F) {
	for _, s := range []string{
		"acme", "a", "0", "a-b", "abc123", "x" + strings.Repeat("y", 61) + "z",
		"", "-", "a-", "-a", "A", "Acme", "www", "api", "t", "localhost",
		"../etc", "a/b", "a.b", "a\x00", "\u0430cme", "ａｃｍｅ", "xn--80ak6aa92e",
		strings.Repeat("a", 64), "acme.", "acme:8080", "a\n", "a b", "\xff",
	} {
		f.Add(s)
	}
	reserved := make(map[string]bool, len(knownReserved))
	for _, r := range knownReserved {
		reserved[r] = true
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := silo.ValidateSlug(s)
		if err != nil {
			var e *silo.Error
			if !errors.As(err, &e) || e.Code != silo.EINVALIDSLUG {
				t.Fatalf("ValidateSlug(%q) = %v, want a *silo.Error with code %s", s, err, silo.EINVALIDSLUG)
			}
			// Anything of the right shape that is not known to be
			// reserved may only be refused as reserved.
			if slugShape.MatchString(s) && !reserved[s] && !strings.Contains(e.Message, "reserved") {
				t.Fatalf("ValidateSlug(%q) refused a well-formed slug: %v", s, err)
			}
			return
		}
		if !slugShape.MatchString(s) {
			t.Fatalf("ValidateSlug accepted %q, which is not a DNS label", s)
		}
		if reserved[s] {
			t.Fatalf("ValidateSlug accepted the reserved slug %q", s)
		}
		if n := len(s); n < 1 || n > 63 {
			t.Fatalf("ValidateSlug accepted %q of length %d", s, n)
		}
		if strings.ContainsAny(s, "/.\\\x00") {
			t.Fatalf("ValidateSlug accepted %q, which holds a path character", s)
		}
		if strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") {
			t.Fatalf("ValidateSlug accepted %q, which starts or ends with a hyphen", s)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				t.Fatalf("ValidateSlug accepted %q, which holds byte %#x", s, c)
			}
		}
		// Case is folded before lookup (ResolveHost, slugFromPath), so an
		// accepted slug must be its own lower-case form.
		if strings.ToLower(s) != s {
			t.Fatalf("ValidateSlug accepted %q, which is not lower case", s)
		}
	})
}

// FuzzValidateNewSlug: a slug taken at signup is a valid slug without
// hyphens in its 3rd and 4th places (Punycode's xn--, RFC 5891).
func FuzzValidateNewSlug(f *testing.F) {
	for _, s := range []string{"acme", "xn--80ak6aa92e", "ab--c", "a--b", "abc--d", "ab-c", "www"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := silo.ValidateNewSlug(s)
		want := silo.ValidateSlug(s) == nil && !(len(s) >= 4 && s[2:4] == "--")
		if (err == nil) != want {
			t.Fatalf("ValidateNewSlug(%q) = %v, want accepted=%v", s, err, want)
		}
		if err != nil && silo.ErrorCode(err) != silo.EINVALIDSLUG {
			t.Fatalf("ValidateNewSlug(%q) = %v, want code %s", s, err, silo.EINVALIDSLUG)
		}
	})
}
