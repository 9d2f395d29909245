package replication

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestQuietLitestream: Litestream's info records (a "compaction complete"
// per tenant every 30 s) stay out of a log at info; its warnings do not;
// at debug everything shows.
func TestQuietLitestream(t *testing.T) {
	for _, tc := range []struct {
		level    slog.Level
		wantInfo bool
	}{{slog.LevelInfo, false}, {slog.LevelDebug, true}} {
		var buf bytes.Buffer
		log := slog.New(quiet(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))).With("system", "litestream")
		log.Info("compaction complete")
		log.Warn("sync failed")
		out := buf.String()
		if strings.Contains(out, "compaction complete") != tc.wantInfo || !strings.Contains(out, "sync failed") || !strings.Contains(out, "system=litestream") {
			t.Errorf("at %v: %q", tc.level, out)
		}
	}
}
