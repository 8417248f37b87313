package acmestub

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// DefaultLogLimit is how many events the log keeps when Config.LogLimit
// is 0: enough for any test's assertions, bounded so that a client stuck
// in a retry loop cannot grow it without end.
const DefaultLogLimit = eventlog.DefaultLimit

// EventKind says what an Event records.
type EventKind string

// The kinds of events the log records.
const (
	// EventAccount: an account was created.
	EventAccount EventKind = "account created"
	// EventOrder: an order was created.
	EventOrder EventKind = "order created"
	// EventValidation: a challenge's validation started (after a Delay
	// fault's wait).
	EventValidation EventKind = "validation started"
	// EventValid: a challenge's validation succeeded.
	EventValid EventKind = "validation succeeded"
	// EventInvalid: a challenge's validation failed; Event.Problem says
	// why.
	EventInvalid EventKind = "validation failed"
	// EventIssued: a certificate was issued; Event.Serial is its serial.
	EventIssued EventKind = "certificate issued"
	// EventRevoked: a certificate was revoked.
	EventRevoked EventKind = "certificate revoked"
	// EventRejected: a request was answered with a problem document;
	// Event.Problem is the problem, Event.Request the request.
	EventRejected EventKind = "request rejected"
)

// Event is one thing the server did, as its log holds it.
type Event struct {
	// Time is when it happened.
	Time time.Time
	// Kind says what happened.
	Kind EventKind
	// Account is the account's ID ("1" for .../acct/1), "" if none.
	Account string
	// Order is the order's ID, "" if none.
	Order string
	// Names are the identifiers concerned: an order's, the one being
	// validated (without "*." for a wildcard's), a certificate's.
	Names []string
	// Challenge is the challenge type of a validation event: "http-01"
	// or "dns-01".
	Challenge string
	// Serial is an issued or revoked certificate's serial number, in
	// hex.
	Serial string
	// Request is a rejected request's method and path: "POST
	// /new-order".
	Request string
	// Problem is why a validation failed or a request was rejected.
	Problem *Problem
	// Fault is the fault that applied, "" if none: Fault.String.
	Fault string
}

// String is the event as a log line: "order 2 created for a.test,
// *.a.test (account 1)", "http-01 validation of a.test failed:
// incorrectResponse: ...".
func (e Event) String() string {
	var b strings.Builder
	names := strings.Join(e.Names, ", ")
	switch e.Kind {
	case EventAccount:
		fmt.Fprintf(&b, "account %s created", e.Account)
	case EventOrder:
		fmt.Fprintf(&b, "order %s created for %s (account %s)", e.Order, names, e.Account)
	case EventValidation:
		fmt.Fprintf(&b, "%s validation of %s started (order %s)", e.Challenge, names, e.Order)
	case EventValid:
		fmt.Fprintf(&b, "%s validation of %s succeeded (order %s)", e.Challenge, names, e.Order)
	case EventInvalid:
		fmt.Fprintf(&b, "%s validation of %s failed (order %s)", e.Challenge, names, e.Order)
	case EventIssued:
		fmt.Fprintf(&b, "certificate %s issued for %s (order %s)", e.Serial, names, e.Order)
	case EventRevoked:
		fmt.Fprintf(&b, "certificate %s revoked (names %s)", e.Serial, names)
	case EventRejected:
		fmt.Fprintf(&b, "%s rejected", e.Request)
	default:
		b.WriteString(string(e.Kind))
	}
	if e.Problem != nil {
		fmt.Fprintf(&b, ": %v", e.Problem)
	}
	if e.Fault != "" {
		fmt.Fprintf(&b, " (fault: %s)", e.Fault)
	}
	return b.String()
}

// Match picks events from the log, for WaitFor or a test's own filtering
// of Log. The zero value matches every event; each field set narrows it.
type Match struct {
	// Kind matches the event's kind; "" matches any.
	Kind EventKind
	// Name matches events concerning this name (one of Event.Names),
	// whatever its case.
	Name string
	// ProblemType matches events whose problem has this type
	// (ProblemBadNonce, ...).
	ProblemType string
	// Since matches events at or after it: those after a change the test
	// made, say.
	Since time.Time
	// Func, if not nil, must return true too.
	Func func(Event) bool
	// Desc says what Func checks, for WaitFor's error.
	Desc string
}

// Matches reports whether e is one m picks.
func (m Match) Matches(e Event) bool {
	return (m.Kind == "" || m.Kind == e.Kind) &&
		(m.Name == "" || slices.ContainsFunc(e.Names, func(n string) bool { return strings.EqualFold(n, m.Name) })) &&
		(m.ProblemType == "" || e.Problem != nil && e.Problem.Type == m.ProblemType) &&
		(m.Since.IsZero() || !e.Time.Before(m.Since)) &&
		(m.Func == nil || m.Func(e))
}

// String describes what m picks: "an event "validation failed" for a.test
// with problem ...:dns".
func (m Match) String() string {
	s := "an event"
	if m.Kind != "" {
		s += fmt.Sprintf(" %q", m.Kind)
	}
	if m.Name != "" {
		s += " for " + m.Name
	}
	if m.ProblemType != "" {
		s += " with problem " + m.ProblemType
	}
	return s + eventlog.MatchTail(m.Since, m.Func != nil, m.Desc)
}

// Log returns a copy of the event log, oldest first: the last
// Config.LogLimit events.
func (s *Server) Log() []Event { return s.log.All() }

// ClearLog empties the event log; Issued keeps its certificates.
func (s *Server) ClearLog() { s.log.Clear() }

// Issued returns the certificates the server issued to clients, oldest
// first (not its own serving certificates).
func (s *Server) Issued() []*x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*x509.Certificate
	for _, c := range s.certs {
		out = append(out, c.leaf)
	}
	return out
}

// record appends e to the log, wakes WaitFor, and hands e to Config.Logf.
func (s *Server) record(e Event) {
	e.Time = time.Now()
	s.log.Record(e.Time, e, s.cfg.LogLimit)
	s.logf("acme stub: %s", e)
}

// WaitFor returns the first event in the log that m matches, waiting for
// one until ctx ends; it looks at the events logged already too, so that
// an event that came before the call is not missed (set m.Since to wait
// for a later one). When ctx ends first, the error says what it waited
// for and the last events it saw, and wraps ErrNoEvent and ctx's error
// (context.DeadlineExceeded, say).
func (s *Server) WaitFor(ctx context.Context, m Match) (Event, error) {
	return s.log.Wait(ctx, eventlog.Wait[Event]{Match: m.Matches, What: m.String(), Err: ErrNoEvent,
		Noun: "event", Nouns: "events",
		Empty: "nothing happened at all (is the client using this server's directory URL?)"})
}
