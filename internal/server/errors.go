package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/silohq/silo/internal/silo"
)

// statuses maps every error code to its HTTP status. It is the only place
// where that decision is made.
var statuses = map[string]int{
	silo.EINVALID:         http.StatusBadRequest,
	silo.EINVALIDJSON:     http.StatusBadRequest,
	silo.EINVALIDSLUG:     http.StatusBadRequest,
	silo.EINVALIDNAME:     http.StatusBadRequest,
	silo.EINVALIDTITLE:    http.StatusBadRequest,
	silo.EINVALIDCURSOR:   http.StatusBadRequest,
	silo.EINVALIDLIMIT:    http.StatusBadRequest,
	silo.EINVALIDSTRATEGY: http.StatusBadRequest,
	silo.EBODYTOOLARGE:    http.StatusRequestEntityTooLarge,
	silo.ESLUGTAKEN:       http.StatusConflict,
	silo.ECONFLICT:        http.StatusConflict,
	silo.ENOTFOUND:        http.StatusNotFound,
	silo.ETENANTNOTFOUND:  http.StatusNotFound,
	silo.EUNAUTHORIZED:    http.StatusUnauthorized,
	silo.EMETHOD:          http.StatusMethodNotAllowed,
	silo.ERATELIMITED:     http.StatusTooManyRequests,
	silo.EUNAVAILABLE:     http.StatusServiceUnavailable,
	silo.ETENANTMIGRATING: http.StatusServiceUnavailable,
	silo.ETENANTBUSY:      http.StatusServiceUnavailable,
	silo.ETENANTMOVING:    http.StatusServiceUnavailable,
	silo.ETENANTRESTORING: http.StatusServiceUnavailable,
	silo.EQUOTA:           http.StatusInsufficientStorage,
	silo.EFULL:            http.StatusInsufficientStorage,
	silo.ESTORAGE:         http.StatusServiceUnavailable,
	silo.ESCHEMAAHEAD:     http.StatusServiceUnavailable,
	silo.EINTERNAL:        http.StatusInternalServerError,
}

// Status returns the HTTP status for an error code.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with err as {"error":{"code","message"}}. Errors that
// are not *silo.Error are logged with the request id and tenant and
// answered 500 without details.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := silo.ErrorCode(err)
	switch {
	case code == silo.EINTERNAL && errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody will read the answer.
		code = silo.EUNAVAILABLE
	case code == silo.EINTERNAL && errors.Is(err, context.DeadlineExceeded):
		// Our own bounds (an open, a final sync, PostgreSQL) or the
		// request's: the client may retry, but operators need to see it.
		s.log.Warn("request timed out", logAttrs(r, err)...)
		err = silo.Errorf(silo.EUNAVAILABLE, "The request timed out.")
		code = silo.EUNAVAILABLE
	case code == silo.EINTERNAL:
		s.log.Error("internal error", logAttrs(r, err)...)
	case code == silo.ESTORAGE:
		s.log.Warn("tenant storage failing", logAttrs(r, err)...)
	case code == silo.EFULL:
		s.log.Error("disk full: a write was refused", logAttrs(r, err)...)
	}
	msg := silo.ErrorMessage(err)
	if code == silo.EUNAVAILABLE && msg == "Internal error." {
		msg = "Service unavailable."
	}
	status := Status(code)
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		// Every 503 is temporary (a move, a restore, a migration, a
		// replica or PostgreSQL away) and says "retry shortly": say when.
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: msg}})
}

// logAttrs describes a failed request for the log: the error, the route,
// the request id and the tenant.
func logAttrs(r *http.Request, err error) []any {
	attrs := []any{"err", err, "method", r.Method, "path", r.URL.Path, "request_id", middleware.GetReqID(r.Context())}
	if t := silo.TenantFromContext(r.Context()); t != nil {
		attrs = append(attrs, "tenant", t.ID)
	}
	return attrs
}

// errorHandler adapts a fixed error to an http.Handler (not found, method).
func (s *Server) errorHandler(code, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, silo.Errorf(code, "%s", msg))
	}
}

// methodNotAllowed answers 405 with the Allow header that RFC 9110 asks for:
// the methods the path does have. chi lists them only in its own default
// handler, so ask the router that served the request (by Host, as
// ServeHTTP picks it) which methods match the path.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	router := s.base
	if _, isBase, err := ResolveHost(r.Host, s.cfg.BaseDomain); err == nil && !isBase {
		router = s.tenant
	}
	path := r.URL.RawPath // what chi routes on, when set
	if path == "" {
		path = r.URL.Path
	}
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/") // the tenant routes' StripSlashes
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if router.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead) // middleware.GetHead
			}
		}
	}
	if len(allow) == 0 {
		// chi answers 405 for a method it has no route for anywhere
		// (FOO), on any path: no method is allowed here, so no route.
		s.writeError(w, r, silo.Errorf(silo.ENOTFOUND, "No such route."))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeError(w, r, silo.Errorf(silo.EMETHOD, "Method not allowed on this route."))
}
