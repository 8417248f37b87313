package dnsstub

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// DefaultLogLimit is how many queries the log keeps when Config.LogLimit
// is 0: enough for any test's assertions, bounded so that a client stuck
// in a retry loop cannot grow it without end.
const DefaultLogLimit = eventlog.DefaultLimit

// Query is one query the server received, as its log holds it. It is
// logged once its answer is decided, before a Delay fault holds the answer
// back, so that a test sees a slow query as soon as it arrives.
type Query struct {
	// Time is when the query arrived.
	Time time.Time
	// Client is the address the query came from.
	Client netip.AddrPort
	// Transport is "udp" or "tcp".
	Transport string
	// Name is the name asked for, as asked (fully qualified, its case
	// kept); "" for a query that did not parse.
	Name string
	// Type is the type asked for (dns.TypeA, ...).
	Type uint16
	// Rcode is the answer's rcode (dns.RcodeSuccess, ...), or -1 when no
	// answer was sent: a Drop fault.
	Rcode int
	// Answers is the number of records in the answer section.
	Answers int
	// Truncated reports the TC bit: the answer did not fit in UDP, or a
	// Truncate fault.
	Truncated bool
	// Fault is the fault that applied, nil if none.
	Fault *Fault
	// Opcode is dns.OpcodeQuery, or dns.OpcodeUpdate for a dynamic
	// update (RFC 2136), whose Name is the zone it updates and Type SOA.
	Opcode int
	// Key is the name of the TSIG key the message was signed with, "" if
	// it was not signed.
	Key string
	// Changes is how many records an update added or removed.
	Changes int
	// Note says why an update was refused or parts of it ignored, or why
	// a signature failed; "" otherwise.
	Note string
}

// String is the query as a log line: "udp 127.0.0.1:53124 www.example.test.
// AAAA: NOERROR, 1 answer".
func (q Query) String() string {
	var b strings.Builder
	if q.Opcode == dns.OpcodeUpdate {
		fmt.Fprintf(&b, "%s %s update %s", q.Transport, q.Client, q.Name)
	} else {
		fmt.Fprintf(&b, "%s %s %s %s", q.Transport, q.Client, q.Name, dns.Type(q.Type))
	}
	if q.Key != "" {
		fmt.Fprintf(&b, " (key %s)", q.Key)
	}
	b.WriteString(": ")
	switch {
	case q.Rcode < 0:
		b.WriteString("no answer")
	case q.Opcode == dns.OpcodeUpdate:
		fmt.Fprintf(&b, "%s, %d change", rcodeName(q.Rcode), q.Changes)
		if q.Changes != 1 {
			b.WriteString("s")
		}
	default:
		fmt.Fprintf(&b, "%s, %d answer", rcodeName(q.Rcode), q.Answers)
		if q.Answers != 1 {
			b.WriteString("s")
		}
	}
	if q.Truncated {
		b.WriteString(", truncated")
	}
	if q.Fault != nil {
		fmt.Fprintf(&b, " (fault: %s)", q.Fault)
	}
	if q.Note != "" {
		fmt.Fprintf(&b, " (%s)", q.Note)
	}
	return b.String()
}

// rcodeName names an rcode, or gives its number.
func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rcode)
}

// Match picks queries from the log, for WaitForQuery or a test's own
// filtering of Log. The zero value matches every query; each field set
// narrows it.
type Match struct {
	// Name matches the name asked for, whatever its case; the final dot
	// is optional.
	Name string
	// Type matches the type asked for; 0 matches any.
	Type uint16
	// Transport matches "udp" or "tcp"; "" matches both.
	Transport string
	// Update matches dynamic updates only (Query.Opcode is
	// dns.OpcodeUpdate), Name then being the zone they update.
	Update bool
	// Since matches queries that arrived at or after it: those after a
	// change the test made, say.
	Since time.Time
	// Func, if not nil, must return true too.
	Func func(Query) bool
	// Desc says what Func checks, for WaitForQuery's error.
	Desc string
}

// Matches reports whether q is one m picks.
func (m Match) Matches(q Query) bool {
	return (m.Name == "" || dns.CanonicalName(m.Name) == dns.CanonicalName(q.Name)) &&
		(m.Type == 0 || m.Type == q.Type) &&
		(m.Transport == "" || m.Transport == q.Transport) &&
		(!m.Update || q.Opcode == dns.OpcodeUpdate) &&
		(m.Since.IsZero() || !q.Time.Before(m.Since)) &&
		(m.Func == nil || m.Func(q))
}

// String describes what m picks: "a query for www.example.test. AAAA over
// tcp".
func (m Match) String() string {
	s := "a query"
	if m.Update {
		s = "an update"
	}
	if m.Name != "" {
		s += " for " + dns.Fqdn(m.Name)
	}
	if m.Type != 0 {
		s += " " + dns.Type(m.Type).String()
	}
	if m.Transport != "" {
		s += " over " + m.Transport
	}
	return s + eventlog.MatchTail(m.Since, m.Func != nil, m.Desc)
}

// Log returns a copy of the query log, oldest first: the last
// Config.LogLimit queries.
func (s *Server) Log() []Query { return s.log.All() }

// ClearLog empties the query log.
func (s *Server) ClearLog() { s.log.Clear() }

// record appends q to the log, wakes WaitForQuery, and hands q to
// Config.Logf.
func (s *Server) record(q Query) {
	s.log.Record(q.Time, q, s.cfg.LogLimit)
	if s.cfg.Logf != nil {
		s.cfg.Logf("dns stub: %s", q)
	}
}

// WaitForQuery returns the first query in the log that m matches, waiting
// for one until ctx ends; it looks at the queries logged already too, so
// that a query that came before the call is not missed (set m.Since to
// wait for a later one). When ctx ends first, the error says what it
// waited for and the last queries it saw, and wraps ErrNoQuery and ctx's
// error (context.DeadlineExceeded, say).
func (s *Server) WaitForQuery(ctx context.Context, m Match) (Query, error) {
	return s.log.Wait(ctx, eventlog.Wait[Query]{Match: m.Matches, What: m.String(), Err: ErrNoQuery,
		Noun: "query", Nouns: "queries",
		Empty: "no query came at all (is the client asking this server, at its address and port?)"})
}
