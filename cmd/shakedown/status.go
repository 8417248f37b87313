package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/shakedown-dev/shakedown"
)

// statusLine keeps one live line at the bottom of a terminal saying what
// the testbed is doing now, from shakedown.Event reports:
//
//	web: download linux-image-6.1.0-56-amd64 34/70 MB | db: booting (2.1 s)
//
// It is rewritten in place (carriage return and ANSI clear-line), and
// it is also the writer of the normal output: each Write clears the line
// first and draws it again after, so log lines never interleave with it.
// A statusLine that is not live (no terminal, or CI=true) passes writes
// through untouched and ignores events. Start draws the elapsed times as
// they grow; Close stops that and clears the line.
type statusLine struct {
	w     io.Writer
	live  bool
	color bool
	// width returns the terminal's columns; the line is cut to fit, as a
	// line that wraps can no longer be cleared with one escape.
	width func() int
	now   func() time.Time

	mu      sync.Mutex
	steps   []*activeStep // in the order they began
	shown   string        // the text on screen now, "" if none
	midLine bool          // the last Write did not end its line: draw nothing until one does
	closed  bool          // Close was called: writes go straight through
	stop    chan struct{}
	done    chan struct{}
}

// activeStep is a step that has begun and not ended.
type activeStep struct {
	machine, step string
	began         time.Time
	bytes, total  int64
}

// statusRefresh is how often a live line is redrawn as times advance.
const statusRefresh = 100 * time.Millisecond

// ANSI escapes of the status line.
const (
	clearLine   = "\r\x1b[2K"
	statusColor = "\x1b[36m"
	colorReset  = "\x1b[0m"
)

// newStatusLine returns the status line over f: live when f is a terminal
// and the run is not in CI (CI=true), with colour when color is set.
func newStatusLine(f *os.File, color bool) *statusLine {
	s := &statusLine{w: f, live: statusLive(f, os.Getenv), color: color, now: time.Now}
	s.width = func() int {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
		return 80
	}
	return s
}

// statusLive says whether f gets a live status line.
func statusLive(f *os.File, getenv func(string) string) bool {
	return getenv("CI") != "true" && term.IsTerminal(int(f.Fd()))
}

// Progress is the shakedown.Options.Progress of a live line, nil
// otherwise, so that a run without one costs nothing.
func (s *statusLine) Progress() func(shakedown.Event) {
	if !s.live {
		return nil
	}
	return s.Event
}

// Event records e and redraws the line.
func (s *statusLine) Event(e shakedown.Event) {
	if !s.live {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	switch {
	case e.Step == shakedown.StepUp:
		// The machine answers: whatever it still showed is over.
		s.steps = removeSteps(s.steps, func(a *activeStep) bool { return a.machine == e.Machine })
	case e.Done:
		s.steps = removeSteps(s.steps, func(a *activeStep) bool { return a.machine == e.Machine && a.step == e.Step })
	default:
		a := s.find(e.Machine, e.Step)
		if a == nil {
			a = &activeStep{machine: e.Machine, step: e.Step, began: s.now()}
			s.steps = append(s.steps, a)
		}
		a.bytes, a.total = e.Bytes, e.Total
	}
	s.draw()
}

func (s *statusLine) find(machine, step string) *activeStep {
	for _, a := range s.steps {
		if a.machine == machine && a.step == step {
			return a
		}
	}
	return nil
}

func removeSteps(steps []*activeStep, drop func(*activeStep) bool) []*activeStep {
	out := steps[:0]
	for _, a := range steps {
		if !drop(a) {
			out = append(out, a)
		}
	}
	return out
}

// Write writes p below the status line: the line is cleared, p written,
// and the line drawn again once p has ended its line.
func (s *statusLine) Write(p []byte) (int, error) {
	if !s.live {
		return s.w.Write(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.w.Write(p)
	}
	if s.shown != "" {
		io.WriteString(s.w, clearLine)
		s.shown = ""
	}
	n, err := s.w.Write(p)
	if len(p) > 0 {
		s.midLine = p[len(p)-1] != '\n'
	}
	s.draw()
	return n, err
}

// draw puts the current text on screen if it changed; s.mu is held.
func (s *statusLine) draw() {
	if s.midLine {
		return
	}
	text := s.text(s.now())
	if text == s.shown {
		return
	}
	out := clearLine
	if text != "" {
		if s.color {
			out += statusColor + text + colorReset
		} else {
			out += text
		}
	}
	io.WriteString(s.w, out)
	s.shown = text
}

// text is the line for the steps active at now: the latest step of each
// machine (steps nest, so the latest is the innermost), cut to the
// terminal's width.
func (s *statusLine) text(now time.Time) string {
	var parts []string
	seen := map[string]int{}
	for _, a := range s.steps {
		part := describeStep(a, now)
		if i, ok := seen[a.machine]; ok {
			parts[i] = part
			continue
		}
		seen[a.machine] = len(parts)
		parts = append(parts, part)
	}
	return fit(strings.Join(parts, " | "), s.width()-1)
}

// describeStep says what a step is doing: bytes for a download, else the
// time it has taken so far.
func describeStep(a *activeStep, now time.Time) string {
	var b strings.Builder
	if a.machine != "" {
		b.WriteString(a.machine + ": ")
	}
	switch {
	case strings.HasPrefix(a.step, shakedown.DownloadStepPrefix):
		b.WriteString(a.step + " " + megabytes(a.bytes, a.total))
	case a.step == shakedown.StepBoot:
		fmt.Fprintf(&b, "booting (%.1f s)", now.Sub(a.began).Seconds())
	default:
		fmt.Fprintf(&b, "%s (%.1f s)", a.step, now.Sub(a.began).Seconds())
	}
	return b.String()
}

// megabytes is "34/70 MB", with a decimal for sizes under 10 MB.
func megabytes(n, total int64) string {
	f := func(x int64) string {
		if max(n, total) < 10e6 {
			return fmt.Sprintf("%.1f", float64(x)/1e6)
		}
		return fmt.Sprintf("%d", (x+5e5)/1e6)
	}
	if total <= 0 {
		return f(n) + " MB"
	}
	return f(n) + "/" + f(total) + " MB"
}

// fit cuts s to at most width characters, ending in "…" when cut.
func fit(s string, width int) string {
	if width < 1 {
		width = 1
	}
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// Start redraws a live line every statusRefresh until Close, so that the
// elapsed times advance between events.
func (s *statusLine) Start() {
	if !s.live {
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(statusRefresh)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.mu.Lock()
				s.draw()
				s.mu.Unlock()
			}
		}
	}()
}

// Close stops the redrawing and clears the line; what is written after
// goes straight through.
func (s *statusLine) Close() {
	if !s.live {
		return
	}
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown != "" {
		io.WriteString(s.w, clearLine)
		s.shown = ""
	}
	s.steps = nil
	s.closed = true
}
