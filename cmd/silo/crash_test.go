package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestCrashDurability runs the real binary as a child process, drives
// concurrent writes across many tenants (more than --max-open-tenants, so
// files open and close under load), SIGKILLs it at a random moment, and
// restarts it on the same data directory. After every kill, every file
// passes PRAGMA integrity_check, and after every restart every write that
// was acknowledged with 201, in this round or an earlier one, is there.
// This is the README's promise for --durability normal: a process crash
// loses nothing acknowledged. It runs with backups (the default: tenant files
// opened the ordinary way, beside Litestream) and without (files held
// exclusively, the WAL index in memory, so recovery rebuilds it from the WAL).
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary; skipped in -short")
	}
	bin := buildSilo(t)
	for _, mode := range []struct {
		name string
		args []string
	}{{"backups", nil}, {"no-backup", []string{"--no-backup"}}} {
		t.Run(mode.name, func(t *testing.T) { crashDurability(t, bin, mode.args...) })
	}
}

func crashDurability(t *testing.T, bin string, extra ...string) {
	const (
		nTenants = 12
		rounds   = 3
		workers  = 6
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	// The rounds stay well under a minute. The build is outside the
	// bound: CI's CGO_ENABLED=0 build step has warmed its cache.
	deadline := time.Now().Add(45 * time.Second)
	data := t.TempDir()
	child := startSilo(t, bin, data, extra...)

	// Tenants, signed up on the first instance.
	type tenant struct{ slug, token string }
	var ts []tenant
	for i := range nTenants {
		slug := fmt.Sprintf("crash%02d", i)
		st, body, err := crashCall(child.url, "POST", "localhost", "", "/api/tenants", `{"slug":"`+slug+`"}`)
		if err != nil || st != 201 {
			t.Fatalf("signup %s: %d %v %s", slug, st, err, body)
		}
		var r struct{ Token string }
		json.Unmarshal(body, &r)
		ts = append(ts, tenant{slug, r.Token})
	}

	// acked holds every acknowledged write: tenant slug → project id →
	// its name and acknowledged task ids.
	type project struct {
		name  string
		tasks []string
	}
	acked := make([]map[string]*project, nTenants)
	for i := range acked {
		acked[i] = map[string]*project{}
	}
	var mu sync.Mutex
	total := 0

	for round := 1; round <= rounds; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("out of time before round %d", round)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			wrng := rand.New(rand.NewPCG(seed, uint64(round*100+w)))
			go func() {
				defer wg.Done()
				for seq := 0; ctx.Err() == nil; seq++ {
					i := wrng.IntN(nTenants)
					tn := ts[i]
					// Mostly projects; a task under an acknowledged project
					// one time in three.
					mu.Lock()
					var pid string
					if seq%3 == 2 {
						for id := range acked[i] {
							pid = id
							break
						}
					}
					mu.Unlock()
					if pid != "" {
						st, body, err := crashCall(child.url, "POST", tn.slug+".localhost", tn.token, "/api/projects/"+pid+"/tasks", `{"title":"t","done":false}`)
						var r struct{ ID string }
						if err == nil && st == 201 && json.Unmarshal(body, &r) == nil && r.ID != "" {
							mu.Lock()
							acked[i][pid].tasks = append(acked[i][pid].tasks, r.ID)
							total++
							mu.Unlock()
						}
						continue
					}
					name := fmt.Sprintf("r%d-w%d-%d", round, w, seq)
					st, body, err := crashCall(child.url, "POST", tn.slug+".localhost", tn.token, "/api/projects", `{"name":"`+name+`"}`)
					var r struct{ ID string }
					if err == nil && st == 201 && json.Unmarshal(body, &r) == nil && r.ID != "" {
						mu.Lock()
						acked[i][r.ID] = &project{name: name}
						total++
						mu.Unlock()
					} else if err == nil && st != 201 && ctx.Err() == nil {
						t.Errorf("round %d: write answered %d: %s", round, st, body)
					}
				}
			}()
		}
		time.Sleep(time.Duration(200+rng.IntN(601)) * time.Millisecond)
		child.kill(t)
		cancel()
		wg.Wait()
		mu.Lock()
		t.Logf("round %d: killed with %d acknowledged writes so far", round, total)
		mu.Unlock()

		if n := checkIntegrity(t, data); n == 0 {
			t.Logf("round %d: no WAL held unchecked commits at the kill", round)
		} else {
			t.Logf("round %d: %d files had a WAL at the kill; all pass integrity_check", round, n)
		}

		child = startSilo(t, bin, data, extra...)
		for i, tn := range ts {
			got := listAll(t, child.url, tn.slug, tn.token, "/api/projects", "projects")
			for id, p := range acked[i] {
				if got[id] != p.name {
					t.Fatalf("round %d: %s lost acknowledged project %s (%s)", round, tn.slug, id, p.name)
				}
				if len(p.tasks) == 0 {
					continue
				}
				tasks := listAll(t, child.url, tn.slug, tn.token, "/api/projects/"+id+"/tasks", "tasks")
				for _, tid := range p.tasks {
					if _, ok := tasks[tid]; !ok {
						t.Fatalf("round %d: %s lost acknowledged task %s", round, tn.slug, tid)
					}
				}
			}
		}
	}
	if total == 0 {
		t.Fatal("no write was acknowledged: the test proved nothing")
	}
	child.kill(t)
}

