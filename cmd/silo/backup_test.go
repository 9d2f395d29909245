package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/silohq/silo/internal/sqlite"
	_ "modernc.org/sqlite"
)

// rows returns a tenant file's projects and tasks, in order, as text.
func rows(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		"SELECT id, tenant_id, name, archived, created_at, updated_at FROM projects ORDER BY id",
		"SELECT id, tenant_id, project_id, title, done, coalesce(due_at, 0), created_at, updated_at FROM tasks ORDER BY id",
	} {
		rs, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		cols, _ := rs.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rs.Next() {
			rs.Scan(ptrs...)
			fmt.Fprintln(&b, vals...)
		}
		rs.Close()
	}
	var check string
	db.QueryRow("PRAGMA integrity_check").Scan(&check)
	if check != "ok" {
		t.Fatalf("%s: integrity_check %q", path, check)
	}
	return b.String()
}

// markNames returns, in id order, the names of a tenant file's projects
// that are one letter long: the marks ("A", "B", ...) the tests write
// around points in time, among other projects with longer names.
func markNames(t *testing.T, path string) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(rows(t, path), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && len(f[2]) == 1 {
			names = append(names, f[2])
		}
	}
	return names
}

func tenantFiles(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var buf syncBuffer
	if err := run(context.Background(), []string{"tenants", "list", "--data", data}, noEnv, &buf, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(buf.String(), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 1 {
			out[f[0]] = filepath.Join(data, "tenants", f[1]+".db")
		}
	}
	return out
}

// loseAllButReplica simulates a disaster with the default settings, whose
// replica is inside the data dir: everything else in it is gone.
func loseAllButReplica(t *testing.T, data string) {
	t.Helper()
	ents, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "replica" {
			if err := os.RemoveAll(filepath.Join(data, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// stockLitestream returns the stock Litestream CLI (v0.5.18, the version
// Silo embeds): $SILO_TEST_LITESTREAM, which CI sets and which must then
// exist, or litestream on $PATH; without either the caller skips.
func stockLitestream(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SILO_TEST_LITESTREAM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SILO_TEST_LITESTREAM: %v", err)
		}
		return p
	}
	p, err := exec.LookPath("litestream")
	if err != nil {
		t.Skip("no litestream CLI (go install github.com/benbjohnson/litestream/cmd/litestream@v0.5.18, or set SILO_TEST_LITESTREAM)")
	}
	return p
}

// TestBackupRestoreEndToEnd runs serve with the default backup settings
// and a cache of 2 over 6 tenants (every tenant is opened and evicted many
// times), stops it, restores every tenant with `silo restore --to` and with
// the stock Litestream CLI and compares with the live files; then restores
// one tenant to points in time.
func TestBackupRestoreEndToEnd(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--max-open-tenants", "2", "--operator-token", "op")
	tokens := map[string]string{}
	for i := range 6 {
		slug := fmt.Sprintf("b%d", i)
		st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"`+slug+`"}`)
		if st != 201 {
			t.Fatalf("signup: %d %v", st, body)
		}
		tokens[slug] = body["token"].(string)
	}
	for round := range 5 {
		for slug, tok := range tokens {
			if st, b := call(t, "POST", url+"/api/projects", slug+".localhost", tok, fmt.Sprintf(`{"name":"r%d"}`, round)); st != 201 {
				t.Fatalf("write: %d %v", st, b)
			}
		}
	}
	// Point in time: A, B, C on b0. Each mark is taken once the replica's
	// latest state holds the write (a restore of it shows the write; a
	// moved transaction id is not enough: it may be an earlier write's) and
	// a second before the next write, so a restore at a mark holds exactly
	// the writes before it, however loaded the machine.
	latestHas := func(name string) bool {
		p := filepath.Join(t.TempDir(), "latest.db")
		if err := run(context.Background(), []string{"restore", "b0", "--to", p, "--data", data}, noEnv, io.Discard, io.Discard); err != nil {
			return false
		}
		return slices.Contains(markNames(t, p), name)
	}
	var marks []time.Time
	for _, name := range []string{"A", "B", "C"} {
		if st, _ := call(t, "POST", url+"/api/projects", "b0.localhost", tokens["b0"], `{"name":"`+name+`"}`); st != 201 {
			t.Fatal(st)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !latestHas(name) {
			if time.Now().After(deadline) {
				t.Fatalf("write %s never replicated", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		marks = append(marks, time.Now())
		time.Sleep(600 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	files := tenantFiles(t, data)
	out := t.TempDir()
	for slug, live := range files {
		copyPath := filepath.Join(out, slug+".db")
		var so, se syncBuffer
		if err := run(context.Background(), []string{"restore", slug, "--to", copyPath, "--data", data}, noEnv, &so, &se); err != nil {
			t.Fatalf("restore %s: %v %s", slug, err, se.String())
		}
		if got, want := rows(t, copyPath), rows(t, live); got != want || want == "" {
			t.Fatalf("%s: restored copy differs from the live file:\n%s\nlive:\n%s", slug, got, want)
		}
		// Tenant data is for its owner's eyes only, wherever the copy goes.
		if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: restored copy's mode: %v %v", slug, fi.Mode(), err)
		}
	}
	// A transaction the backup does not hold is the operator's mistake, said
	// plainly (it used to read "No backup to restore: ...restore plan...").
	err := run(context.Background(), []string{"restore", "b0", "--txid", "999999999", "--to", filepath.Join(out, "none.db"), "--data", data}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "holds no state at that point") {
		t.Fatalf("restore of a transaction the backup lacks: %v", err)
	}
	// The stock Litestream CLI restores the same replicas without Silo,
	// with the command the README gives.
	t.Run("stock CLI", func(t *testing.T) {
		bin := stockLitestream(t)
		for slug, live := range files {
			p := filepath.Join(out, slug+"-stock.db")
			url := "file://" + filepath.Join(data, "replica", "tenants", filepath.Base(live))
			if b, err := exec.Command(bin, "restore", "-o", p, url).CombinedOutput(); err != nil {
				t.Fatalf("litestream restore %s: %v\n%s", url, err, b)
			}
			if got, want := rows(t, p), rows(t, live); got != want {
				t.Fatalf("%s: the stock CLI's copy differs from the live file:\n%s\nlive:\n%s", slug, got, want)
			}
		}
	})
	names := func(path string) string { return strings.Join(markNames(t, path), "") }
	for i, want := range []string{"A", "AB"} {
		at := marks[i].UTC().Format(time.RFC3339Nano)
		p := filepath.Join(out, fmt.Sprintf("pitr%d.db", i))
		if err := run(context.Background(), []string{"restore", "b0", "--at", at, "--to", p, "--data", data}, noEnv, io.Discard, io.Discard); err != nil {
			t.Fatalf("restore --at %s: %v", at, err)
		}
		if got := names(p); got != want {
			t.Fatalf("restore at %s: projects %q, want %q", at, got, want)
		}
	}
}

// TestDisasterRecovery starts silo on an empty data dir with the
// litestream.yml of a lost one: the catalog comes back on boot and each
// tenant on its first request.
func TestDisasterRecovery(t *testing.T) {
	replica := t.TempDir()
	yml := filepath.Join(t.TempDir(), "litestream.yml")
	os.WriteFile(yml, []byte(fmt.Sprintf(`dbs:
  - path: data/catalog.db
    replica:
      url: file://%s/catalog.db
  - dir: data/tenants
    pattern: "*.db"
    replica:
      url: file://%s/tenants
`, replica, replica)), 0o600)

	lost := t.TempDir()
	url, stop := runMain(t, "--data", lost, "--litestream", yml)
	st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"phoenix"}`)
	if st != 201 {
		t.Fatal(st, body)
	}
	tok := body["token"].(string)
	for _, n := range []string{"one", "two"} {
		if st, _ := call(t, "POST", url+"/api/projects", "phoenix.localhost", tok, `{"name":"`+n+`"}`); st != 201 {
			t.Fatal(st)
		}
	}
	st, body = call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"doomed"}`)
	if st != 201 {
		t.Fatal(st, body)
	}
	doomedID := body["tenant"].(map[string]any)["id"].(string)
	if st, _ := call(t, "POST", url+"/api/projects", "doomed.localhost", body["token"].(string), `{"name":"x"}`); st != 201 {
		t.Fatal(st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// What an earlier recovery that crashed left: the lost catalog's hot
	// journal, and a download cut short, under its own name and
	// Litestream's. They go; none is taken for the catalog.
	fresh := t.TempDir()
	leftovers := []string{"catalog.db-journal", "catalog.db.restore-0123", "catalog.db.restore-0123.tmp"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(fresh, name), []byte("stale"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	url, stop = runMain(t, "--data", fresh, "--litestream", yml)
	st, body = call(t, "GET", url+"/api/projects", "phoenix.localhost", tok, "")
	if st != 200 || len(body["projects"].([]any)) != 2 {
		t.Fatalf("after recovery: %d %v", st, body)
	}
	stop()
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(fresh, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the recovery: %v", name, err)
		}
	}
	// All at once, on a machine with no data dir yet: restore --all makes
	// it. One tenant's backup is lost: that one fails, and the dir, which
	// holds the catalog and the other tenant, stays (it used to be removed
	// on any error, restored data and all).
	if err := os.RemoveAll(filepath.Join(replica, "tenants", doomedID+".db")); err != nil {
		t.Fatal(err)
	}
	newMachine := filepath.Join(t.TempDir(), "data")
	err := run(context.Background(), []string{"restore", "--all", "--data", newMachine, "--litestream", yml}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "could not be restored") {
		t.Fatalf("restore --all with one backup lost: %v", err)
	}
	if _, err := os.Stat(filepath.Join(newMachine, "catalog.db")); err != nil {
		t.Fatalf("the restored catalog is gone: %v", err)
	}
	files := tenantFiles(t, newMachine)
	if _, err := os.Stat(files["phoenix"]); err != nil {
		t.Fatalf("phoenix's restored file is gone: %v", err)
	}
	if _, err := os.Stat(files["doomed"]); !os.IsNotExist(err) {
		t.Fatalf("the tenant whose backup was lost has a file: %v", err)
	}
}

// TestDisasterRecoveryDefaultConfig does the same with the built-in
// litestream.yml, whose replica is inside the data dir: everything but
// data/replica/ is lost. A read-only command run first must not hide the
// backup (it restores the catalog too); then serve brings back a tenant in
// its own file, one in the shared file, and one that signed up and was
// never used (it has no replica: it comes back empty).
func TestDisasterRecoveryDefaultConfig(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--operator-token", "op")
	tokens := signup(t, url, "phoenix", "flat", "idle", "lost")
	for _, slug := range []string{"phoenix", "flat", "lost"} {
		if st, _ := call(t, "POST", url+"/api/projects", slug+".localhost", tokens[slug], `{"name":"one"}`); st != 201 {
			t.Fatal(st)
		}
	}
	if st, b := call(t, "POST", url+"/api/operator/tenants/flat/move", "localhost", "op", `{"to":"shared"}`); st != 200 {
		t.Fatalf("move: %d %v", st, b)
	}
	if st, _ := call(t, "POST", url+"/api/projects", "flat.localhost", tokens["flat"], `{"name":"two"}`); st != 201 {
		t.Fatal(st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Catalog changes the CLI makes while no server runs reach the replica
	// too: a token revoked now must stay revoked after the disaster, and a
	// tenant created now must exist.
	var list syncBuffer
	if err := run(context.Background(), []string{"tokens", "list", "flat", "--data", data}, noEnv, &list, io.Discard); err != nil {
		t.Fatal(err)
	}
	owner := strings.Fields(strings.Split(list.String(), "\n")[1])[0]
	for _, args := range [][]string{{"tokens", "revoke", "flat", owner}, {"tenants", "create", "latecomer"}} {
		if err := run(context.Background(), append(args, "--data", data), noEnv, io.Discard, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// "lost" was backed up, but its replica is gone too (or, on a new
	// machine, the settings point elsewhere): it must not come back empty.
	lostFile := tenantFiles(t, data)["lost"]
	if err := os.RemoveAll(filepath.Join(data, "replica", "tenants", filepath.Base(lostFile))); err != nil {
		t.Fatal(err)
	}
	loseAllButReplica(t, data)
	// The first command on the emptied dir is one that opens only the
	// catalog: it brings the catalog back too (it used to find none).
	list = syncBuffer{}
	if err := run(context.Background(), []string{"tokens", "list", "flat", "--data", data}, noEnv, &list, io.Discard); err != nil || !strings.Contains(list.String(), "owner") {
		t.Fatalf("tokens list on the emptied data dir: %v\n%s", err, list.String())
	}
	list = syncBuffer{}
	if err := run(context.Background(), []string{"tenants", "list", "--data", data}, noEnv, &list, io.Discard); err != nil || !strings.Contains(list.String(), "phoenix") || !strings.Contains(list.String(), "latecomer") {
		t.Fatalf("tenants list on the emptied data dir: %v\n%s", err, list.String())
	}
	// All at once, before serving: the tenants in their own files (the
	// shared one came back with shared.db; "lost" fails), with a progress
	// count.
	var out, progress syncBuffer
	if err := run(context.Background(), []string{"restore", "--all", "--data", data}, noEnv, &out, &progress); err == nil ||
		!strings.Contains(out.String(), "restored 3 tenant(s)") || !strings.Contains(progress.String(), "4/4 tenants, 1 failed") {
		t.Fatalf("restore --all (lost fails, the others come back): %v\n%s%s", err, out.String(), progress.String())
	}
	url, _ = runMain(t, "--data", data)
	if st, body := call(t, "GET", url+"/api/projects", "lost.localhost", tokens["lost"], ""); st != 503 {
		t.Errorf("lost after recovery: %d %v, want 503", st, body)
	}
	if _, err := os.Stat(lostFile); !os.IsNotExist(err) {
		t.Errorf("lost's file was re-created: %v", err)
	}
	if st, _ := call(t, "GET", url+"/api/projects", "flat.localhost", tokens["flat"], ""); st != 401 {
		t.Errorf("a token revoked before the disaster answers %d", st)
	}
	delete(tokens, "flat")
	for slug, want := range map[string]string{"phoenix": "one", "idle": ""} {
		st, body := call(t, "GET", url+"/api/projects", slug+".localhost", tokens[slug], "")
		ps, _ := body["projects"].([]any)
		var names []string
		for _, p := range ps {
			names = append(names, p.(map[string]any)["name"].(string))
		}
		if st != 200 || strings.Join(names, " ") != want {
			t.Errorf("%s after recovery: %d %v, want projects %q", slug, st, body, want)
		}
	}
}

// TestSharedReplicaLost: after a disaster, shared.db is missing and so is
// its replica, but the catalog places a tenant in it. Serving that tenant
// from a new empty shared.db would hide the loss: serve refuses to start,
// and says how to accept it (--no-backup once).
func TestSharedReplicaLost(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--default-strategy", "shared")
	tok := signup(t, url, "roomie")["roomie"]
	call(t, "POST", url+"/api/projects", "roomie.localhost", tok, `{"name":"mine"}`)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	loseAllButReplica(t, data)
	os.RemoveAll(filepath.Join(data, "replica", "shared.db"))
	// Bounded: a serve that wrongly starts is stopped, and the test fails.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "shared.db is missing and its replica is empty") {
		t.Fatalf("serve with shared.db's rows lost: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "shared.db")); !os.IsNotExist(err) {
		t.Fatalf("the refused start created shared.db: %v", err)
	}
	// Accepting the loss: one start without backups.
	url, stop = runMain(t, "--data", data, "--no-backup")
	if st, body := call(t, "GET", url+"/api/projects", "roomie.localhost", tok, ""); st != 200 || len(body["projects"].([]any)) != 0 {
		t.Fatalf("after accepting the loss: %d %v", st, body)
	}
	stop()
}

// TestMoveAfterDisasterRecovery: a tenant's file comes back on its first
// use after disaster recovery, and a move is one (it answered 500).
func TestMoveAfterDisasterRecovery(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data)
	tok := signup(t, url, "mover")["mover"]
	call(t, "POST", url+"/api/projects", "mover.localhost", tok, `{"name":"kept"}`)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	loseAllButReplica(t, data)
	url, _ = runMain(t, "--data", data, "--operator-token", "op")
	if st, b := call(t, "POST", url+"/api/operator/tenants/mover/move", "localhost", "op", `{"to":"shared"}`); st != 200 {
		t.Fatalf("move before any request: %d %v", st, b)
	}
	st, body := call(t, "GET", url+"/api/projects", "mover.localhost", tok, "")
	if ps, _ := body["projects"].([]any); st != 200 || len(ps) != 1 {
		t.Fatalf("after the move: %d %v", st, body)
	}
}

// TestBackupOfWrittenFiles: a file that a move into its own placement or
// an in-place restore writes is backed up before the tenant is released,
// so the replica's newest state is that file even if no request opens it
// before the server stops.
func TestBackupOfWrittenFiles(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--operator-token", "op")
	tokens := signup(t, url, "mover", "rewind")
	write := func(slug, name string) {
		t.Helper()
		if st, b := call(t, "POST", url+"/api/projects", slug+".localhost", tokens[slug], `{"name":"`+name+`"}`); st != 201 {
			t.Fatalf("write %s: %d %v", name, st, b)
		}
	}
	move := func(to string) {
		t.Helper()
		if st, b := call(t, "POST", url+"/api/operator/tenants/mover/move", "localhost", "op", `{"to":"`+to+`"}`); st != 200 {
			t.Fatalf("move to %s: %d %v", to, st, b)
		}
	}
	// mover: written in its file, moved out, written in the shared file,
	// moved back: no request after that.
	write("mover", "A")
	move("shared")
	write("mover", "B")
	move("database")
	// rewind: A, then a mark once A is replicated, then B; restored to the
	// mark in place: no request after that.
	write("rewind", "A")
	if err := stop(); err != nil { // replicates A
		t.Fatal(err)
	}
	mark := time.Now()
	time.Sleep(1100 * time.Millisecond)
	url, stop = runMain(t, "--data", data, "--operator-token", "op")
	write("rewind", "B")
	if st, b := call(t, "POST", url+"/api/operator/tenants/rewind/restore", "localhost", "op", `{"at":"`+mark.UTC().Format(time.RFC3339Nano)+`"}`); st != 200 {
		t.Fatalf("restore: %d %v", st, b)
	}
	// Points that are none: the zero time and txid 0 used to mean "the
	// latest" when given explicitly (200, the newest state restored).
	for _, body := range []string{`{"at":"0001-01-01T00:00:00Z"}`, `{"txid":0}`, `{"at":"2999-01-01T00:00:00Z"}`, `{"at":null}`, `{"at":""}`} {
		if st, b := call(t, "POST", url+"/api/operator/tenants/rewind/restore", "localhost", "op", body); st != 400 {
			t.Errorf("restore %s: %d %v, want 400", body, st, b)
		}
	}
	// What older CLIs send for "the latest" still means it.
	if st, b := call(t, "POST", url+"/api/operator/tenants/rewind/restore", "localhost", "op", `{"at":"","txid":0}`); st != 200 {
		t.Errorf("restore of the latest as older CLIs ask for it: %d %v", st, b)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	files := tenantFiles(t, data)
	for slug, want := range map[string]string{"mover": "A B", "rewind": "A"} {
		p := filepath.Join(t.TempDir(), slug+".db")
		if err := run(context.Background(), []string{"restore", slug, "--to", p, "--data", data}, noEnv, io.Discard, io.Discard); err != nil {
			t.Fatalf("restore %s: %v", slug, err)
		}
		if got := strings.Join(markNames(t, p), " "); got != want {
			t.Errorf("%s: the replica's latest state has projects %q, want %q (live file: %q)", slug, got, want, rows(t, files[slug]))
		}
	}
}

// TestDeleteUndelete deletes a tenant through the running server (the CLI
// refuses to act behind its back) and brings it back from its backup.
func TestDeleteUndelete(t *testing.T) {
	data := t.TempDir()
	url, _ := runMain(t, "--data", data, "--operator-token", "op")
	st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"lazarus"}`)
	if st != 201 {
		t.Fatal(st, body)
	}
	tok := body["token"].(string)
	call(t, "POST", url+"/api/projects", "lazarus.localhost", tok, `{"name":"keep me"}`)

	ctx := context.Background()
	err := run(ctx, []string{"tenants", "delete", "lazarus", "--data", data}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "server is running") {
		t.Fatalf("delete behind the server's back: %v", err)
	}
	// Moves and status go through the running server too.
	var out syncBuffer
	if err := run(ctx, []string{"tenants", "move", "lazarus", "--to", "shared", "--data", data, "--server", url, "--operator-token", "op"}, noEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), `"to":"shared"`) {
		t.Fatalf("move through the server: %v %s", err, out.String())
	}
	// In the shared file, its backup is shared.db's: status says where that
	// stands rather than txid 0.
	_, status := call(t, "GET", url+"/api/operator/backup", "localhost", "op", "")
	for _, x := range status["tenants"].([]any) {
		if m := x.(map[string]any); m["slug"] == "lazarus" && (m["strategy"] != "shared" || m["txid"].(float64) == 0 || m["open"] != true) {
			t.Fatalf("backup status of a shared tenant: %v", m)
		}
	}
	if err := run(ctx, []string{"tenants", "move", "lazarus", "--to", "database", "--data", data, "--server", url, "--operator-token", "wrong"}, noEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("move with a wrong operator token: %v", err)
	}
	if err := run(ctx, []string{"tenants", "move", "lazarus", "--to", "database", "--data", data, "--server", url, "--operator-token", "op"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	out = syncBuffer{}
	if err := run(ctx, []string{"backup", "status", "--server", url, "--operator-token", "op"}, noEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), "lazarus") {
		t.Fatalf("backup status through the server: %v %s", err, out.String())
	}
	if st, body := call(t, "GET", url+"/api/projects", "lazarus.localhost", tok, ""); st != 200 || len(body["projects"].([]any)) != 1 {
		t.Fatalf("after moves: %d %v", st, body)
	}
	if err := run(ctx, []string{"tenants", "delete", "lazarus", "--data", data, "--server", url, "--operator-token", "op"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, "GET", url+"/api/projects", "lazarus.localhost", tok, ""); st != 404 {
		t.Fatalf("deleted tenant answers %d", st)
	}
	if st, _ := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"lazarus"}`); st != 409 {
		t.Fatalf("slug of a deleted tenant is free during retention: %d", st)
	}
	// Deleting it again is refused: it would restart the retention period.
	if st, b := call(t, "DELETE", url+"/api/operator/tenants/lazarus", "localhost", "op", ""); st != 409 {
		t.Fatalf("second delete: %d %v", st, b)
	}
	if err := run(ctx, []string{"tenants", "undelete", "lazarus", "--data", data}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatalf("undelete: %v", err)
	}
	st, body = call(t, "GET", url+"/api/projects", "lazarus.localhost", tok, "")
	if st != 200 || len(body["projects"].([]any)) != 1 {
		t.Fatalf("after undelete: %d %v", st, body)
	}
}

// TestReplicaOutage breaks the replica (its directory becomes a file) while
// tenants are written and evicted: no request fails because of it, and once
// the replica is back every tenant's backup catches up with its file.
func TestReplicaOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for the backup retry loop")
	}
	replica := filepath.Join(t.TempDir(), "replica")
	yml := filepath.Join(t.TempDir(), "litestream.yml")
	os.WriteFile(yml, []byte(fmt.Sprintf(`dbs:
  - path: data/catalog.db
    replica:
      url: file://%s/catalog.db
  - dir: data/tenants
    pattern: "*.db"
    replica:
      url: file://%s/tenants
`, replica, replica)), 0o600)
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--litestream", yml, "--max-open-tenants", "2", "--signup-rate", "0")
	tokens := map[string]string{}
	for i := range 5 {
		slug := fmt.Sprintf("o%d", i)
		_, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"`+slug+`"}`)
		tokens[slug] = body["token"].(string)
		call(t, "POST", url+"/api/projects", slug+".localhost", tokens[slug], `{"name":"before"}`)
	}
	// The outage.
	if err := os.Rename(replica, replica+".away"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(replica, []byte("not a directory"), 0o600)
	for round := range 3 {
		for slug, tok := range tokens {
			start := time.Now()
			st, body := call(t, "POST", url+"/api/projects", slug+".localhost", tok, fmt.Sprintf(`{"name":"during-%d"}`, round))
			if st != 201 {
				t.Fatalf("write during the outage: %d %v", st, body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("a write took %s during the outage", d)
			}
		}
	}
	// The replica comes back, in one step: with a gap between removing the
	// file and renaming the directory back, a sync retried meanwhile made
	// a new replica directory there, and the rename failed. Give the retry
	// loop a turn, then stop.
	if err := swapPaths(replica+".away", replica); err != nil {
		t.Fatal(err)
	}
	os.Remove(replica + ".away")
	time.Sleep(7 * time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	for slug, live := range tenantFiles(t, data) {
		p := filepath.Join(out, slug+".db")
		if err := run(context.Background(), []string{"restore", slug, "--to", p, "--data", data, "--litestream", yml}, noEnv, io.Discard, io.Discard); err != nil {
			t.Fatalf("restore %s: %v", slug, err)
		}
		if got, want := rows(t, p), rows(t, live); got != want {
			t.Fatalf("%s: backup behind the file after the outage:\n%s\nlive:\n%s", slug, got, want)
		}
	}
}

// TestRestoreFlagMistakes gives `silo restore` flag combinations it must
// refuse, beside a running server: each is a usage error (no panic, no
// restore through the server, no copy written) and the tenant is untouched.
func TestRestoreFlagMistakes(t *testing.T) {
	data := t.TempDir()
	url, _ := runMain(t, "--data", data, "--operator-token", "op")
	tok := signup(t, url, "keep")["keep"]
	if st, _ := call(t, "POST", url+"/api/projects", "keep.localhost", tok, `{"name":"after"}`); st != 201 {
		t.Fatal(st)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	for _, args := range [][]string{
		{"--all", "--server", url, "--operator-token", "op"},
		{"--all", "--at", "2026-01-01T00:00:00Z"},
		{"--all", "--txid", "1"},
		{"--all", "--to", copyPath},
		{"keep", "--to", copyPath, "--server", url, "--operator-token", "op"},
		{"keep", "--at", "yesterday"},
		{"keep", "--at", "2026-01-01T00:00:00Z", "--txid", "1"},
		{"keep", "other"},
		{"keep", "--txid", "-1"},
		{"keep", "--no-such-flag"},
		{},
	} {
		err := run(context.Background(), append([]string{"restore", "--data", data}, args...), noEnv, io.Discard, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("restore %q: %v, want a usage error", args, err)
		}
	}
	// Without --server, --all is refused by the data dir's lock, with advice.
	err := run(context.Background(), []string{"restore", "--all", "--data", data}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "first request") {
		t.Errorf("restore --all beside a server: %v", err)
	}
	if _, err := os.Stat(copyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore wrote %s: %v", copyPath, err)
	}
	st, body := call(t, "GET", url+"/api/projects", "keep.localhost", tok, "")
	if ps, _ := body["projects"].([]any); st != 200 || len(ps) != 1 {
		t.Fatalf("after refused restores: %d %v", st, body)
	}
}

// TestDeleteAndRestoreSyncFirst: a tenant file can hold writes its replica
// lacks even when no server has it open (here: written by a server without
// backups; after a crash, the same). The CLI's delete and in-place restore
// sync the file first, so undelete and "the latest" lose nothing.
func TestDeleteAndRestoreSyncFirst(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	url, stop := runMain(t, "--data", data)
	tokens := signup(t, url, "gone", "back")
	for slug, tok := range tokens {
		call(t, "POST", url+"/api/projects", slug+".localhost", tok, `{"name":"A"}`)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	url, stop = runMain(t, "--data", data, "--no-backup")
	for slug, tok := range tokens {
		if st, _ := call(t, "POST", url+"/api/projects", slug+".localhost", tok, `{"name":"B"}`); st != 201 {
			t.Fatal(st)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for slug, path := range tenantFiles(t, data) {
		want[slug] = rows(t, path)
	}
	for _, args := range [][]string{
		{"tenants", "delete", "gone"},
		{"tenants", "undelete", "gone"},
		{"restore", "back"},
	} {
		if err := run(ctx, append(args, "--data", data), noEnv, io.Discard, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	for slug, path := range tenantFiles(t, data) {
		if got := rows(t, path); got != want[slug] || !strings.Contains(got, " B ") {
			t.Errorf("%s after the CLI's delete+undelete or restore:\n%s\nwant:\n%s", slug, got, want[slug])
		}
	}
}

// TestMigrateOnRecoveredDataDir: the documented deploy "silo migrate &&
// silo serve" on a data dir that lost everything but its replica. Migrate
// brings the catalog back, and must skip each missing tenant file (the
// server restores it at the tenant's first request, and migrates it then)
// rather than fail every tenant and keep the server from starting.
// Without backups a missing file is lost data: still a failure.
func TestMigrateOnRecoveredDataDir(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data)
	tokens := signup(t, url, "phoenix", "idle")
	if st, _ := call(t, "POST", url+"/api/projects", "phoenix.localhost", tokens["phoenix"], `{"name":"kept"}`); st != 201 {
		t.Fatal(st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	loseAllButReplica(t, data)

	var out syncBuffer
	if err := run(context.Background(), []string{"migrate", "--data", data}, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("migrate on the recovered dir: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "0 failed") || !strings.Contains(out.String(), "2 skipped: file missing") {
		t.Fatalf("migrate: %s", out.String())
	}
	err := run(context.Background(), []string{"migrate", "--data", data, "--no-backup"}, noEnv, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("migrate --no-backup with tenant files missing succeeded")
	}
	url, stop = runMain(t, "--data", data)
	defer stop()
	st, body := call(t, "GET", url+"/api/projects", "phoenix.localhost", tokens["phoenix"], "")
	if st != 200 || len(body["projects"].([]any)) != 1 {
		t.Fatalf("phoenix after migrate and serve: %d %v", st, body)
	}
	if st, body := call(t, "GET", url+"/api/projects", "idle.localhost", tokens["idle"], ""); st != 200 {
		t.Fatalf("idle after migrate and serve: %d %v", st, body)
	}
}

// TestWritesWithoutBackupReachReplicaLater: writes made while the server
// ran with --no-backup must reach the replica at the next start with
// backups, even for a tenant nobody opens then. They used to stay out of
// it for good: a disaster then brought back a tenant backed up before as
// it was then (rolled back), and one never backed up as empty.
func TestWritesWithoutBackupReachReplicaLater(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data)
	tokens := signup(t, url, "older")
	if st, _ := call(t, "POST", url+"/api/projects", "older.localhost", tokens["older"], `{"name":"backed up"}`); st != 201 {
		t.Fatal(st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	url, stop = runMain(t, "--data", data, "--no-backup")
	for slug, tok := range signup(t, url, "newer") {
		tokens[slug] = tok
	}
	for _, slug := range []string{"older", "newer"} {
		if st, _ := call(t, "POST", url+"/api/projects", slug+".localhost", tokens[slug], `{"name":"unbacked"}`); st != 201 {
			t.Fatal(st)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Backups on again; neither tenant is opened by a request. Their
	// replicas catch up in the background, once the server serves.
	_, stop = runMain(t, "--data", data)
	waitMarks(t, data, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	loseAllButReplica(t, data)
	url, stop = runMain(t, "--data", data)
	defer stop()
	for slug, want := range map[string]int{"older": 2, "newer": 1} {
		st, body := call(t, "GET", url+"/api/projects", slug+".localhost", tokens[slug], "")
		if st != 200 || len(body["projects"].([]any)) != want {
			t.Fatalf("%s after the disaster: %d %v, want %d projects", slug, st, body, want)
		}
	}
}

// TestUnbackedMarkOfDeletedTenantCleared: a tenant written under
// --no-backup and deleted before backups came back has nothing left to
// sync: the first start with backups clears its mark instead of asking
// the replica about it at every start for good.
func TestUnbackedMarkOfDeletedTenantCleared(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data, "--no-backup")
	tokens := signup(t, url, "brief")
	if st, _ := call(t, "POST", url+"/api/projects", "brief.localhost", tokens["brief"], `{"name":"x"}`); st != 201 {
		t.Fatal(st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"tenants", "delete", "brief", "--data", data, "--no-backup"}, noEnv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := backupMarks(t, data); n != 1 {
		t.Fatalf("marks after the write under --no-backup: %d, want 1", n)
	}
	_, stop = runMain(t, "--data", data)
	waitMarks(t, data, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := backupMarks(t, data); n != 0 {
		t.Fatalf("marks after a start with backups: %d, want 0", n)
	}
}

// backupMarks counts the catalog's backup_dirty rows.
func backupMarks(t *testing.T, data string) int {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(data, "catalog.db"), sqlite.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM backup_dirty").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitMarks waits until the catalog holds want backup_dirty rows.
func waitMarks(t *testing.T, data string, want int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); backupMarks(t, data) != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("backup marks: %d, want %d", backupMarks(t, data), want)
		}
	}
}

// TestNoBackupDoesNotHideCatalog: on a data dir that lost its catalog but
// whose replica holds one, a start with --no-backup used to make a new,
// empty fleet; the next start with backups then served that empty catalog
// and replicated it as the newest state. It is refused, and the backup
// still restores.
func TestNoBackupDoesNotHideCatalog(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data)
	tokens := signup(t, url, "kept")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	loseAllButReplica(t, data)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a serve that starts runs until then
	defer cancel()
	err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--no-backup"}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "replica holds one") {
		t.Fatalf("serve --no-backup over a replica with a catalog: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "catalog.db")); !os.IsNotExist(err) {
		t.Fatalf("a catalog was made: %v", err)
	}
	url, stop = runMain(t, "--data", data)
	defer stop()
	if st, body := call(t, "GET", url+"/api/projects", "kept.localhost", tokens["kept"], ""); st != 200 {
		t.Fatalf("the tenant after the refused start: %d %v", st, body)
	}
}

// TestEmptiedCatalog: a catalog.db truncated to nothing used to be taken
// for a new, empty fleet: every tenant vanished, report-only commands
// wrote a new catalog into it, and the next start removed every tenant
// file as an orphan (and, with backups, replicated the empty catalog as
// the newest). With backups the start now restores it from its replica;
// without, every command refuses and the tenant files stay.
func TestEmptiedCatalog(t *testing.T) {
	data := t.TempDir()
	url, stop := runMain(t, "--data", data)
	tokens := signup(t, url, "phoenix")
	if st, _ := call(t, "POST", url+"/api/projects", "phoenix.localhost", tokens["phoenix"], `{"name":"one"}`); st != 201 {
		t.Fatal(st)
	}
	st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"flat","strategy":"shared"}`)
	if st != 201 {
		t.Fatal(st, body)
	}
	flatToken := body["token"].(string)
	if st, _ := call(t, "POST", url+"/api/projects", "flat.localhost", flatToken, `{"name":"one"}`); st != 201 {
		t.Fatal(st)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	files := tenantFiles(t, data)
	catPath := filepath.Join(data, "catalog.db")
	empty := func() {
		t.Helper()
		if err := os.Truncate(catPath, 0); err != nil {
			t.Fatal(err)
		}
		os.Remove(catPath + "-wal")
		os.Remove(catPath + "-shm")
	}

	// Without backups: refused, nothing written, the tenant file kept.
	empty()
	for _, args := range [][]string{
		{"tenants", "list", "--data", data, "--no-backup"},
		{"tokens", "list", "phoenix", "--data", data, "--no-backup"},
		{"migrate", "--data", data, "--no-backup"},
		{"serve", "--addr", "127.0.0.1:0", "--data", data, "--no-backup"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, args, noEnv, io.Discard, io.Discard)
		cancel()
		if err == nil {
			t.Fatalf("%s with an empty catalog: no error", strings.Join(args, " "))
		}
		if fi, err := os.Stat(catPath); err != nil || fi.Size() != 0 {
			t.Fatalf("%s wrote into the empty catalog: %v", strings.Join(args, " "), err)
		}
	}
	if _, err := os.Stat(files["phoenix"]); err != nil {
		t.Fatalf("the tenant's file: %v", err)
	}
	// No replica to tell either (another replica url): the tenant files
	// alone say the catalog was lost.
	other := filepath.Join(t.TempDir(), "litestream.yml")
	os.WriteFile(other, []byte("dbs:\n  - path: data/catalog.db\n    replica:\n      url: file://"+t.TempDir()+"/catalog.db\n  - dir: data/tenants\n    pattern: \"*.db\"\n    replica:\n      url: file://"+t.TempDir()+"/tenants\n"), 0o600)
	for _, extra := range [][]string{{"--no-backup", "--litestream", other}, {"--litestream", other}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, extra...), noEnv, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "tenant files") {
			t.Fatalf("serve %v with an empty catalog beside tenant files: %v", extra, err)
		}
	}
	if fi, err := os.Stat(catPath); err != nil || fi.Size() != 0 {
		t.Fatalf("serve wrote into the empty catalog: %v", err)
	}

	// With backups: restored from the replica at the start, and so is an
	// emptied shared.db.
	sharedPath := filepath.Join(data, "shared.db")
	if err := os.Truncate(sharedPath, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(sharedPath + "-wal")
	os.Remove(sharedPath + "-shm")
	url, stop = runMain(t, "--data", data)
	for slug, tok := range map[string]string{"phoenix": tokens["phoenix"], "flat": flatToken} {
		st, body := call(t, "GET", url+"/api/projects", slug+".localhost", tok, "")
		if st != 200 || len(body["projects"].([]any)) != 1 {
			t.Fatalf("%s after the start restored the catalog and shared.db: %d %v", slug, st, body)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
