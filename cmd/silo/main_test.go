package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) string { return "" }

// runMain starts `silo serve` through run, on 127.0.0.1:0, and returns its
// base URL and a function that stops it (as SIGTERM would) and returns run's
// error.
func runMain(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), noEnv, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`listening on (http://\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			stopped := false
			stop := func() error {
				if stopped {
					return nil
				}
				stopped = true
				cancel()
				select {
				case err := <-errc:
					return err
				case <-time.After(30 * time.Second):
					t.Fatal("run did not return after cancel")
					return nil
				}
			}
			t.Cleanup(func() { stop() })
			return m[1], stop
		}
		select {
		case err := <-errc:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func call(t *testing.T, method, url, host, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %q is not JSON", method, url, raw)
		}
	}
	return res.StatusCode, m
}

func TestServeEndToEnd(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--max-open-tenants", "2", "--operator-token", "op", "--no-backup")

	st, body := call(t, "POST", url+"/api/tenants", "localhost:8080", "", `{"slug":"acme","name":"Acme Inc"}`)
	if st != 201 {
		t.Fatalf("signup: %d %v", st, body)
	}
	token := body["token"].(string)
	st, body = call(t, "POST", url+"/api/projects", "acme.localhost", token, `{"name":"Apollo"}`)
	if st != 201 || body["name"] != "Apollo" {
		t.Fatalf("create project: %d %v", st, body)
	}
	st, body = call(t, "GET", url+"/api/projects", "acme.localhost", token, "")
	if st != 200 || len(body["projects"].([]any)) != 1 {
		t.Fatalf("list: %d %v", st, body)
	}
	if st, _ := call(t, "GET", url+"/api/operator/stats", "localhost", "op", ""); st != 200 {
		t.Fatalf("operator stats: %d", st)
	}

	// A clean stop drains requests and closes every tenant file: without
	// backups (which keep the WAL on purpose) the WAL is checkpointed away.
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(data, "tenants", "*"))
	for _, f := range files {
		if strings.HasSuffix(f, "-wal") || strings.HasSuffix(f, "-shm") {
			if fi, err := os.Stat(f); err == nil && fi.Size() > 0 && strings.HasSuffix(f, "-wal") {
				t.Errorf("%s left with %d bytes: the handle was not closed cleanly", f, fi.Size())
			}
		}
	}

	// The data survives a restart.
	url, _ = runMain(t, "--data", data)
	st, body = call(t, "GET", url+"/api/projects", "acme.localhost", token, "")
	if st != 200 || len(body["projects"].([]any)) != 1 {
		t.Fatalf("after restart: %d %v", st, body)
	}
}

func TestTenantsCommands(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	var out, errb syncBuffer
	if err := run(ctx, []string{"tenants", "create", "acme", "--name", "Acme Inc", "--data", data}, noEnv, &out, &errb); err != nil {
		t.Fatalf("create: %v %s", err, errb.String())
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "silo_") {
		t.Fatalf("create printed %q, want a token", token)
	}
	// Commands that only report do not create a mistyped data dir.
	typo := filepath.Join(t.TempDir(), "dta")
	for _, args := range [][]string{{"tenants", "list"}, {"migrate", "status"}, {"migrate", "verify"}} {
		if err := run(ctx, append(args, "--data", typo), noEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no data directory") {
			t.Errorf("%v on a missing data dir: %v", args, err)
		}
	}
	if _, err := os.Stat(typo); !os.IsNotExist(err) {
		t.Errorf("a report created the data dir %s: %v", typo, err)
	}
	// Nor a catalog in a data dir that has none (and no replica of one).
	bare := t.TempDir()
	if err := run(ctx, []string{"tenants", "list", "--data", bare}, noEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no catalog") {
		t.Errorf("tenants list on a data dir without a catalog: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bare, "catalog.db")); !os.IsNotExist(err) {
		t.Errorf("a report created a catalog: %v", err)
	}
	if err := run(ctx, []string{"tenants", "create", "acme", "--data", data}, noEnv, io.Discard, io.Discard); err == nil {
		t.Fatal("creating a taken slug succeeded")
	}
	// The environment supplies flags too: SILO_DATA.
	env := func(k string) string {
		if k == "SILO_DATA" {
			return data
		}
		return ""
	}
	out = syncBuffer{}
	if err := run(ctx, []string{"tenants", "list"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "acme") || !strings.Contains(out.String(), "Acme Inc") || !strings.Contains(out.String(), "database") {
		t.Fatalf("list: %s", out.String())
	}
	// The token works against a server on the same data dir.
	url, stop := runMain(t, "--data", data)
	if st, _ := call(t, "GET", url+"/api/projects", "acme.localhost", token, ""); st != 200 {
		t.Fatalf("token from the CLI: %d", st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"tenants", "delete", "acme", "--data", data}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(data, "tenants", "*")); len(files) != 0 {
		t.Fatalf("files left after delete: %v", files)
	}
	out = syncBuffer{}
	run(ctx, []string{"tenants", "list", "--data", data}, noEnv, &out, io.Discard)
	if !strings.Contains(out.String(), "deleted") {
		t.Fatalf("deleted tenant not listed as deleted: %s", out.String())
	}
	if err := run(ctx, []string{"bogus"}, noEnv, io.Discard, io.Discard); exitCode(err) != 2 {
		t.Fatalf("unknown command: %v", err)
	}
}

// signup signs up each slug on the server at url and returns their tokens.
func signup(t *testing.T, url string, slugs ...string) map[string]string {
	t.Helper()
	tokens := map[string]string{}
	for _, slug := range slugs {
		st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"`+slug+`"}`)
		if st != 201 {
			t.Fatalf("signup %s: %d %v", slug, st, body)
		}
		tokens[slug] = body["token"].(string)
	}
	return tokens
}
