package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIRefusesBeforeActing: command-line mistakes are usage errors (exit
// 2) that change nothing: no data dir, catalog or replica appears, and no
// tenant is purged. Each used to be accepted, or refused only after a new
// empty fleet had been made.
func TestCLIRefusesBeforeActing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	empty := t.TempDir() // exists, holds no fleet
	missing := filepath.Join(t.TempDir(), "nope")
	nested := filepath.Join(missing, "a", "b") // restore --all must not leave missing/a behind
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// Settings that would leave the tenants, or the catalog, unreplicated.
	ymlDir := t.TempDir()
	emptyYML := filepath.Join(ymlDir, "empty.yml")
	noTenantsYML := filepath.Join(ymlDir, "no-tenants.yml")
	os.WriteFile(emptyYML, nil, 0o600)
	os.WriteFile(noTenantsYML, []byte("dbs:\n  - path: data/catalog.db\n    replica:\n      url: file:///tmp/nowhere/catalog.db\n"), 0o600)
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool // a usage error (exit 2), else any error
	}{
		{"port out of range", []string{"serve", "--addr", "127.0.0.1:99999", "--data", missing}, true},
		{"no port", []string{"serve", "--addr", "127.0.0.1", "--data", missing}, true},
		{"port in use", []string{"serve", "--addr", taken.Addr().String(), "--data", missing}, false},
		{"litestream file missing", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--litestream", filepath.Join(empty, "none.yml")}, true},
		{"litestream file empty", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--litestream", emptyYML}, true},
		{"litestream file without the tenants", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--litestream", noTenantsYML}, true},
		{"retention zero", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--deleted-retention", "0"}, true},
		{"retention negative", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--deleted-retention", "-1h"}, true},
		{"shutdown timeout zero", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--shutdown-timeout", "0"}, true},
		{"empty base domain", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--base-domain", ""}, true},
		{"base domain with a port", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--base-domain", "localhost:8080"}, true},
		{"base domain with a space", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--base-domain", "Local Host"}, true},
		{"base domain a dot", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--base-domain", "."}, true},
		{"create invisible name", []string{"tenants", "create", "acme", "--name", "\u200b", "--data", missing}, true},
		{"create empty strategy", []string{"tenants", "create", "acme", "--strategy", "", "--data", missing}, true},
		{"server not http", []string{"tenants", "delete", "x", "--server", "ftp://127.0.0.1:1", "--data", missing}, true},
		{"negative idle timeout", []string{"serve", "--addr", "127.0.0.1:0", "--data", missing, "--tenant-idle-timeout", "-1s"}, true},
		{"create bad slug", []string{"tenants", "create", "Acme", "--data", missing}, true},
		{"create bad strategy", []string{"tenants", "create", "acme", "--strategy", "bogus", "--data", missing}, true},
		{"create schema without postgres", []string{"tenants", "create", "acme", "--strategy", "schema", "--data", missing}, true},
		{"create negative quota", []string{"tenants", "create", "acme", "--tenant-max-bytes", "-1", "--data", missing}, true},
		{"undelete in a missing dir", []string{"tenants", "undelete", "x", "--data", missing}, false},
		{"delete in a missing dir", []string{"tenants", "delete", "x", "--data", missing}, false},
		{"delete in an empty dir", []string{"tenants", "delete", "x", "--data", empty}, false},
		{"move in an empty dir", []string{"tenants", "move", "x", "--to", "shared", "--data", empty}, false},
		{"restore all in an empty dir", []string{"restore", "--all", "--data", empty}, false},
		{"restore all, no dir, no replica", []string{"restore", "--all", "--data", missing}, false},
		{"restore all, no dirs, no replica", []string{"restore", "--all", "--data", nested}, false},
		{"restore one in an empty dir", []string{"restore", "x", "--data", empty}, false},
		{"canary 100", []string{"migrate", "--canary", "100", "--data", empty}, true},
		{"canary 0 (would migrate every tenant)", []string{"migrate", "--canary", "0", "--data", empty}, true},
		{"negative concurrency", []string{"migrate", "--concurrency", "-1", "--data", empty}, true},
		{"negative busy timeout", []string{"migrate", "--busy-timeout", "-1s", "--data", empty}, true},
		{"empty --to", []string{"restore", "x", "--to", "", "--data", empty}, true},
		{"empty --server", []string{"restore", "x", "--server", "", "--data", empty}, true},
		{"restore at year 1", []string{"restore", "x", "--at", "0001-01-01T00:00:00Z", "--to", filepath.Join(empty, "c.db"), "--data", empty}, true},
		{"restore txid 0", []string{"restore", "x", "--txid", "0", "--to", filepath.Join(empty, "c.db"), "--data", empty}, true},
		{"backup status extra", []string{"backup", "status", "junk", "--data", empty}, true},
		{"version extra", []string{"version", "extra"}, true},
		{"bench zipf NaN", []string{"bench", "--zipf-s", "NaN", "--tenants", "5", "--duration", "1s"}, true},
		{"bench bad flag", []string{"bench", "--bogus"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(ctx, tc.args, noEnv, io.Discard, io.Discard)
			var ue *usageError
			switch {
			case err == nil:
				t.Fatalf("%v: accepted", tc.args)
			case tc.usage && !errors.As(err, &ue):
				t.Fatalf("%v: %v, want a usage error (exit 2)", tc.args, err)
			}
			if _, err := os.Stat(missing); !os.IsNotExist(err) {
				t.Fatalf("%v made the data dir %s", tc.args, missing)
			}
			// The lock file of a command that checked for a running
			// server is no fleet; anything else would be.
			ents, _ := os.ReadDir(empty)
			for _, ent := range ents {
				if ent.Name() != ".silo.lock" {
					t.Fatalf("%v left %s in an empty data dir", tc.args, ent.Name())
				}
			}
		})
	}
}

// TestMigrateEmptyDir: "silo migrate && silo serve" on a first deploy's
// empty volume succeeds and makes nothing: there is no fleet to migrate
// yet, and an empty catalog would hide a backup from the next start.
func TestMigrateEmptyDir(t *testing.T) {
	empty := t.TempDir()
	var stderr syncBuffer
	if err := run(context.Background(), []string{"migrate", "--data", empty}, noEnv, io.Discard, &stderr); err != nil {
		t.Fatalf("migrate on an empty data dir: %v", err)
	}
	if !strings.Contains(stderr.String(), "nothing to migrate") {
		t.Fatalf("migrate on an empty data dir said: %q", stderr.String())
	}
	ents, _ := os.ReadDir(empty)
	for _, ent := range ents {
		if ent.Name() != ".silo.lock" {
			t.Fatalf("migrate on an empty data dir made %s", ent.Name())
		}
	}
	if err := run(context.Background(), []string{"migrate", "status", "--data", empty}, noEnv, io.Discard, io.Discard); err == nil {
		t.Fatal("migrate status reported on a data dir with no fleet")
	}
}

// TestEnvDoesNotNameTargets: SILO_* variables set how Silo is deployed,
// never what one command acts on. SILO_TO left set in a shell would make
// `silo restore SLUG` write a copy instead of restoring in place (or the
// other way round for a move's target).
func TestEnvDoesNotNameTargets(t *testing.T) {
	env := map[string]string{"SILO_TO": "/tmp/elsewhere.db", "SILO_ALL": "true", "SILO_TENANTS": "t1", "SILO_DATA": "/srv/silo"}
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	var to, tenants, data string
	var all bool
	fs.StringVar(&to, "to", "", "")
	fs.StringVar(&tenants, "tenants", "", "")
	fs.BoolVar(&all, "all", false, "")
	fs.StringVar(&data, "data", "./data", "")
	if err := parseFlags(fs, []string{"acme"}, env_(func(k string) string { return env[k] })); err != nil {
		t.Fatal(err)
	}
	if to != "" || tenants != "" || all {
		t.Fatalf("the environment set --to %q, --tenants %q, --all %v", to, tenants, all)
	}
	if data != "/srv/silo" {
		t.Fatalf("SILO_DATA not applied: --data %q", data)
	}
}

func env_(getenv func(string) string) env {
	return env{getenv: getenv, stdout: io.Discard, stderr: io.Discard}
}

// TestHelpOfEveryCommand: -h of every command prints its usage and exits 0
// (`silo version -h` used to be an "unexpected argument", exit 2).
func TestHelpOfEveryCommand(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"bench"}, {"migrate"}, {"migrate", "status"}, {"restore"}, {"backup", "status"}, {"tenants", "list"}, {"tokens", "list"}, {"version"}} {
		var stdout, stderr syncBuffer
		err := run(context.Background(), append(cmd, "-h"), noEnv, &stdout, &stderr)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%v -h: %v", cmd, err)
		}
		if code := exitCode(err); code != 0 {
			t.Errorf("%v -h: exit %d", cmd, code)
		}
		if stdout.String()+stderr.String() == "" {
			t.Errorf("%v -h printed nothing", cmd)
		}
	}
}