// buildSilo builds the binary as released (CGO_ENABLED=0) into a temp dir.
func buildSilo(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	bin := filepath.Join(t.TempDir(), "silo")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// siloProcess is a running `silo serve` child.
type siloProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
}

// startSilo starts `silo serve` on 127.0.0.1 and waits for its address;
// extra flags follow the common ones.
func startSilo(t *testing.T, bin, data string, extra ...string) *siloProcess {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--max-open-tenants", "4"}, extra...)
	return startSiloArgs(t, bin, args...)
}

// startSiloArgs starts the binary with args and waits for its address.
func startSiloArgs(t *testing.T, bin string, args ...string) *siloProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// The child sees no SILO_* settings of whoever runs the tests.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SILO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := &siloProcess{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(t) })
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (http://\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.url = <-found:
		return p
	case <-p.done:
		t.Fatalf("silo exited at start:\n%s", p.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("silo did not start:\n%s", p.stderr.String())
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *siloProcess) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Error("silo did not die after SIGKILL")
	}
}

var crashClient = &http.Client{Timeout: 10 * time.Second}

// crashCall sends one request to the child; Host picks the tenant.
func crashCall(base, method, host, token, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := crashClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// listAll pages through a list endpoint and returns id → name (or title).
func listAll(t *testing.T, base, slug, token, path, key string) map[string]string {
	t.Helper()
	out := map[string]string{}
	cursor := ""
	for {
		q := "?limit=200"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		st, body, err := crashCall(base, "GET", slug+".localhost", token, path+q, "")
		if err != nil || st != 200 {
			t.Fatalf("GET %s %s: %d %v %s", slug, path, st, err, body)
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		var items []struct{ ID, Name, Title string }
		if err := json.Unmarshal(page[key], &items); err != nil {
			t.Fatalf("GET %s: %v %s", path, err, body)
		}
		for _, it := range items {
			out[it.ID] = it.Name + it.Title
		}
		var next *string
		json.Unmarshal(page["next_cursor"], &next)
		if next == nil || *next == "" {
			return out
		}
		cursor = *next
	}
}

// checkIntegrity runs PRAGMA integrity_check on the catalog and every
// tenant file as the kill left them. It checks copies (with their WAL), so
// that the next start recovers the very state the crash left behind.
// It returns how many files had a non-empty WAL.
func checkIntegrity(t *testing.T, data string) (wals int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "tenants", "*.db"))
	files = append(files, filepath.Join(data, "catalog.db"))
	scratch := t.TempDir()
	for i, f := range files {
		dst := filepath.Join(scratch, fmt.Sprintf("%d.db", i))
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(f + suffix)
			if os.IsNotExist(err) && suffix != "" {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			if suffix == "-wal" && len(b) > 0 {
				wals++
			}
			if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		db, err := sql.Open("sqlite", "file:"+dst+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		var res bytes.Buffer
		rows, err := db.Query("PRAGMA integrity_check")
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			res.WriteString(s)
		}
		rows.Close()
		db.Close()
		if res.String() != "ok" {
			t.Fatalf("%s fails integrity_check after SIGKILL: %s", f, res.String())
		}
	}
	if len(files) < 2 {
		t.Fatalf("only %d files to check", len(files))
	}
	return wals
}
