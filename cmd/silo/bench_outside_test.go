package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchOutsideGenerators drives a `silo serve` over a fleet that `silo
// bench --data` provisioned from outside its process, as docs/benchmarks.md
// tells: with `silo bench --target`, and with wrk and docs/fleet.lua (when
// wrk is installed; SILO_TEST_WRK names it and makes it required, as CI
// does). Every answer must be a 2xx, and the writes must land in the
// tenants the script was told to drive and no other.
func TestBenchOutsideGenerators(t *testing.T) {
	if testing.Short() {
		t.Skip("provisions a fleet and runs two load generators")
	}
	dir := t.TempDir()
	const tenants = 12
	var stdout, stderr syncBuffer
	err := run(context.Background(), []string{"bench", "--data", dir, "--tenants", strconv.Itoa(tenants),
		"--concurrency", "2", "--duration", "200ms", "--warmup", "0s", "--max-open-tenants", "4"}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("provision: %v\n%s", err, stderr.String())
	}
	url, stop := runMain(t, "--data", dir, "--no-backup", "--max-open-tenants", "4", "--operator-token", "op")

	// silo bench --target: the same mix, from the outside, with the
	// server's cache figures read through the operator API.
	stdout, stderr = syncBuffer{}, syncBuffer{}
	err = run(context.Background(), []string{"bench", "--target", url, "--data", dir, "--operator-token", "op",
		"--tenants", strconv.Itoa(tenants), "--concurrency", "2", "--duration", "700ms", "--warmup", "0s",
		"--mix", "mixed", "--json"}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench --target: %v\n%s", err, stderr.String())
	}
	var r struct {
		Target   string           `json:"target"`
		Requests int64            `json:"requests"`
		Writes   int64            `json:"writes"`
		Errors   map[string]int64 `json:"errors"`
		Cache    struct {
			Hits   int64 `json:"hits"`
			Misses int64 `json:"misses"`
		} `json:"cache"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if r.Target != url || r.Requests == 0 || r.Writes == 0 || len(r.Errors) != 0 || r.Cache.Hits+r.Cache.Misses == 0 {
		t.Errorf("bench --target report: %+v", r)
	}

	wrk := os.Getenv("SILO_TEST_WRK")
	if wrk == "" {
		var err error
		if wrk, err = exec.LookPath("wrk"); err != nil {
			t.Skip("wrk is not installed (SILO_TEST_WRK names it and makes it required)")
		}
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "docs", "fleet.lua"))
	if err != nil {
		t.Fatal(err)
	}
	fleet := filepath.Join(dir, "bench-fleet.json")
	var f struct {
		Database []struct {
			Slug  string `json:"slug"`
			Token string `json:"token"`
		} `json:"database"`
	}
	raw, err := os.ReadFile(fleet)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &f); err != nil || len(f.Database) != tenants {
		t.Fatalf("fleet file: %v, %d tenants", err, len(f.Database))
	}
	taskCounts := func() []int {
		out := make([]int, len(f.Database))
		for i, tn := range f.Database {
			for _, pid := range projectIDs(t, url, tn.Slug, tn.Token) {
				out[i] += len(listAll(t, url, tn.Slug, tn.Token, "/api/projects/"+pid+"/tasks", "tasks"))
			}
		}
		return out
	}
	wrkRun := func(args ...string) float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, wrk, append([]string{"-t1", "-c4", "-d1s", "-s", script, url, "--", fleet}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("wrk %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
			t.Fatalf("wrk %s: answers that were not 2xx, or errors:\n%s", strings.Join(args, " "), out)
		}
		m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindStringSubmatch(string(out))
		if m == nil || !strings.Contains(string(out), "p99 ") {
			t.Fatalf("wrk %s: no rate or percentiles in\n%s", strings.Join(args, " "), out)
		}
		rate, _ := strconv.ParseFloat(m[1], 64)
		if rate <= 0 {
			t.Fatalf("wrk %s: %s", strings.Join(args, " "), out)
		}
		return rate
	}

	// Reads over the whole fleet, Zipf: nothing written.
	before := taskCounts()
	wrkRun("placement=database", "mix=read", "dist=zipf", "zipf-s=1.1")
	// Writes to the first tenant only (the one-tenant ceiling's setting).
	wrkRun("mix=write", "dist=uniform", "tenants=1", "base-domain=localhost")
	after := taskCounts()
	if after[0] <= before[0] {
		t.Errorf("the write run created no task in the one tenant it drove: %d then %d", before[0], after[0])
	}
	for i := 1; i < len(after); i++ {
		if after[i] != before[i] {
			t.Errorf("tenant %d: %d tasks before, %d after a run told to drive only tenant 0", i, before[i], after[i])
		}
	}
	// Writes over every tenant, uniform: they reach more than one.
	wrkRun("mix=mixed", "dist=uniform")
	final := taskCounts()
	changed := 0
	for i := range final {
		if final[i] != after[i] {
			changed++
		}
	}
	if changed < 2 {
		t.Errorf("a mixed run over %d tenants wrote to %d of them", tenants, changed)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// projectIDs lists a tenant's project ids.
func projectIDs(t *testing.T, base, slug, token string) []string {
	t.Helper()
	var ids []string
	for id := range listAll(t, base, slug, token, "/api/projects", "projects") {
		ids = append(ids, id)
	}
	return ids
}
