// Package eventlog is the log behind every stand-in service's record of
// what it was asked and what it answered (DNS queries, DHCP messages,
// HTTP requests, registry pulls, ACME events): bounded, safe for
// concurrent use, and waitable, so that a test can wait for an entry and,
// when none comes, be told what it waited for and what came instead. It
// imports only the standard library.
package eventlog

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// DefaultLimit is how many entries a log keeps when its limit is 0:
// enough for any test's assertions, bounded so that a client stuck in a
// retry loop cannot grow it without end.
const DefaultLimit = 10000

// Shown is how many of the last entries a failed wait's error shows.
const Shown = 5

// Log holds entries of type T, oldest first. Its zero value is an empty
// log, ready to use.
type Log[T fmt.Stringer] struct {
	mu      sync.Mutex
	items   []item[T]
	dropped int           // entries dropped from the front, by the limit
	changed chan struct{} // closed by the next Record, for Wait
}

type item[T any] struct {
	at time.Time
	e  T
}

// Record appends e, which happened at at, dropping the oldest entries
// beyond limit (0 means DefaultLimit), and wakes the waits.
func (l *Log[T]) Record(at time.Time, e T, limit int) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.items) >= limit {
		drop := len(l.items) - limit + 1
		l.items = append(l.items[:0:0], l.items[drop:]...)
		l.dropped += drop
	}
	l.items = append(l.items, item[T]{at, e})
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// All returns a copy of the entries, oldest first.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]T, len(l.items))
	for i, it := range l.items {
		out[i] = it.e
	}
	return out
}

// Clear empties the log.
func (l *Log[T]) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items, l.dropped = nil, 0
}

// Wait says what a wait is for and how its error reads.
type Wait[T any] struct {
	// Match picks the entry waited for.
	Match func(T) bool
	// What describes it: "a query for www.example.test. AAAA".
	What string
	// Err is the sentinel the error wraps: ErrNoQuery, say.
	Err error
	// Noun and Nouns name an entry and entries in the error: "query",
	// "queries".
	Noun, Nouns string
	// Empty is what the error says when nothing at all came, with a hint:
	// "no query came at all (is the client asking this server?)".
	Empty string
}

// Wait returns the first entry w.Match picks, waiting for one until ctx
// ends; it looks at the entries logged already too, so that one that came
// before the call is not missed. When ctx ends first, the error says what
// it waited for, for how long, and the last entries that came, and wraps
// w.Err and ctx's error.
func (l *Log[T]) Wait(ctx context.Context, w Wait[T]) (T, error) {
	start := time.Now()
	for {
		l.mu.Lock()
		for _, it := range l.items {
			if w.Match(it.e) {
				l.mu.Unlock()
				return it.e, nil
			}
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("wait for %s: %w after %v: %w; %s",
				w.What, w.Err, time.Since(start).Round(time.Millisecond), ctx.Err(), l.summary(w))
		}
	}
}

// summary says what the log holds, for Wait's error.
func (l *Log[T]) summary(w Wait[T]) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.items) + l.dropped
	if n == 0 {
		return w.Empty
	}
	shown := l.items[max(0, len(l.items)-Shown):]
	lines := make([]string, len(shown))
	for i, it := range shown {
		lines[i] = it.at.Format("15:04:05.000 ") + it.e.String()
	}
	came := fmt.Sprintf("%d %s came", n, w.Nouns)
	if n == 1 {
		came = "1 " + w.Noun + " came"
	}
	return fmt.Sprintf("%s, none matching; the last %d:\n\t%s", came, len(shown), strings.Join(lines, "\n\t"))
}

// MatchTail ends the description of a stub's Match with what every
// stub's has: " since 10:04:05.000" for a Since, and " that DESC" (or
// " that its Func accepts") for a Func.
func MatchTail(since time.Time, hasFunc bool, desc string) string {
	var s string
	if !since.IsZero() {
		s += " since " + since.Format("15:04:05.000")
	}
	if hasFunc {
		if desc != "" {
			s += " that " + desc
		} else {
			s += " that its Func accepts"
		}
	}
	return s
}
