package acmestub

import (
	"errors"
	"fmt"
	"strings"
)

// Errors callers branch on, with errors.Is. The errors returned wrap them
// with what was being done and how to fix it.
var (
	// ErrBadConfig: a Config that New cannot serve with (an Issuer that
	// is not a CA, or whose key is not its certificate's).
	ErrBadConfig = errors.New("bad config")
	// ErrBadFault: a Fault that does nothing, or contradicts itself.
	ErrBadFault = errors.New("bad fault")
	// ErrServerClosed: Serve or Start after Close, and what Serve returns
	// once Close has stopped it.
	ErrServerClosed = errors.New("acme stub server closed")
	// ErrNoEvent: WaitFor's context ended before a matching event came;
	// the error also wraps the context's error.
	ErrNoEvent = errors.New("no matching event")
)

// ProblemPrefix starts every ACME problem type (RFC 8555 6.7).
const ProblemPrefix = "urn:ietf:params:acme:error:"

// Problem types the server answers with (RFC 8555 6.7), for comparison
// with what a client reports (x/crypto/acme's Error.ProblemType) and for
// Fault.Problem.
const (
	ProblemAccountDoesNotExist   = ProblemPrefix + "accountDoesNotExist"
	ProblemAlreadyRevoked        = ProblemPrefix + "alreadyRevoked"
	ProblemBadCSR                = ProblemPrefix + "badCSR"
	ProblemBadNonce              = ProblemPrefix + "badNonce"
	ProblemBadPublicKey          = ProblemPrefix + "badPublicKey"
	ProblemBadSignatureAlgorithm = ProblemPrefix + "badSignatureAlgorithm"
	ProblemConnection            = ProblemPrefix + "connection"
	ProblemDNS                   = ProblemPrefix + "dns"
	ProblemIncorrectResponse     = ProblemPrefix + "incorrectResponse"
	ProblemMalformed             = ProblemPrefix + "malformed"
	ProblemOrderNotReady         = ProblemPrefix + "orderNotReady"
	ProblemRateLimited           = ProblemPrefix + "rateLimited"
	ProblemRejectedIdentifier    = ProblemPrefix + "rejectedIdentifier"
	ProblemServerInternal        = ProblemPrefix + "serverInternal"
	ProblemUnauthorized          = ProblemPrefix + "unauthorized"
	ProblemUnsupportedIdentifier = ProblemPrefix + "unsupportedIdentifier"
	ProblemUserActionRequired    = ProblemPrefix + "userActionRequired"
)

// Problem is an ACME problem document (RFC 7807, RFC 8555 6.7): what the
// server answers a request it refuses with, and what a failed challenge,
// authorization or order carries. It is an error.
type Problem struct {
	// Type is one of the Problem... constants.
	Type string `json:"type"`
	// Detail says what went wrong, for a person.
	Detail string `json:"detail,omitempty"`
	// Status is the HTTP status of the answer that carried it; 0 in
	// objects (a challenge's error).
	Status int `json:"status,omitempty"`
	// Identifier is the identifier the problem concerns, if one.
	Identifier *Identifier `json:"identifier,omitempty"`

	fault string // the fault that made it, for the log; "" if none
}

// Error is the problem as one line: "badNonce: nonce ... was never issued".
func (p *Problem) Error() string {
	return strings.TrimPrefix(p.Type, ProblemPrefix) + ": " + p.Detail
}

// problem makes a Problem of type typ with HTTP status status.
func problem(typ string, status int, format string, args ...any) *Problem {
	return &Problem{Type: typ, Status: status, Detail: fmt.Sprintf(format, args...)}
}
