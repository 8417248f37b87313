package scenario

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Log prints a run as the NixOS driver does: nested sections, each opened
// with its title and closed with "(finished: title, in 1.23 s)". A nil Log,
// or one without W, prints nothing. It is safe for concurrent use, because
// console lines and testbed messages arrive from other goroutines; those
// print at the depth of the section open at the time.
type Log struct {
	// W receives the lines.
	W io.Writer
	// Color adds ANSI colours; set it only when W is a terminal.
	Color bool
	// Steps gives each machine verb a section of its own; without it
	// only scenarios and subtests have one.
	Steps bool

	mu    sync.Mutex
	depth int
}

// ANSI escapes, used only when Log.Color is set.
const (
	bold  = "\x1b[1m"
	dim   = "\x1b[2m"
	red   = "\x1b[31m"
	green = "\x1b[32m"
	reset = "\x1b[0m"
)

// Printf prints a message at the current depth, every line indented.
func (l *Log) Printf(format string, args ...any) {
	l.print("", fmt.Sprintf(format, args...))
}

func (l *Log) print(color, msg string) {
	if l == nil || l.W == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	indent := strings.Repeat("  ", l.depth)
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if l.Color && color != "" {
			line = color + line + reset
		}
		fmt.Fprintf(l.W, "%s%s\n", indent, line)
	}
}

// Section opens a section and returns the function that closes it with
// its duration, and with "failed" when err is not nil.
func (l *Log) Section(title string) (end func(err error)) {
	return l.section(title, false)
}

// section is Section; a step's section prints only when l.Steps is set.
func (l *Log) section(title string, step bool) func(error) {
	if l == nil || l.W == nil || (step && !l.Steps) {
		return func(error) {}
	}
	l.print(bold, title)
	l.mu.Lock()
	l.depth++
	l.mu.Unlock()
	began := time.Now()
	return func(err error) {
		l.mu.Lock()
		l.depth--
		l.mu.Unlock()
		s := time.Since(began).Seconds()
		if err != nil {
			l.print(red, fmt.Sprintf("(failed: %s, after %.2f s)", title, s))
			return
		}
		l.print(dim, fmt.Sprintf("(finished: %s, in %.2f s)", title, s))
	}
}

// Verdict prints a scenario's one-line outcome, in colour on a terminal.
func (l *Log) Verdict(passed bool, format string, args ...any) {
	word, color := "PASS", green
	if !passed {
		word, color = "FAIL", red
	}
	l.print(color, word+" "+fmt.Sprintf(format, args...))
}
