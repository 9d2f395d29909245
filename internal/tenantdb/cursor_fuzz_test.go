package tenantdb_test

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/silohq/silo/internal/silo"
	"github.com/silohq/silo/internal/tenantdb"
)

// FuzzDecodeCursor checks that DecodeCursor never panics, refuses with
// invalid_cursor, and that cursors round-trip: a canonical cursor (strict
// base64url without padding or line breaks) re-encodes to itself, and any
// accepted cursor's id re-encodes to a cursor that decodes to the same id.
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{
		"", tenantdb.EncodeCursor("0190a6e2-7b1c-7cc3-9d2e-3f4a5b6c7d8e"), "YQ", "YQ==", "YR", "Y",
		"!!!!", "Li4vLi4vZXRjL3Bhc3N3ZA", "%2e%2e", "AA", "_w", "\x00", "YQ\n", "YQ\r\n",
		strings.Repeat("A", 128), strings.Repeat("A", 129), "Y+Q/", "0JA", "0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		id, err := tenantdb.DecodeCursor(c)
		if err != nil {
			var e *silo.Error
			if !errors.As(err, &e) || e.Code != silo.EINVALIDCURSOR {
				t.Fatalf("DecodeCursor(%q) = %v, want a *silo.Error with code %s", c, err, silo.EINVALIDCURSOR)
			}
		} else {
			if c == "" {
				if id != "" {
					t.Fatalf("DecodeCursor(\"\") = %q, want \"\"", id)
				}
			} else if id == "" || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
				t.Fatalf("DecodeCursor(%q) = %q: empty or not UTF-8", c, id)
			}
			re := tenantdb.EncodeCursor(id)
			if canonicalCursor(c) && re != c {
				t.Fatalf("EncodeCursor(DecodeCursor(%q)) = %q", c, re)
			}
			if id2, err := tenantdb.DecodeCursor(re); err != nil || id2 != id {
				t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v", id, id2, err)
			}
		}
		// The other direction: the fuzzed string as an id.
		enc := tenantdb.EncodeCursor(c)
		got, err := tenantdb.DecodeCursor(enc)
		switch {
		case c == "" || !utf8.ValidString(c) || strings.ContainsRune(c, 0) || len(enc) > 128:
			if err == nil && got != "" {
				t.Fatalf("DecodeCursor(EncodeCursor(%q)) accepted %q", c, got)
			}
		case err != nil || got != c:
			t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v", c, got, err)
		}
	})
}

// canonicalCursor reports whether c is the one encoding of its bytes.
func canonicalCursor(c string) bool {
	if strings.ContainsAny(c, "\r\n") {
		return false // the decoder skips line breaks
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(c)
	return err == nil
}

// FuzzStorePath checks that no id names a file outside the tenants
// directory: Path either refuses the id or returns <tenants dir>/<id>.db.
func FuzzStorePath(f *testing.F) {
	for _, s := range []string{
		"0190a6e2-7b1c-7cc3-9d2e-3f4a5b6c7d8e", "acme", "", ".", "..", "../x", "..%2f..%2fetc",
		"%2e%2e", "a/b", "a\\b", "/etc/passwd", "a\x00b", "a\n", "A", "\u0430", strings.Repeat("a", 65),
		strings.Repeat("a", 64), "-a", "a.db", "x?mode=memory", "x#y", "c:", "tenants/../../a",
	} {
		f.Add(s)
	}
	// One store for the whole fuzz run: opening builds the template file.
	data := f.TempDir()
	store, err := tenantdb.Open(context.Background(), tenantdb.Config{Dir: data})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close(context.Background()) })
	dir := filepath.Join(data, "tenants")
	if store.Dir() != dir {
		f.Fatalf("store.Dir() = %q, want %q", store.Dir(), dir)
	}
	f.Fuzz(func(t *testing.T, id string) {
		p, err := store.Path(silo.TenantID(id))
		if err != nil {
			if silo.ErrorCode(err) != silo.ETENANTNOTFOUND {
				t.Fatalf("Path(%q) = %v, want code %s", id, err, silo.ETENANTNOTFOUND)
			}
			return
		}
		if filepath.Dir(p) != dir {
			t.Fatalf("Path(%q) = %q, outside %q", id, p, dir)
		}
		if filepath.Base(p) != id+".db" {
			t.Fatalf("Path(%q) = %q, whose base is not the id", id, p)
		}
		if rel, err := filepath.Rel(dir, p); err != nil || rel != id+".db" || strings.ContainsAny(id, "/\\.\x00?#") {
			t.Fatalf("Path(%q) = %q: relative %q, %v", id, p, rel, err)
		}
	})
}
