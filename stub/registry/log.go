package registrystub

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// DefaultLogLimit is how many pulls, and how many pushes, the logs keep
// when Config.LogLimit is 0: far more than a test's images have blobs,
// bounded so that a client retrying without end cannot grow them.
const DefaultLogLimit = eventlog.DefaultLimit

// Kind is what a pull or push fetched or stored.
type Kind string

// Kinds of content.
const (
	Manifest Kind = "manifest" // a manifest or an index, by tag or digest
	Blob     Kind = "blob"     // a layer or a config, by digest
)

// Pull is one request for content, as the pull log holds it: logged once
// answered, refused ones included.
type Pull struct {
	// Time is when the request arrived.
	Time time.Time
	// Remote is the address it came from.
	Remote netip.AddrPort
	// Method is GET, or HEAD (a client checking a tag's digest, or a
	// blob's presence, before fetching).
	Method string
	// Kind is Manifest or Blob.
	Kind Kind
	// Repo is the repository, "library/alpine".
	Repo string
	// Reference is the tag or digest asked for.
	Reference string
	// Digest is the content's digest as the registry answered it
	// (Docker-Content-Digest); "" when none was found, or Refused.
	Digest string
	// Status is the answer's status: 200, 404 for content the registry
	// lacks, 403 when Refused.
	Status int
	// Refused reports a pull refused in airgap mode (SetRefusePulls).
	Refused bool
}

// String is the pull as a log line: "pull GET manifest library/alpine:3.20
// from 127.0.0.1:41234: 200 sha256:...".
func (p Pull) String() string {
	s := fmt.Sprintf("pull %s %s %s from %s: %d", p.Method, p.Kind, ref(p.Repo, p.Reference), p.Remote, p.Status)
	if p.Refused {
		s += " refused (airgap)"
	} else if p.Digest != "" && p.Digest != p.Reference {
		s += " " + p.Digest
	}
	return s
}

// ref joins a repository and a tag or digest as references do.
func ref(repo, reference string) string {
	if strings.Contains(reference, ":") {
		return repo + "@" + reference
	}
	return repo + ":" + reference
}

// Push is one piece of content stored by a client other than the test's
// Push: a manifest put, or a blob's upload finished (or mounted from
// another repository).
type Push struct {
	// Time is when the request arrived.
	Time time.Time
	// Remote is the address it came from.
	Remote netip.AddrPort
	// Kind is Manifest or Blob.
	Kind Kind
	// Repo is the repository pushed to.
	Repo string
	// Reference is the tag or digest pushed.
	Reference string
	// Digest is the content's digest.
	Digest string
	// Status is the answer's status: 201 when stored.
	Status int
}

// String is the push as a log line.
func (p Push) String() string {
	return fmt.Sprintf("push %s %s from %s: %d", p.Kind, ref(p.Repo, p.Reference), p.Remote, p.Status)
}

// Match picks pulls from the log, for WaitForPull or a test's own
// filtering of Pulls. The zero value matches every pull; each field set
// narrows it.
type Match struct {
	// Repo matches the repository, "library/alpine"; "" matches any.
	Repo string
	// Reference matches the tag or digest asked for; "" matches any.
	Reference string
	// Kind matches Manifest or Blob; "" matches both.
	Kind Kind
	// Method matches GET or HEAD; "" matches both.
	Method string
	// Since matches pulls that arrived at or after it.
	Since time.Time
	// Func, if not nil, must return true too.
	Func func(Pull) bool
	// Desc says what Func checks, for WaitForPull's error.
	Desc string
}

// Matches reports whether p is one m picks.
func (m Match) Matches(p Pull) bool {
	return (m.Repo == "" || m.Repo == p.Repo) &&
		(m.Reference == "" || m.Reference == p.Reference) &&
		(m.Kind == "" || m.Kind == p.Kind) &&
		(m.Method == "" || strings.EqualFold(m.Method, p.Method)) &&
		(m.Since.IsZero() || !p.Time.Before(m.Since)) &&
		(m.Func == nil || m.Func(p))
}

// String describes what m picks: "a pull of manifest library/alpine:3.20".
func (m Match) String() string {
	s := "a pull"
	if m.Method != "" {
		s = "a " + strings.ToUpper(m.Method) + " pull"
	}
	if m.Kind != "" || m.Repo != "" || m.Reference != "" {
		s += " of"
	}
	if m.Kind != "" {
		s += " " + string(m.Kind)
	}
	switch {
	case m.Repo != "" && m.Reference != "":
		s += " " + ref(m.Repo, m.Reference)
	case m.Repo != "":
		s += " " + m.Repo
	case m.Reference != "":
		s += " " + m.Reference
	}
	return s + eventlog.MatchTail(m.Since, m.Func != nil, m.Desc)
}

// Pulls returns a copy of the pull log, oldest first, refused pulls
// included: empty if no client asked for content.
func (s *Server) Pulls() []Pull { return s.pulls.All() }

// Pushes returns a copy of the push log, oldest first.
func (s *Server) Pushes() []Push { return s.pushes.All() }

// ClearLogs empties the pull and push logs (not the web server's).
func (s *Server) ClearLogs() {
	s.pulls.Clear()
	s.pushes.Clear()
}

// recordPull appends p to the pull log and wakes WaitForPull.
func (s *Server) recordPull(p Pull) {
	s.pulls.Record(p.Time, p, s.cfg.LogLimit)
	s.logf("registry stub: %s", p)
}

// recordPush appends p to the push log.
func (s *Server) recordPush(p Push) {
	s.pushes.Record(p.Time, p, s.cfg.LogLimit)
	s.logf("registry stub: %s", p)
}

// logf hands a line to Config.Logf.
func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// WaitForPull returns the first pull in the log that m matches, waiting
// for one until ctx ends; it looks at the pulls logged already too (set
// m.Since to wait for a later one). When ctx ends first, the error says
// what it waited for and the last pulls it saw, and wraps ErrNoPull and
// ctx's error.
func (s *Server) WaitForPull(ctx context.Context, m Match) (Pull, error) {
	return s.pulls.Wait(ctx, eventlog.Wait[Pull]{Match: m.Matches, What: m.String(), Err: ErrNoPull,
		Noun: "pull", Nouns: "pulls",
		Empty: "no pull came at all (is the client asking this registry, at its address, over HTTPS if it serves TLS? the web server's log, Web().Log(), has every request)"})
}
