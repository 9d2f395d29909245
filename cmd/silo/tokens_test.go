package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokensCommands manages tokens with the CLI beside a running server:
// a second token is created, the first revoked, and the server refuses
// the revoked one on its very next request although the tenant's file is
// open, while the new one works; list shows when it was revoked.
func TestTokensCommands(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	silo := func(args ...string) (string, error) {
		var out, errb syncBuffer
		err := run(ctx, append(args, "--data", data), noEnv, &out, &errb)
		if err != nil {
			return out.String() + errb.String(), err
		}
		return out.String(), nil
	}
	out, err := silo("tenants", "create", "acme")
	if err != nil {
		t.Fatal(err, out)
	}
	first := strings.TrimSpace(out)

	url, _ := runMain(t, "--data", data, "--operator-token", "op")
	if st, body := call(t, "POST", url+"/api/projects", "acme.localhost", first, `{"name":"Apollo"}`); st != 201 {
		t.Fatalf("create with the first token: %d %v", st, body)
	}

	// The slug in any ASCII case, as the operator API and Host take it.
	out, err = silo("tokens", "create", "ACME", "--name", "ci")
	second := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(second, "silo_") || second == first {
		t.Fatalf("tokens create: %v %q", err, out)
	}
	rows := tokenRows(t, silo)
	if len(rows) != 2 || rows[0][1] != "owner" || rows[1][1] != "ci" || rows[0][3] != "-" || rows[1][3] != "-" {
		t.Fatalf("tokens list: %v", rows)
	}
	if _, err := silo("tokens", "revoke", "acme", rows[0][0]); err != nil {
		t.Fatal(err)
	}

	// The handle is open (the request above opened it), and the revoked
	// token is refused anyway: every request asks the catalog.
	st, body := call(t, "GET", url+"/api/operator/stats", "localhost", "op", "")
	if cache, _ := body["cache"].(map[string]any); st != 200 || cache["open_handles"] != float64(1) {
		t.Fatalf("stats: %d %v", st, body)
	}
	st, body = call(t, "GET", url+"/api/projects", "acme.localhost", first, "")
	if e, _ := body["error"].(map[string]any); st != 401 || e["code"] != "unauthorized" {
		t.Fatalf("revoked token: %d %v", st, body)
	}
	st, body = call(t, "GET", url+"/api/projects", "acme.localhost", second, "")
	if ps, _ := body["projects"].([]any); st != 200 || len(ps) != 1 {
		t.Fatalf("new token: %d %v", st, body)
	}

	rows = tokenRows(t, silo)
	if len(rows) != 2 || rows[0][3] == "-" || !strings.HasPrefix(rows[0][3], "20") || rows[1][3] != "-" {
		t.Fatalf("list after revoke: %v", rows)
	}

	// Mistakes are errors: revoking twice, an unknown tenant, a wrong
	// argument count, a data dir without a catalog (which is not created).
	if _, err := silo("tokens", "revoke", "acme", rows[0][0]); err == nil || exitCode(err) != 1 {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := silo("tokens", "list", "nobody"); err == nil {
		t.Fatal("list of an unknown tenant succeeded")
	}
	// A name that would break list's table (or is empty) is a usage error,
	// and creates no token.
	for _, bad := range []string{"", "  ", "a\tb", "line\nbreak", strings.Repeat("n", 201)} {
		if out, err := silo("tokens", "create", "acme", "--name", bad); exitCode(err) != 2 || !strings.Contains(err.Error(), "--name") {
			t.Fatalf("tokens create --name %q: %v (exit %d) %s", bad, err, exitCode(err), out)
		}
	}
	if rows := tokenRows(t, silo); len(rows) != 2 {
		t.Fatalf("a refused name created a token: %v", rows)
	}
	for _, args := range [][]string{{"tokens"}, {"tokens", "list"}, {"tokens", "revoke", "acme"}, {"tokens", "rotate", "acme"}} {
		if _, err := silo(args...); exitCode(err) != 2 {
			t.Fatalf("%v: %v, want a usage error", args, err)
		}
	}
	empty := filepath.Join(t.TempDir(), "typo")
	if err := run(ctx, []string{"tokens", "list", "acme", "--data", empty}, noEnv, io.Discard, io.Discard); err == nil {
		t.Fatal("tokens list on a missing data dir succeeded")
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Fatalf("tokens list created %s", empty)
	}
}

// tokenRows runs `tokens list acme` and returns its rows, split into
// ID, NAME, CREATED and REVOKED.
func tokenRows(t *testing.T, silo func(...string) (string, error)) [][]string {
	t.Helper()
	out, err := silo("tokens", "list", "acme")
	if err != nil {
		t.Fatal(err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "REVOKED") {
		t.Fatalf("tokens list header: %q", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("tokens list row %q", l)
		}
		rows = append(rows, f)
	}
	return rows
}

// TestTokensCreateRefusesDeletedTenant: a deleted tenant is not served, so
// a token made for it could never work (and would come back with an
// undelete, made after the delete): refused, nothing made. list and revoke
// still work on it.
func TestTokensCreateRefusesDeletedTenant(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	silo := func(args ...string) (string, error) {
		var out, errb syncBuffer
		err := run(ctx, append(args, "--data", data, "--no-backup"), noEnv, &out, &errb)
		return out.String() + errb.String(), err
	}
	for _, args := range [][]string{{"tenants", "create", "acme"}, {"tenants", "delete", "acme"}} {
		if out, err := silo(args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	out, err := silo("tokens", "create", "acme")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("tokens create for a deleted tenant: %v (exit %d) %s", err, exitCode(err), out)
	}
	if rows := tokenRows(t, silo); len(rows) != 1 || rows[0][1] != "owner" {
		t.Fatalf("tokens after the refused create: %v", rows)
	}
}

// TestDeleteWithoutBackupWarns: a delete under --no-backup does not sync
// the tenant's last writes to its replica, so an undelete would bring back
// an older state, or nothing: the CLI says so instead of promising the
// usual retention.
func TestDeleteWithoutBackupWarns(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	if err := run(ctx, []string{"tenants", "create", "acme", "--data", data, "--no-backup"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	if err := run(ctx, []string{"tenants", "delete", "acme", "--data", data, "--no-backup"}, noEnv, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if msg := stderr.String(); !strings.Contains(msg, "--no-backup") || strings.Contains(msg, "backup is kept") {
		t.Fatalf("delete under --no-backup said: %q", msg)
	}
}

// TestServerFlagNotFound: --server at a server whose operator API is off,
// or at a URL with a path it does not serve, says both possibilities; it
// used to blame the operator API for any 404.
func TestServerFlagNotFound(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--no-backup")
	defer stop()
	for _, server := range []string{url, url + "/prefix"} {
		err := run(context.Background(), []string{"backup", "status", "--server", server, "--operator-token", "op", "--data", data}, noEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "operator API is off") || !strings.Contains(err.Error(), "no path") {
			t.Fatalf("--server %s: %v", server, err)
		}
	}
}
