package server

import (
	"io"
	"net"
	"net/http"
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
