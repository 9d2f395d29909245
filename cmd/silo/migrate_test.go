package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/silohq/silo/internal/sqlite"
)

// TestMigrateCommands drives the fleet commands as an operator would:
// tenants rolled back to version 1, one file corrupted, `silo migrate`
// migrates the rest, and `status` and `verify` name the broken one.
func TestMigrateCommands(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	silo := func(args ...string) (string, error) {
		var out syncBuffer
		err := run(ctx, append(args, "--data", data), noEnv, &out, io.Discard)
		return out.String(), err
	}
	for i := range 12 {
		if _, err := silo("tenants", "create", fmt.Sprintf("m%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := silo("migrate", "down", "--to", "1"); err != nil || !strings.Contains(out, "12 migrated") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if out, _ := silo("migrate", "status"); !regexp.MustCompile(`(?m)^1\s+12$`).MatchString(out) {
		t.Fatalf("status at 1:\n%s", out)
	}
	// The catalog knows each tenant's id, and so its file.
	fileOf := func(slug string) string {
		out, _ := silo("tenants", "list")
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == slug {
				return filepath.Join(data, "tenants", f[1]+".db")
			}
		}
		t.Fatalf("no tenant %s in:\n%s", slug, out)
		return ""
	}
	// Corrupt m05's file.
	if err := os.WriteFile(fileOf("m05"), []byte(strings.Repeat("junk", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := silo("migrate", "--concurrency", "4", "--continue-on-error")
	if err == nil || !strings.Contains(out, "11 migrated") || !strings.Contains(out, "failed m05") {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, _ = silo("migrate", "status")
	if !strings.Contains(out, "failed: 1") || !strings.Contains(out, "m05") {
		t.Fatalf("status:\n%s", out)
	}
	out, err = silo("migrate", "verify")
	if err == nil || !strings.Contains(out, "0 drifted, 1 not readable") || !strings.Contains(out, "m05") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	// A schema changed by hand is drift, counted apart from the unreadable.
	db, err := sqlite.Open(fileOf("m03"), sqlite.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE INDEX by_hand ON projects (name)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, err = silo("migrate", "verify")
	if err == nil || !strings.Contains(err.Error(), "1 tenant(s) drifted, 1 not readable") || !strings.Contains(out, "1 drifted, 1 not readable") || !strings.Contains(out, "m03: schema at version 2") {
		t.Fatalf("verify with drift: %v\n%s", err, out)
	}
	// A failed run leaves the recorded version alone: a target this binary
	// does not know is refused up front, and a tenant whose file is missing
	// used to be recorded at version 0.
	before, _ := silo("migrate", "status")
	if _, err := silo("migrate", "down", "--to", "7", "--tenants", "m01"); exitCode(err) != 2 {
		t.Fatalf("down to an unknown version: %v", err)
	}
	if err := os.Remove(fileOf("m07")); err != nil {
		t.Fatal(err)
	}
	if _, err := silo("migrate", "down", "--to", "1", "--tenants", "m07"); err == nil {
		t.Fatal("migrating a tenant without its file succeeded")
	}
	versions := regexp.MustCompile(`(?m)^\d+\s+\d+$`)
	if after, _ := silo("migrate", "status"); fmt.Sprint(versions.FindAllString(after, -1)) != fmt.Sprint(versions.FindAllString(before, -1)) {
		t.Fatalf("failed runs changed the recorded versions:\n%s\nbefore:\n%s", after, before)
	}
	if _, err := silo("migrate", "down"); exitCode(err) != 2 {
		t.Fatalf("down without --to: %v", err)
	}
	if _, err := silo("migrate", "--tenants", "m01", "--canary", "5"); exitCode(err) != 2 {
		t.Fatalf("--tenants with --canary: %v", err)
	}
	// A tenant in shared.db is not migrated by name; the error says why.
	if out, err := silo("tenants", "create", "shx", "--strategy", "shared"); err != nil {
		t.Fatal(err, out)
	}
	if _, err := silo("migrate", "down", "--to", "1", "--tenants", "shx"); err == nil || !strings.Contains(err.Error(), "shx (shared)") {
		t.Fatalf("migrate of a shared tenant by name: %v", err)
	}
	// A mistyped --data is an error, not a new empty fleet.
	typo := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"migrate"}, {"migrate", "status"}, {"restore", "--all"}} {
		err := run(context.Background(), append(args, "--data", typo), noEnv, io.Discard, io.Discard)
		// restore --all may make the dir (a new machine, the replica
		// elsewhere), but not keep it when it finds nothing to restore.
		if err == nil || !(strings.Contains(err.Error(), "no data directory") || strings.Contains(err.Error(), "no catalog")) {
			t.Fatalf("%v on a missing data dir: %v", args, err)
		}
		if _, err := os.Stat(typo); !os.IsNotExist(err) {
			t.Fatalf("%v created the missing data dir", args)
		}
	}
}

// TestMigrateDownBesideServer: a rollback under a running server would
// drop columns its open tenants query, so the CLI refuses it, and the
// tenant keeps working at its version.
func TestMigrateDownBesideServer(t *testing.T) {
	data := t.TempDir()
	url, _ := runMain(t, "--data", data)
	tok := signup(t, url, "live")["live"]
	if st, _ := call(t, "GET", url+"/api/projects", "live.localhost", tok, ""); st != 200 {
		t.Fatal(st)
	}
	err := run(context.Background(), []string{"migrate", "down", "--to", "1", "--data", data}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "server is running") {
		t.Fatalf("migrate down beside the server: %v", err)
	}
	if st, b := call(t, "POST", url+"/api/projects", "live.localhost", tok, `{"name":"still"}`); st != 201 {
		t.Fatalf("after the refused rollback: %d %v", st, b)
	}
}
