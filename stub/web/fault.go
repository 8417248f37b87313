package webstub

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Fault is a failure the server plays for requests under a path prefix,
// set and cleared at run time: what a test makes a web server do to see
// how its client copes (apt's retries, an installer's resume). The zero
// value does nothing, and SetFault refuses it; set Status, Drop or Delay.
type Fault struct {
	// Status, if not 0, answers with this status (200 to 599) and its
	// text as the body, instead of the handler: 503 for a server down, 429
	// for rate limiting, 404 for a file missing from a mirror.
	Status int
	// RetryAfter, with Status, sends a Retry-After header of this many
	// seconds (rounded up), as 429 and 503 answers do.
	RetryAfter time.Duration
	// Delay holds the answer back this long (before Status's or Drop's,
	// or the handler's): a slow server, or a timeout shorter than Delay.
	// The client giving up, or Close, cuts it short.
	Delay time.Duration
	// Drop closes the connection without an answer: a server that died
	// mid-request. The client sees EOF.
	Drop bool
	// Times, if not 0, limits the fault to the next Times requests it
	// matches, then clears it: a failure that a retry gets past.
	Times int
}

// check rejects a fault that does nothing or contradicts itself.
func (f Fault) check() error {
	switch {
	case f.Status != 0 && (f.Status < 200 || f.Status > 599):
		return fmt.Errorf("%w: Status %d: want 200 to 599, or 0 for the handler's answer", ErrBadFault, f.Status)
	case f.Delay < 0 || f.RetryAfter < 0:
		return fmt.Errorf("%w: negative Delay %v or RetryAfter %v", ErrBadFault, f.Delay, f.RetryAfter)
	case f.Times < 0:
		return fmt.Errorf("%w: Times %d is negative: want 0 for until cleared, or a count", ErrBadFault, f.Times)
	case f.Drop && f.Status != 0:
		return fmt.Errorf("%w: Drop sends no answer, so Status would do nothing beside it: set one", ErrBadFault)
	case f.RetryAfter != 0 && f.Status == 0:
		return fmt.Errorf("%w: RetryAfter goes with a Status (429, 503): set one", ErrBadFault)
	case f.Status == 0 && !f.Drop && f.Delay == 0:
		return fmt.Errorf("%w: it does nothing: set Status, Drop or Delay (ClearFault removes a fault)", ErrBadFault)
	}
	return nil
}

// String describes the fault for the request log and messages: "503
// retry-after 2s", "drop", "delay 200ms x2", ...
func (f Fault) String() string {
	var parts []string
	switch {
	case f.Drop:
		parts = append(parts, "drop")
	case f.Status != 0:
		parts = append(parts, fmt.Sprint(f.Status))
	}
	if f.RetryAfter != 0 {
		parts = append(parts, "retry-after "+f.RetryAfter.String())
	}
	if f.Delay != 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if f.Times != 0 {
		parts = append(parts, fmt.Sprintf("x%d", f.Times))
	}
	return strings.Join(parts, " ")
}

// SetFault sets the fault of requests whose path starts with pathPrefix
// ("/" for every request, "/dists/" for an apt repository's indexes),
// replacing the one set on pathPrefix before. A request gets the fault of
// the longest prefix that matches its path. The prefix is plain text, not
// a ServeMux pattern: "/a" matches "/a", "/a/b" and "/ab". A fault that
// does nothing or contradicts itself, or a prefix not starting with "/",
// wraps ErrBadFault.
func (s *Server) SetFault(pathPrefix string, f Fault) error {
	if !strings.HasPrefix(pathPrefix, "/") {
		return fmt.Errorf("set fault %q: %w: want a path prefix starting with /", pathPrefix, ErrBadFault)
	}
	if err := f.check(); err != nil {
		return fmt.Errorf("set fault %s: %w", pathPrefix, err)
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.faults == nil {
		s.faults = map[string]*Fault{}
	}
	s.faults[pathPrefix] = &f
	return nil
}

// ClearFault removes the fault set on pathPrefix, if any.
func (s *Server) ClearFault(pathPrefix string) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	delete(s.faults, pathPrefix)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	clear(s.faults)
}

// takeFault returns a copy of the fault that applies to a request for
// path, counting it against its Times; nil if none.
func (s *Server) takeFault(path string) *Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	best := ""
	var f *Fault
	for prefix, pf := range s.faults {
		if strings.HasPrefix(path, prefix) && (f == nil || len(prefix) > len(best)) {
			best, f = prefix, pf
		}
	}
	if f == nil {
		return nil
	}
	applied := *f
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.faults, best)
		}
	}
	return &applied
}

// statusText names a status for log lines: "503 Service Unavailable".
func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return fmt.Sprint(code)
}
