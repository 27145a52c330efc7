package nostrx

import (
	"errors"
	"fmt"
)

// Code is a machine-readable error code carried in a response, after the
// NIP-47 convention, so clients can branch without parsing prose.
type Code string

// The codes a response may carry. The set is part of the wire contract.
const (
	CodeBadRequest     Code = "BAD_REQUEST"
	CodeUnauthorized   Code = "UNAUTHORIZED"
	CodeNotFound       Code = "NOT_FOUND"
	CodeRateLimited    Code = "RATE_LIMITED"
	CodeNotImplemented Code = "NOT_IMPLEMENTED"
	CodeUnavailable    Code = "UNAVAILABLE"
	CodeInternal       Code = "INTERNAL"
)

// Errors for events the bot drops without an answer. Answering them would let
// anyone make the bot sign and encrypt on their behalf (unverified events) or
// talk to the wrong party (not addressed to the bot), so they stay silent.
var (
	ErrWrongKind    = errors.New("wrong kind")
	ErrNotAddressed = errors.New("not addressed to this bot")
	ErrMalformed    = errors.New("malformed event")
	ErrStale        = errors.New("created_at too old")
	ErrFuture       = errors.New("created_at in the future")
	ErrExpired      = errors.New("expired")
	ErrBadID        = errors.New("id does not match content")
	ErrBadSignature = errors.New("invalid signature")
)

// RequestError is a verified request the bot refuses with an answer. It
// carries the code sent back and a one-line reason that is safe to show to
// the requester.
type RequestError struct {
	Code   Code
	Reason string
}

func (e *RequestError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Reason) }

// Refuse builds a RequestError; the reason is formatted like fmt.Sprintf.
func Refuse(code Code, format string, args ...any) *RequestError {
	return &RequestError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// CodeOf returns the response code for err: the RequestError's own code, or
// INTERNAL for anything else, so that no error reaches a client unmapped.
func CodeOf(err error) Code {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Code
	}
	return CodeInternal
}

// MessageOf returns the one-line reason a client is shown for err: the
// RequestError's own, or "internal error" for anything else, so that no
// internal detail reaches a client.
func MessageOf(err error) string {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Reason
	}
	return "internal error"
}
