package server

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLongWorkOutlivesWriteTimeout: silo serve's WriteTimeout (a minute)
// cut off the answer of an operator call that worked longer, though the
// work was done: the operator was told it had failed. longWork lifts the
// deadline for such calls. The server here has a 100 ms WriteTimeout and
// the work takes 400 ms; without longWork the client reads an error.
func TestLongWorkOutlivesWriteTimeout(t *testing.T) {
	work := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		writeJSON(w, http.StatusOK, map[string]string{"status": "done"})
	})
	for _, tc := range []struct {
		name string
		h    http.Handler
		ok   bool
	}{{"lifted", longWork(work), true}, {"plain", work, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: tc.h, WriteTimeout: 100 * time.Millisecond}
			go srv.Serve(ln)
			defer srv.Close()
			client := &http.Client{Timeout: 10 * time.Second}
			res, err := client.Get("http://" + ln.Addr().String() + "/")
			var body []byte
			if err == nil {
				body, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			got := err == nil && res.StatusCode == http.StatusOK && string(body) == "{\"status\":\"done\"}\n"
			if got != tc.ok {
				t.Fatalf("answer after the write timeout: %q, %v (want it delivered: %v)", body, err, tc.ok)
			}
		})
	}
}

// deadlineRecorder records the write deadline a handler sets.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error { d.deadline = t; return nil }

// TestOperatorWorkRoutesLiftDeadline: the operator routes that answer only
// once their work is done (move, restore, delete) lift the write deadline;
// the others keep the server's. (The handlers here have no services behind
// them; only the deadline they were given is looked at.)
func TestOperatorWorkRoutesLiftDeadline(t *testing.T) {
	s := New(Config{OperatorToken: "op"}, Deps{})
	for _, tc := range []struct {
		method, path string
		lifted       bool
	}{
		{"POST", "/api/operator/tenants/acme/move", true},
		{"POST", "/api/operator/tenants/acme/restore", true},
		{"DELETE", "/api/operator/tenants/acme", true},
		{"GET", "/api/operator/backup", false},
	} {
		req := httptest.NewRequest(tc.method, "http://localhost"+tc.path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer op")
		rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
		before := time.Now()
		s.ServeHTTP(rec, req)
		lifted := rec.deadline.After(before.Add(OperatorWorkTimeout - time.Minute))
		if lifted != tc.lifted {
			t.Errorf("%s %s: write deadline %v (lifted: %v, want %v)", tc.method, tc.path, rec.deadline, lifted, tc.lifted)
		}
	}
}
