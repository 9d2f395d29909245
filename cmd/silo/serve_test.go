package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowLorisDisconnected: a client that sends its headers a byte at a
// time, slower than --read-header-timeout, is disconnected at the timeout,
// long before it finishes, and the server keeps serving others.
func TestSlowLorisDisconnected(t *testing.T) {
	const timeout = 200 * time.Millisecond
	url, _ := runMain(t, "--data", t.TempDir(), "--read-header-timeout", timeout.String())
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		// The server answers nothing: it reads until the deadline and
		// drops the connection, which this read sees as EOF or a reset.
		io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	// 120 bytes at 40 ms each would take about 5 s to send.
	header := "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("z", 70) + "\r\n\r\n"
	var after time.Duration
send:
	for i := 0; i < len(header); i++ {
		if _, err := conn.Write([]byte{header[i]}); err != nil {
			break
		}
		select {
		case after = <-closed:
			break send
		case <-time.After(40 * time.Millisecond):
		}
	}
	if after == 0 {
		select {
		case after = <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the slow client was never disconnected")
		}
	}
	if after < timeout || after > 3*time.Second {
		t.Fatalf("disconnected after %s, want just after %s", after, timeout)
	}
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz after the slow client: %d", res.StatusCode)
	}
}

// TestServeLimitFlags: the limit flags reach the server (a signup flood
// gets 429 after --signup-rate), and nonsense values are usage errors.
func TestServeLimitFlags(t *testing.T) {
	url, _ := runMain(t, "--data", t.TempDir(), "--signup-rate", "2", "--tenant-rate", "100", "--tenant-max-inflight", "8")
	for _, slug := range []string{"one", "two"} {
		if st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"`+slug+`"}`); st != 201 {
			t.Fatalf("signup %s: %d %v", slug, st, body)
		}
	}
	st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"three"}`)
	if e, _ := body["error"].(map[string]any); st != 429 || e["code"] != "rate_limited" {
		t.Fatalf("third signup: %d %v", st, body)
	}
	for _, bad := range [][]string{
		{"--read-header-timeout", "0"},
		{"--signup-rate", "-1"},
		{"--tenant-max-inflight", "-5"},
	} {
		args := append([]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0"}, bad...)
		if err := run(context.Background(), args, noEnv, io.Discard, io.Discard); exitCode(err) != 2 {
			t.Fatalf("%v: %v, want a usage error", bad, err)
		}
	}
}

// TestServeStartsWithPostgresDown: PostgreSQL down at start must not take
// down the tenants in SQLite. serve starts, serves them, and answers 503
// for what needs PostgreSQL (it used to refuse to start).
func TestServeStartsWithPostgresDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	url, stop := runMain(t, "--data", t.TempDir(), "--no-backup",
		"--postgres", "postgres://app:pw@"+down+"/silo?sslmode=disable")
	defer stop()
	tokens := signup(t, url, "files")
	if st, body := call(t, "POST", url+"/api/projects", "files.localhost", tokens["files"], `{"name":"up"}`); st != 201 {
		t.Fatalf("a tenant in its own file with PostgreSQL down: %d %v", st, body)
	}
	// Both placements: pgshared has nothing to create in PostgreSQL, and
	// used to answer 201 for a tenant it could not serve.
	for _, strategy := range []string{"schema", "pgshared"} {
		st, body := call(t, "POST", url+"/api/tenants", "localhost", "", `{"slug":"in`+strategy+`","strategy":"`+strategy+`"}`)
		if e, _ := body["error"].(map[string]any); st != 503 || e["code"] != "unavailable" {
			t.Fatalf("a %s signup while PostgreSQL is down: %d %v", strategy, st, body)
		}
	}
}
