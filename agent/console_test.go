package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLineSplitter(t *testing.T) {
	long := strings.Repeat("x", maxLine)
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"lines", []string{"a\nb\n"}, []string{"a", "b"}},
		{"split across writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"last line without newline", []string{"a\nb"}, []string{"a", "b"}},
		{"empty lines", []string{"\n\n"}, []string{"", ""}},
		{"exactly maxLine", []string{long + "\n"}, []string{long}},
		{"maxLine then newline later", []string{long, "\nz\n"}, []string{long, "z"}},
		{"overlong line is cut", []string{long + "yy\n"}, []string{long, "yy"}},
		{"overlong across writes", []string{long[:10], long, "\n"}, []string{long, long[:10]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			l := &lineSplitter{onLine: func(line []byte) { got = append(got, string(line)) }}
			for _, c := range tt.chunks {
				if n, err := l.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write: got %d, %v, want %d, nil", n, err, len(c))
				}
				if len(l.partial) > maxLine {
					t.Fatalf("got a partial line of %d bytes, want at most %d", len(l.partial), maxLine)
				}
			}
			l.Close()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %d lines %.80q, want %d lines %.80q", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

// recorder is a channel stand-in that fails once closed, calling
// onFail first if set.
type recorder struct {
	mu     sync.Mutex
	b      bytes.Buffer
	closed bool
	onFail func()
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		if r.onFail != nil {
			r.onFail()
		}
		return 0, io.EOF
	}
	return r.b.Write(p)
}

func (r *recorder) close(onFail func()) {
	r.mu.Lock()
	r.closed = true
	r.onFail = onFail
	r.mu.Unlock()
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// TestCommandOutput follows one output pipe of a command through its
// life: to the channel, then to the console once detached, or nowhere if
// the host went away, and the copy ends, closing the pipe, when the last
// writer closes it.
func TestCommandOutput(t *testing.T) {
	tests := []struct {
		name string
		// then ends the channel's part.
		then        func(o *commandOutput, ch *recorder)
		wantConsole string
	}{
		{"detached", func(o *commandOutput, ch *recorder) { o.detach() }, "[bg: x] late\n[bg: x] partial\n"},
		// A write in flight when the command's exit was reported and
		// the channel closed.
		{"channel closed by the exit", func(o *commandOutput, ch *recorder) { ch.close(o.detach) }, "[bg: x] late\n[bg: x] partial\n"},
		{"host gone", func(o *commandOutput, ch *recorder) { ch.close(nil) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ch := &recorder{}
			var out bytes.Buffer
			var outMu sync.Mutex
			c := &console{w: writerFunc(func(p []byte) (int, error) {
				outMu.Lock()
				defer outMu.Unlock()
				return out.Write(p)
			})}
			consoleText := func() string {
				outMu.Lock()
				defer outMu.Unlock()
				return out.String()
			}
			o := newCommandOutput(r, ch, c, "[bg: x] ")
			done := make(chan struct{})
			go func() { o.copy(); close(done) }()

			io.WriteString(w, "to host\n")
			waitFor(t, func() bool { return ch.String() == "to host\n" }, "the channel to get the first line")
			tt.then(o, ch)
			io.WriteString(w, "late\npartial")
			w.Close()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("copy still running 5s after the last writer closed the pipe")
			}
			if got := consoleText(); got != tt.wantConsole {
				t.Errorf("got console %q, want %q", got, tt.wantConsole)
			}
			if got := ch.String(); got != "to host\n" {
				t.Errorf("got channel %q, want only the line before the hand-over", got)
			}
			if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
				t.Errorf("read of the pipe after the copy: got %v, want %v (the copy closes it)", err, os.ErrClosed)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBgPrefix(t *testing.T) {
	tests := []struct{ script, want string }{
		{"daemon >&2 &", "[bg: daemon >&2 &] "},
		{"", "[bg: sh] "},
		{"a\n  b", "[bg: a b] "},
		{strings.Repeat("é", 50), "[bg: " + strings.Repeat("é", 39) + "…] "},
	}
	for _, tt := range tests {
		if got := bgPrefix(tt.script); got != tt.want {
			t.Errorf("bgPrefix(%q): got %q, want %q", tt.script, got, tt.want)
		}
	}
}
