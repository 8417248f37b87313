package pdnsapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// Request is one request the API answered, as its log holds it.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Remote string // the client's address
	Status int    // the status answered
	Body   string // a PATCH's or POST's body
	Error  string // the error answered, "" on success
	Fault  *Fault // the fault that answered it, nil if none
}

// String is the request as a log line: "PATCH
// /api/v1/servers/localhost/zones/example.test. from 127.0.0.1:5555: 204".
func (r Request) String() string {
	s := fmt.Sprintf("%s %s from %s: %d", r.Method, r.Path, r.Remote, r.Status)
	if r.Error != "" {
		s += " (" + r.Error + ")"
	}
	return s
}

// Match picks requests from the log; the zero value matches every one.
type Match struct {
	Method string    // "" matches any
	Path   string    // a prefix; "" matches any
	Status int       // 0 matches any
	Since  time.Time // requests at or after it
}

// Matches reports whether r is one m picks.
func (m Match) Matches(r Request) bool {
	return (m.Method == "" || m.Method == r.Method) && strings.HasPrefix(r.Path, m.Path) &&
		(m.Status == 0 || m.Status == r.Status) && (m.Since.IsZero() || !r.Time.Before(m.Since))
}

func (m Match) String() string {
	s := "a request"
	if m.Method != "" {
		s = "a " + m.Method + " request"
	}
	if m.Path != "" {
		s += " under " + m.Path
	}
	if m.Status != 0 {
		s += fmt.Sprintf(" answered %d", m.Status)
	}
	if !m.Since.IsZero() {
		s += " since " + m.Since.Format("15:04:05.000")
	}
	return s
}

// record logs r and wakes WaitForRequest.
func (a *API) record(r Request) {
	a.log.Record(r.Time, r, 0)
	if a.cfg.Logf != nil {
		a.cfg.Logf("pdns api: %s", r)
	}
}

// Log returns a copy of the request log, oldest first.
func (a *API) Log() []Request { return a.log.All() }

// WaitForRequest returns the first logged request m matches, waiting until
// ctx ends for one to come. Its error then says what it waited for and
// the last requests it saw, and wraps ErrNoRequest and ctx's error.
func (a *API) WaitForRequest(ctx context.Context, m Match) (Request, error) {
	return a.log.Wait(ctx, eventlog.Wait[Request]{Match: m.Matches, What: m.String(), Err: ErrNoRequest,
		Noun: "request", Nouns: "requests", Empty: "no request came at all (is the client given the API's URL?)"})
}
