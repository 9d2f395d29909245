package silo_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/silohq/silo/internal/silo"
)

// FuzzDecodeCursor checks that DecodeCursor never panics, refuses with
// invalid_cursor, accepts only cursors that EncodeCursor makes (of a
// canonical UUID: every row id is one), and that those round-trip.
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{
		"", silo.EncodeCursor("0190a6e2-7b1c-7cc3-9d2e-3f4a5b6c7d8e"), "YQ", "YQ==", "YR", "Y",
		"!!!!", "Li4vLi4vZXRjL3Bhc3N3ZA", "%2e%2e", "AA", "_w", "\x00", "YQ\n", "YQ\r\n",
		strings.Repeat("A", 128), strings.Repeat("A", 129), "Y+Q/", "0JA", "0", "enp6", "MA", "ISEh",
		silo.EncodeCursor("0190A6E2-7B1C-7CC3-9D2E-3F4A5B6C7D8E"), silo.EncodeCursor("0190a6e27b1c7cc39d2e3f4a5b6c7d8e"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		id, err := silo.DecodeCursor(c)
		if err != nil {
			var e *silo.Error
			if !errors.As(err, &e) || e.Code != silo.EINVALIDCURSOR {
				t.Fatalf("DecodeCursor(%q) = %v, want a *silo.Error with code %s", c, err, silo.EINVALIDCURSOR)
			}
		} else if c != "" {
			if u, err := uuid.Parse(id); err != nil || u.String() != id {
				t.Fatalf("DecodeCursor(%q) = %q, not a canonical UUID", c, id)
			}
			if re := silo.EncodeCursor(id); re != c {
				t.Fatalf("EncodeCursor(DecodeCursor(%q)) = %q: more than one cursor for a position", c, re)
			}
		} else if id != "" {
			t.Fatalf("DecodeCursor(\"\") = %q, want \"\"", id)
		}
		// The other direction: the fuzzed string as an id is accepted
		// back exactly when it is a canonical UUID.
		got, err := silo.DecodeCursor(silo.EncodeCursor(c))
		u, perr := uuid.Parse(c)
		canonical := perr == nil && u.String() == c
		switch {
		case c == "":
		case canonical && (err != nil || got != c):
			t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v", c, got, err)
		case !canonical && err == nil:
			t.Fatalf("DecodeCursor(EncodeCursor(%q)) accepted a non-UUID", c)
		}
	})
}
