// Package silo holds the vocabulary that every other package speaks: tenants,
// projects, tasks, the one error type and the context helpers. It imports only
// the standard library.
package silo

import (
	"errors"
	"fmt"
)

// Error codes. They are stable, snake_case and part of the HTTP API: clients
// branch on them, so never rename one. internal/server maps each to a status.
const (
	EINTERNAL        = "internal"
	EINVALID         = "invalid_request"
	EINVALIDJSON     = "invalid_json"
	EINVALIDSLUG     = "invalid_slug"
	EINVALIDNAME     = "invalid_name"
	EINVALIDTITLE    = "invalid_title"
	EINVALIDCURSOR   = "invalid_cursor"
	EINVALIDLIMIT    = "invalid_limit"
	EINVALIDSTRATEGY = "invalid_strategy"
	EBODYTOOLARGE    = "body_too_large"
	ESLUGTAKEN       = "slug_taken"
	ECONFLICT        = "conflict"
	ENOTFOUND        = "not_found"
	ETENANTNOTFOUND  = "tenant_not_found"
	EUNAUTHORIZED    = "unauthorized"
	EMETHOD          = "method_not_allowed"
	EUNAVAILABLE     = "unavailable"
	ETENANTMIGRATING = "tenant_migrating"
	ETENANTBUSY      = "tenant_busy"
	ETENANTMOVING    = "tenant_moving"
	ETENANTRESTORING = "tenant_restoring"
	EQUOTA           = "quota_exceeded"
	EFULL            = "storage_full"       // the server's disk is full
	ESTORAGE         = "tenant_unavailable" // the tenant's file cannot be written or read now
	ESCHEMAAHEAD     = "tenant_schema_ahead"
	ERATELIMITED     = "rate_limited"
)

// Error is the application's error: a code for machines and a message for
// people. Services return it; the HTTP layer turns it into a status and JSON.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("silo: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil,
// and EINTERNAL for anything else: an error we did not classify is our fault.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain. Other
// errors get a generic message so that internals never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
