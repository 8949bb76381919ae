package yibao

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Codes cross the wire in the
// error body {code, message, request_id}; they are never renamed or reused.
type Code string

// The closed list of error codes. Add new codes at the end of a group; never
// change the spelling of an existing one.
const (
	// Request shape.
	CodeInvalid         Code = "invalid_argument"  // a field is missing, malformed or out of range
	CodeMalformed       Code = "malformed_request" // the body is not valid JSON / CSV, or has unknown fields
	CodeTooLarge        Code = "request_too_large" // the body exceeds the size limit
	CodeUnsupportedType Code = "unsupported_media" // wrong Content-Type
	CodeIdemRequired    Code = "idempotency_key_required"
	CodeIdemConflict    Code = "idempotency_conflict"     // same key, different request, or still in flight
	CodeIdemLost        Code = "idempotency_outcome_lost" // the first request committed changes, then the platform restarted before answering

	// Identity and access.
	CodeUnauthenticated Code = "unauthenticated"   // no or bad credentials
	CodeBadSignature    Code = "bad_signature"     // a signed request does not verify
	CodeReplay          Code = "replayed_request"  // nonce seen before, or timestamp outside the window
	CodeForbidden       Code = "permission_denied" // authenticated, but not allowed

	// State.
	CodeNotFound     Code = "not_found"
	CodeConflict     Code = "conflict"            // duplicate code, overlapping period, state clash
	CodePrecondition Code = "failed_precondition" // the operation is not allowed in the current state
	CodeRateLimited  Code = "rate_limited"

	// Money.
	CodeInsufficientFunds Code = "insufficient_funds"
	// CodeCreditLimitExceeded: a payment on credit is more than the line
	// has left (pending holds count); nothing was written.
	CodeCreditLimitExceeded Code = "credit_limit_exceeded"

	// Server.
	CodeInternal    Code = "internal"    // a bug or an unexpected failure; details are only logged
	CodeUnavailable Code = "unavailable" // a dependency is down; retry later
)

// Codes lists every code, for documentation and the OpenAPI enum.
var Codes = []Code{
	CodeInvalid, CodeMalformed, CodeTooLarge, CodeUnsupportedType, CodeIdemRequired, CodeIdemConflict, CodeIdemLost,
	CodeUnauthenticated, CodeBadSignature, CodeReplay, CodeForbidden,
	CodeNotFound, CodeConflict, CodePrecondition, CodeRateLimited,
	CodeInsufficientFunds, CodeCreditLimitExceeded,
	CodeInternal, CodeUnavailable,
}

// Error is the error every yibao package returns for a failure a caller can
// act on. Message is safe to show to the caller; Err, if set, is the cause,
// logged but never sent.
type Error struct {
	Code    Code
	Message string
	Field   string  // the offending input field, if any ("person.id_number")
	Issues  []Issue // itemised problems, e.g. one per bad CSV line
	Err     error
}

// Issue is one itemised problem inside an error: a CSV line, a field.
type Issue struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError builds a CodeInvalid error naming the field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error with a cause that is logged, not shown.
func Wrap(code Code, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of err: its own if it is (or wraps) an *Error,
// CodeInternal otherwise, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the caller-safe message of err. Errors that are not
// *Error are internal and get a generic message.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// IsCode reports whether err carries code c.
func IsCode(err error, c Code) bool { return err != nil && ErrorCode(err) == c }
