package eventlog

import (
	"strings"
	"sync"
)

// Lines hands log lines to a Logf function (t.Logf, say) until Stop. A
// stub's server goroutines can outlive its Close by a moment (net/http
// logs a failed TLS handshake from the connection's own goroutine, which
// Close does not wait for), and a t.Logf after the test has ended is a
// data race and a panic; Stop waits for a line being handed over and
// turns the rest away. Its zero value, with a nil Logf, drops every line.
type Lines struct {
	Logf func(format string, args ...any)

	mu      sync.Mutex
	stopped bool
}

// Printf hands a line to Logf, unless Stop was called.
func (l *Lines) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Logf != nil && !l.stopped {
		l.Logf(format, args...)
	}
}

// Stop turns every later line away, once a line being handed over is done.
func (l *Lines) Stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// Indent puts prefix before every line of text (its trailing newlines
// dropped), for output and console lines quoted in a failure.
func Indent(text, prefix string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix)
}
