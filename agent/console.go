package agent

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// maxLine bounds a line held in memory while it is cut from a stream: a
// longer one is written in pieces of this size, so that a program printing
// without newlines cannot grow the agent.
const maxLine = 8 << 10

// console puts whole prefixed lines from many sources (services, commands'
// background jobs) on one writer, the machine's console, one line per
// Write so that lines of different sources never interleave.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

// writeLine writes prefix, line and a newline in one Write. Errors are
// dropped: there is nowhere else to report them.
func (c *console) writeLine(prefix string, line []byte) {
	b := make([]byte, 0, len(prefix)+len(line)+1)
	b = append(append(append(b, prefix...), line...), '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write(b)
}

// lineSplitter cuts a stream into lines for onLine: at each newline (not
// passed on), and every maxLine bytes of a line without one. onLine must
// copy the line to keep it. A lineSplitter is not safe for concurrent use.
type lineSplitter struct {
	onLine  func(line []byte)
	partial []byte
}

// Write never fails.
func (l *lineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		end := i
		if i < 0 {
			end = len(p)
		}
		if room := maxLine - len(l.partial); end > room {
			l.partial = append(l.partial, p[:room]...)
			p = p[room:]
			l.flush()
			continue
		}
		l.partial = append(l.partial, p[:end]...)
		if i < 0 {
			break
		}
		p = p[i+1:]
		l.flush()
	}
	return n, nil
}

// Close passes on a last line that has no newline.
func (l *lineSplitter) Close() error {
	if len(l.partial) > 0 {
		l.flush()
	}
	return nil
}

func (l *lineSplitter) flush() {
	l.onLine(l.partial)
	l.partial = l.partial[:0]
}

// copyAll reads r until EOF or an error and writes what it read to w,
// ignoring w's errors: whoever writes to r must never see a reader that
// stopped (it would die of SIGPIPE, or block on a full pipe).
func copyAll(w io.Writer, r io.Reader) {
	var b [4 << 10]byte
	for {
		n, err := r.Read(b[:])
		if n > 0 {
			w.Write(b[:n])
		}
		if err != nil {
			return
		}
	}
}

// bgPrefix marks the console lines of a command's background jobs with the
// command, shortened to keep the lines readable.
func bgPrefix(script string) string {
	const maxShown = 40
	s := strings.Join(strings.Fields(script), " ")
	if s == "" {
		s = "sh"
	}
	if r := []rune(s); len(r) > maxShown {
		s = string(r[:maxShown-1]) + "…"
	}
	return "[bg: " + s + "] "
}
