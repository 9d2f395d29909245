package silo_test

import (
	"testing"

	"github.com/silohq/silo/internal/silo"
)

// TestParseTimeStrict: only RFC 3339, not the extras Go's parser takes.
func TestParseTimeStrict(t *testing.T) {
	for s, ok := range map[string]bool{
		"2026-01-01T00:00:00Z":        true,
		"2026-01-01T00:00:00.5Z":      true,
		"2026-01-01T00:00:00+23:59":   true,
		"2026-01-01T00:00:00-23:59":   true,
		"2026-01-01T00:00:00,5Z":      false,
		"2026-01-01T00:00:00+24:00":   false,
		"2026-01-01T00:00:00-99:00":   false,
		"2026-01-01 00:00:00Z":        false,
		"2026-01-01T00:00:00":         false,
		"2026-01-01T00:00:00.5+01:00": true,
		"2026-01-01t00:00:00z":        true,
	} {
		if _, err := silo.ParseTime(s); (err == nil) != ok {
			t.Errorf("ParseTime(%q): %v, want ok=%v", s, err, ok)
		}
	}
}
