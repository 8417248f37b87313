package webstub

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// DefaultLogLimit is how many requests the log keeps when Config.LogLimit
// is 0: enough for any test's assertions (an apt update and install is a
// few hundred), bounded so that a client stuck in a retry loop cannot grow
// it without end.
const DefaultLogLimit = eventlog.DefaultLimit

// Request is one request the server received, as its log holds it. It is
// logged once answered, dropped, or given up by the client, so that its
// status and size are known.
type Request struct {
	// Time is when the request arrived.
	Time time.Time
	// Method is the request's method, "GET" say.
	Method string
	// Host is the Host header: the name the client asked for.
	Host string
	// Path is the URL's path, unescaped; RawQuery its query, without "?".
	Path     string
	RawQuery string
	// Remote is the address the request came from.
	Remote netip.AddrPort
	// UserAgent is the User-Agent header: "Debian APT-HTTP/1.3 (2.6.1)",
	// "curl/8.5.0".
	UserAgent string
	// TLS reports a request over HTTPS.
	TLS bool
	// Status is the answer's status; 0 when none was sent (Dropped).
	Status int
	// Bytes is the size of the answer's body as sent.
	Bytes int64
	// Dropped reports that no answer was sent: a Drop fault, the client
	// gone during a Delay, or Close.
	Dropped bool
	// Duration is how long the answer took.
	Duration time.Duration
	// Fault is the fault that applied, nil if none.
	Fault *Fault
}

// String is the request as a log line: "GET http://deb.test/dists/stable/
// InRelease from 127.0.0.1:41234 (curl/8.5.0): 503 Service Unavailable,
// 20 bytes in 1ms (fault: 503 x1)".
func (r Request) String() string {
	var b strings.Builder
	scheme := "http"
	if r.TLS {
		scheme = "https"
	}
	fmt.Fprintf(&b, "%s %s://%s%s", r.Method, scheme, r.Host, r.Path)
	if r.RawQuery != "" {
		b.WriteString("?" + r.RawQuery)
	}
	fmt.Fprintf(&b, " from %s", r.Remote)
	if r.UserAgent != "" {
		fmt.Fprintf(&b, " (%s)", r.UserAgent)
	}
	if r.Dropped {
		b.WriteString(": no answer")
	} else {
		fmt.Fprintf(&b, ": %s, %d bytes", statusText(r.Status), r.Bytes)
	}
	fmt.Fprintf(&b, " in %v", r.Duration.Round(time.Millisecond))
	if r.Fault != nil {
		fmt.Fprintf(&b, " (fault: %s)", r.Fault)
	}
	return b.String()
}

// Match picks requests from the log, for WaitForRequest or a test's own
// filtering of Log. The zero value matches every request; each field set
// narrows it.
type Match struct {
	// Method matches the method, "GET" say; "" matches any.
	Method string
	// Host matches the Host header, without its port if the match has
	// none; "" matches any.
	Host string
	// Path matches the path exactly; PathPrefix matches paths that start
	// with it.
	Path       string
	PathPrefix string
	// Status matches the answer's status; 0 matches any, dropped
	// requests included.
	Status int
	// Since matches requests that arrived at or after it: those after a
	// change the test made, say.
	Since time.Time
	// Func, if not nil, must return true too.
	Func func(Request) bool
	// Desc says what Func checks, for WaitForRequest's error.
	Desc string
}

// Matches reports whether r is one m picks.
func (m Match) Matches(r Request) bool {
	return (m.Method == "" || strings.EqualFold(m.Method, r.Method)) &&
		(m.Host == "" || hostMatches(m.Host, r.Host)) &&
		(m.Path == "" || m.Path == r.Path) &&
		(m.PathPrefix == "" || strings.HasPrefix(r.Path, m.PathPrefix)) &&
		(m.Status == 0 || m.Status == r.Status) &&
		(m.Since.IsZero() || !r.Time.Before(m.Since)) &&
		(m.Func == nil || m.Func(r))
}

// hostMatches compares a Match's host with a Host header, whose port is
// ignored when the match has none.
func hostMatches(want, host string) bool {
	if strings.EqualFold(want, host) {
		return true
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.EqualFold(strings.Trim(want, "[]"), strings.Trim(host, "[]"))
}

// String describes what m picks: "a GET request for deb.test /pool/...
// answered 200".
func (m Match) String() string {
	s := "a request"
	if m.Method != "" {
		s = "a " + strings.ToUpper(m.Method) + " request"
	}
	if m.Host != "" {
		s += " to " + m.Host
	}
	if m.Path != "" {
		s += " for " + m.Path
	}
	if m.PathPrefix != "" {
		s += " for " + m.PathPrefix + "..."
	}
	if m.Status != 0 {
		s += " answered " + fmt.Sprint(m.Status)
	}
	return s + eventlog.MatchTail(m.Since, m.Func != nil, m.Desc)
}

// Log returns a copy of the request log, oldest first: the last
// Config.LogLimit requests.
func (s *Server) Log() []Request { return s.log.All() }

// ClearLog empties the request log.
func (s *Server) ClearLog() { s.log.Clear() }

// record appends r to the log, wakes WaitForRequest, and hands r to
// Config.Logf.
func (s *Server) record(r Request) {
	s.log.Record(r.Time, r, s.cfg.LogLimit)
	s.logf("web stub: %s", r)
}

// WaitForRequest returns the first request in the log that m matches,
// waiting for one until ctx ends; it looks at the requests logged already
// too, so that a request that came before the call is not missed (set
// m.Since to wait for a later one). When ctx ends first, the error says
// what it waited for and the last requests it saw, and wraps ErrNoRequest
// and ctx's error (context.DeadlineExceeded, say).
func (s *Server) WaitForRequest(ctx context.Context, m Match) (Request, error) {
	return s.log.Wait(ctx, eventlog.Wait[Request]{Match: m.Matches, What: m.String(), Err: ErrNoRequest,
		Noun: "request", Nouns: "requests",
		Empty: "no request came at all (is the client asking this server, at its address and port, over the right scheme?)"})
}
