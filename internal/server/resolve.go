package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/silohq/silo/internal/silo"
)

// ResolveHost splits a Host header into the tenant slug it names, or
// reports that it is the base domain. The port is ignored and case does not
// matter. An IP literal counts as the base domain, so that health checks
// and path-prefix clients can use the server's address. Any other host, or a
// subdomain label that is not a valid slug, is not found: it never reaches
// the catalog, let alone the disk.
func ResolveHost(host, baseDomain string) (slug string, isBase bool, err error) {
	// Only ASCII is folded: Unicode case folding maps look-alikes such as
	// the Kelvin sign onto ASCII letters, and a tenant must be named by its
	// own bytes.
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "", false, silo.Errorf(silo.ENOTFOUND, "Unknown host.")
		}
	}
	bracketed := strings.HasPrefix(host, "[")
	if h, port, err := net.SplitHostPort(host); err == nil {
		// A port is digits (or empty, as RFC 3986 allows) up to 65535:
		// "a.localhost:abc" or "a.localhost:99999" names no host this
		// server answers for.
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || strings.Trim(port, "0123456789") != "" || n > 65535 {
				return "", false, silo.Errorf(silo.ENOTFOUND, "Unknown host.")
			}
		}
		host = h
	} else if bracketed {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if net.ParseIP(host) != nil {
		return "", true, nil
	}
	if bracketed { // only IPv6 literals may be bracketed
		return "", false, silo.Errorf(silo.ENOTFOUND, "Unknown host.")
	}
	host = strings.TrimSuffix(silo.LowerASCII(host), ".")
	// The base domain may be given fully qualified (--base-domain
	// example.com.): compare it as the host is, without its root dot.
	baseDomain = strings.TrimSuffix(silo.LowerASCII(baseDomain), ".")
	if host == baseDomain {
		return "", true, nil
	}
	label, ok := strings.CutSuffix(host, "."+baseDomain)
	if !ok || label == "" {
		return "", false, silo.Errorf(silo.ENOTFOUND, "Unknown host.")
	}
	if silo.ValidateSlug(label) != nil {
		return "", false, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant.")
	}
	return label, false, nil
}

type slugKey struct{}

func withSlug(ctx context.Context, slug string) context.Context {
	return context.WithValue(ctx, slugKey{}, slug)
}

// slugFromPath takes the slug from /t/{slug}/. Case is folded as for hosts.
func slugFromPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug := silo.LowerASCII(chi.URLParam(r, "slug"))
		next.ServeHTTP(w, r.WithContext(withSlug(r.Context(), slug)))
	})
}

// resolveTenant loads the request's tenant from the catalog into the
// context. An unknown slug is 404; nothing is ever created here.
func (s *Server) resolveTenant(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slug, _ := r.Context().Value(slugKey{}).(string)
		if silo.ValidateSlug(slug) != nil {
			s.writeError(w, r, silo.Errorf(silo.ETENANTNOTFOUND, "No such tenant."))
			return
		}
		t, err := s.deps.Directory.TenantBySlug(r.Context(), slug)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(silo.NewContextWithTenant(r.Context(), t)))
	})
}

// authenticate requires a bearer token of the resolved tenant.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := silo.TenantFromContext(r.Context())
		secret, ok := bearer(r)
		if !ok {
			s.writeError(w, r, silo.Errorf(silo.EUNAUTHORIZED, "A valid bearer token for this tenant is required."))
			return
		}
		if err := s.deps.Directory.Authenticate(r.Context(), t.ID, secret); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// operatorSlug is the {slug} of an operator route, folded like a tenant's
// host or path prefix: ACME names the tenant acme everywhere.
func operatorSlug(r *http.Request) string {
	return silo.LowerASCII(chi.URLParam(r, "slug"))
}
