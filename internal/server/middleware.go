package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/silohq/silo/internal/silo"
)

// recoverer turns a panic into a logged 500 JSON error, so one bad request
// never takes the process down. http.ErrAbortHandler is re-raised: it is
// how a handler asks net/http to drop the connection.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic", "value", fmt.Sprint(v), "request_id", middleware.GetReqID(r.Context()), "stack", string(debug.Stack()))
				s.writeError(w, r, silo.Errorf(silo.EINTERNAL, "Internal error."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// requireOperator guards the operator API. With no operator token
// configured the API does not exist (404), so a default install exposes
// nothing; with one, the bearer token must match in constant time.
func (s *Server) requireOperator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.OperatorToken == "" {
			s.writeError(w, r, silo.Errorf(silo.ENOTFOUND, "No such route."))
			return
		}
		// Hash both sides so the comparison takes the same time whatever
		// the lengths: ConstantTimeCompare returns early on a length mismatch.
		tok, _ := bearer(r)
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.cfg.OperatorToken))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.writeError(w, r, silo.Errorf(silo.EUNAUTHORIZED, "A valid operator token is required."))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// OperatorWorkTimeout bounds the operator calls that answer only once their
// work is done (a move, a restore, a delete): long enough for a large
// tenant over a slow replica, and what the CLI's --server calls wait.
const OperatorWorkTimeout = 10 * time.Minute

// longWork lifts the server's write deadline (silo serve's WriteTimeout,
// one minute, meant for API calls) to OperatorWorkTimeout for the request.
// Without it a move or restore that outlasted the minute still finished,
// but its answer was cut off: the operator was told it had failed.
func longWork(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not every ResponseWriter can (a test recorder); the server's can.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(OperatorWorkTimeout))
		next.ServeHTTP(w, r)
	})
}
