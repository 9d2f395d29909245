package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
		{"bench", "--write-scaling", "--write-duration", "-1s"},
		{"bench", "--target", "http://127.0.0.1:1"},
		{"bench", "--target", "http://127.0.0.1:1", "--data", "x", "--backup"},
	} {
		if err := run(context.Background(), args, noEnv, &stdout, &stderr); exitCode(err) != 2 {
			t.Errorf("%s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// TestBenchBackupLag: `silo bench --backup` measures replication lag with
// probes on tenants set aside from the load, each write followed until the
// replica holds it; a second run on the same dir works too (probe names
// never repeat).
func TestBenchBackupLag(t *testing.T) {
	dir := t.TempDir()
	// Too few tenants for the probes: said, not silently left out.
	var stderr syncBuffer
	if err := run(context.Background(), []string{"bench", "--data", t.TempDir(), "--tenants", "4", "--concurrency", "1",
		"--duration", "200ms", "--warmup", "0s", "--backup", "--json"}, noEnv, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "not measured") {
		t.Fatalf("bench --backup with 4 tenants said: %q", stderr.String())
	}
	for run1 := range 2 {
		var stdout, stderr syncBuffer
		err := run(context.Background(), []string{"bench", "--data", dir, "--tenants", "12", "--concurrency", "2",
			"--duration", "3s", "--warmup", "500ms", "--mix", "mixed", "--max-open-tenants", "4", "--backup", "--json"}, noEnv, &stdout, &stderr)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run1, err, stderr.String())
		}
		var r struct {
			Tenants int              `json:"tenants"`
			Errors  map[string]int64 `json:"errors"`
			Lag     *struct {
				Samples int     `json:"samples"`
				P50     float64 `json:"p50_ms"`
				Max     float64 `json:"max_ms"`
				Lost    int     `json:"not_replicated"`
				Failed  int     `json:"failed_writes"`
			} `json:"replication_lag"`
		}
		if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout.String())
		}
		if r.Tenants != 8 || len(r.Errors) != 0 {
			t.Fatalf("run %d: load on %d tenants (want 12 minus 4 probes), errors %v", run1, r.Tenants, r.Errors)
		}
		if l := r.Lag; l == nil || l.Samples == 0 || l.Failed != 0 || l.Lost != 0 || !(0 < l.P50 && l.P50 <= l.Max && l.Max < 30_000) {
			t.Fatalf("run %d: replication lag %+v", run1, l)
		}
	}
}

// TestBenchResumesAfterInterruptedProvisioning: a run stopped while it
// provisioned (^C) made tenants past the last one it recorded in
// bench-fleet.json, whose tokens are lost; every later run on the dir then
// failed with slug_taken. The next run now provisions under other names
// and drives the whole fleet.
func TestBenchResumesAfterInterruptedProvisioning(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	bench := func(n int) (string, error) {
		var stdout, stderr syncBuffer
		err := run(ctx, []string{"bench", "--data", dir, "--tenants", strconv.Itoa(n), "--concurrency", "2",
			"--duration", "300ms", "--warmup", "0s", "--max-open-tenants", "4", "--json"}, noEnv, &stdout, &stderr)
		if err != nil {
			return stderr.String(), err
		}
		return stdout.String(), nil
	}
	if out, err := bench(4); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	// What the stopped run left: the next slug taken, not in the file.
	if err := run(ctx, []string{"tenants", "create", "d000004", "--data", dir, "--no-backup"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	out, err := bench(7)
	if err != nil {
		t.Fatalf("the run after: %v\n%s", err, out)
	}
	var r struct {
		Tenants  int              `json:"tenants"`
		Requests int64            `json:"requests"`
		Errors   map[string]int64 `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Tenants != 7 || r.Requests == 0 || len(r.Errors) != 0 {
		t.Fatalf("report: %+v, %v\n%s", r, err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "bench-fleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Database []struct{ Slug string } `json:"database"`
	}
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Database) != 7 {
		t.Fatalf("fleet file: %v, %d tenants", err, len(f.Database))
	}
	if s := f.Database[4].Slug; s == "d000004" || !strings.HasPrefix(s, "d000004-") {
		t.Fatalf("the tenant provisioned in place of the taken slug is %q", s)
	}
}

// TestBenchStoppedWhileProvisioning: ^C while provisioning keeps the
// tenants made so far in bench-fleet.json, and only whole ones (a worker
// stopped between tenants used to leave empty entries), and the next run
// goes on from there.
func TestBenchStoppedWhileProvisioning(t *testing.T) {
	if testing.Short() {
		t.Skip("provisions for a while")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	err := run(ctx, []string{"bench", "--data", dir, "--tenants", "3000", "--duration", "200ms", "--warmup", "0s"}, noEnv, io.Discard, io.Discard)
	if err == nil {
		t.Skip("provisioning finished before the stop; nothing to check")
	}
	raw, rerr := os.ReadFile(filepath.Join(dir, "bench-fleet.json"))
	if rerr != nil {
		t.Fatalf("no fleet file after a stopped run (%v): %v", err, rerr)
	}
	var f struct {
		Database []struct {
			Slug, Token string
		} `json:"database"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for i, tn := range f.Database {
		if tn.Slug == "" || tn.Token == "" {
			t.Fatalf("entry %d of %d in the fleet file is empty", i, len(f.Database))
		}
	}
	n := len(f.Database) + 3
	var stdout syncBuffer
	if err := run(context.Background(), []string{"bench", "--data", dir, "--tenants", strconv.Itoa(n), "--concurrency", "2",
		"--duration", "300ms", "--warmup", "0s", "--json"}, noEnv, &stdout, io.Discard); err != nil {
		t.Fatalf("the run after a stopped one: %v", err)
	}
	var r struct {
		Tenants int              `json:"tenants"`
		Errors  map[string]int64 `json:"errors"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil || r.Tenants != n || len(r.Errors) != 0 {
		t.Fatalf("report: %+v, %v", r, err)
	}
}
