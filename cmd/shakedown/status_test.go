package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/shakedown-dev/shakedown"
)

// fakeClock is a statusLine's time, advanced by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// testStatus returns a status line writing to a buffer, live or not,
// width columns wide, on a fake clock.
func testStatus(live bool, width int) (*statusLine, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := &statusLine{w: &buf, live: live, now: clock.now, width: func() int { return width }}
	return s, &buf, clock
}

// step is what a test feeds a status line: an event, a log write, or time
// passing.
type step struct {
	event *shakedown.Event
	write string
	wait  time.Duration
}

func ev(machine, name string, done bool, bytes, total int64) step {
	return step{event: &shakedown.Event{Machine: machine, Step: name, Done: done, Bytes: bytes, Total: total}}
}

const dl = shakedown.DownloadStepPrefix + "linux-image-6.1.0-56-amd64"

// bootSteps is one machine's cold boot with a log line in the middle of
// the kernel download.
var bootSteps = []step{
	ev("web", shakedown.StepKernel, false, 0, 0),
	{wait: 300 * time.Millisecond},
	ev("web", dl, false, 0, 70_236_800),
	ev("web", dl, false, 34_000_000, 70_236_800),
	{write: "shakedown: a log line\n"},
	ev("web", dl, true, 70_236_800, 70_236_800),
	{wait: 1200 * time.Millisecond},
	ev("web", shakedown.StepKernel, true, 0, 0),
	ev("web", shakedown.StepInitramfs, false, 0, 0),
	ev("web", shakedown.StepInitramfs, true, 0, 0),
	ev("web", shakedown.StepBoot, false, 0, 0),
	{wait: 2100 * time.Millisecond},
	ev("web", shakedown.StepBoot, true, 0, 0),
	ev("web", shakedown.StepUp, true, 0, 0),
	{write: "web: up in 3.60s\n"},
}

func feed(s *statusLine, clock *fakeClock, steps []step) {
	for _, st := range steps {
		switch {
		case st.event != nil:
			s.Event(*st.event)
		case st.write != "":
			s.Write([]byte(st.write))
		default:
			clock.advance(st.wait)
		}
	}
}

func TestStatusLine(t *testing.T) {
	const cl = clearLine
	for _, tc := range []struct {
		name  string
		live  bool
		width int
		steps []step
		want  string
	}{{
		name:  "not a terminal",
		live:  false,
		width: 80,
		steps: bootSteps,
		want:  "shakedown: a log line\nweb: up in 3.60s\n",
	}, {
		name:  "terminal",
		live:  true,
		width: 80,
		steps: bootSteps,
		want: cl + "web: resolve kernel (0.0 s)" +
			cl + "web: download linux-image-6.1.0-56-amd64 0/70 MB" +
			cl + "web: download linux-image-6.1.0-56-amd64 34/70 MB" +
			cl + "shakedown: a log line\n" +
			cl + "web: download linux-image-6.1.0-56-amd64 34/70 MB" +
			cl + "web: resolve kernel (0.3 s)" +
			cl + // the kernel's step ends
			cl + "web: build initramfs (0.0 s)" +
			cl +
			cl + "web: booting (0.0 s)" +
			cl + // boot ends: nothing left to show, and up changes nothing
			"web: up in 3.60s\n",
	}, {
		name:  "narrow terminal",
		live:  true,
		width: 20,
		steps: bootSteps[:4],
		want: cl + "web: resolve kerne…" + // 19 columns: the 20th would wrap
			cl + "web: download linu…",
	}, {
		name:  "two machines",
		live:  true,
		width: 80,
		steps: []step{
			ev("db", shakedown.StepBoot, false, 0, 0),
			{wait: 2100 * time.Millisecond},
			ev("web", shakedown.StepBusybox, false, 0, 0),
			ev("web", shakedown.DownloadStepPrefix+"busybox-static", false, 600_000, 1_200_000),
			ev("db", shakedown.StepUp, true, 0, 0),
		},
		want: cl + "db: booting (0.0 s)" +
			cl + "db: booting (2.1 s) | web: fetch busybox (0.0 s)" +
			cl + "db: booting (2.1 s) | web: download busybox-static 0.6/1.2 MB" +
			cl + "web: download busybox-static 0.6/1.2 MB",
	}, {
		name:  "partial log line",
		live:  true,
		width: 80,
		steps: []step{
			ev("", shakedown.StepAgent, false, 0, 0),
			{write: "building "},
			ev("", shakedown.StepAgent, true, 0, 0),
			{write: "done\n"},
		},
		want: cl + "build agent (0.0 s)" +
			cl + "building done\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s, buf, clock := testStatus(tc.live, tc.width)
			feed(s, clock, tc.steps)
			if got := buf.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestStatusLineClose(t *testing.T) {
	s, buf, clock := testStatus(true, 80)
	feed(s, clock, bootSteps[:1])
	s.Close()
	s.Event(shakedown.Event{Machine: "web", Step: shakedown.StepBoot})
	s.Write([]byte("after\n"))
	want := clearLine + "web: resolve kernel (0.0 s)" + clearLine + "after\n"
	if got := buf.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestStatusLineRedraws(t *testing.T) {
	s, buf, _ := testStatus(true, 80)
	s.now = time.Now
	s.Event(shakedown.Event{Machine: "web", Step: shakedown.StepBoot})
	s.Start()
	time.Sleep(3 * statusRefresh)
	s.Close()
	// The line was drawn again as the time advanced, and cleared at the end.
	got := buf.String()
	if n := strings.Count(got, "web: booting"); n < 2 {
		t.Errorf("got %d drawings in %q, want at least 2", n, got)
	}
	if !strings.HasSuffix(got, clearLine) {
		t.Errorf("got %q, want it to end clearing the line", got)
	}
}

func TestStatusLive(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	env := func(ci string) func(string) string {
		return func(k string) string {
			if k == "CI" {
				return ci
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		f    *os.File
		ci   string
		want bool
	}{
		{"terminal", tty, "", true},
		{"terminal in CI", tty, "true", false},
		{"terminal with CI=false", tty, "false", true},
		{"pipe", w, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusLive(tc.f, env(tc.ci)); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMegabytes(t *testing.T) {
	for _, tc := range []struct {
		n, total int64
		want     string
	}{
		{34_000_000, 70_236_800, "34/70 MB"},
		{0, 70_236_800, "0/70 MB"},
		{600_000, 1_200_000, "0.6/1.2 MB"},
		{12_400_000, 0, "12 MB"},
		{120_000, 0, "0.1 MB"},
	} {
		if got := megabytes(tc.n, tc.total); got != tc.want {
			t.Errorf("megabytes(%d, %d): got %q, want %q", tc.n, tc.total, got, tc.want)
		}
	}
}
