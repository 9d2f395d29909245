package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchCommand runs `silo bench` end to end on a temp dir: a few
// tenants, half a second, JSON out.
func TestBenchCommand(t *testing.T) {
	var stdout, stderr syncBuffer
	dir := t.TempDir()
	err := run(context.Background(), []string{"bench", "--data", dir, "--tenants", "10", "--concurrency", "2",
		"--duration", "500ms", "--warmup", "0s", "--mix", "mixed", "--max-open-tenants", "4", "--json"}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var r struct {
		Tenants   int              `json:"tenants"`
		Requests  int64            `json:"requests"`
		ReqPerSec float64          `json:"req_per_s"`
		Errors    map[string]int64 `json:"errors"`
		Cache     struct {
			Misses int64 `json:"misses"`
		} `json:"cache"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if r.Tenants != 10 || r.Requests == 0 || r.ReqPerSec <= 0 || len(r.Errors) != 0 || r.Cache.Misses == 0 {
		t.Errorf("report: %+v", r)
	}

	for _, args := range [][]string{
		{"bench", "--mix", "everything"},
		{"bench", "--placement", "schema"},
		{"bench", "--compare", "--write-scaling"},
		{"bench", "--target", "http://127.0.0.1:1"},
		{"bench", "--target", "http://127.0.0.1:1", "--data", "x", "--backup"},
	} {
		if err := run(context.Background(), args, noEnv, &stdout, &stderr); exitCode(err) != 2 {
			t.Errorf("%s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}
