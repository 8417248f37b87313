package qemu

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
)

// consoleMemory bounds how much console output a Console keeps in memory
// for searching; the log file (if any) keeps everything.
const consoleMemory = 8 << 20

// Console records a machine's serial console: every byte goes to the log
// writer, every complete line to OnLine, and the text stays searchable.
// It outlives QEMU processes, so a machine that reboots keeps one Console;
// Boot marks where each boot's output starts.
type Console struct {
	log    io.Writer
	onLine func(string)

	mu      sync.Mutex
	text    []byte // output since the last trim
	trimmed int    // bytes dropped from the front of text
	partial []byte // the unfinished last line
	boot    int    // offset where the current boot started
	changed chan struct{}
}

// NewConsole returns a Console that copies to log (may be nil) and calls
// onLine (may be nil) for each complete line, without its newline and
// carriage returns.
func NewConsole(log io.Writer, onLine func(line string)) *Console {
	return &Console{log: log, onLine: onLine, changed: make(chan struct{})}
}

// Boot marks the start of a new boot: waits look at output from here on.
func (c *Console) Boot() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.boot = c.trimmed + len(c.text)
}

// Consume copies r into the console until r ends; a QEMU's console socket
// ends when QEMU exits. Run it on its own goroutine, once per process.
func (c *Console) Consume(r io.Reader) {
	buf := make([]byte, 16<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.Write(buf[:n])
		}
		if err != nil {
			c.flush()
			return
		}
	}
}

// Write adds output, as if it came from the console.
func (c *Console) Write(p []byte) (int, error) {
	if c.log != nil {
		c.log.Write(p)
	}
	var lines []string
	c.mu.Lock()
	c.text = append(c.text, p...)
	if len(c.text) > consoleMemory {
		drop := len(c.text) - consoleMemory/2
		c.text = append([]byte(nil), c.text[drop:]...)
		c.trimmed += drop
	}
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, cleanLine(c.partial[:i]))
		c.partial = c.partial[i+1:]
	}
	c.partial = append([]byte(nil), c.partial...)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if c.onLine != nil {
		for _, l := range lines {
			c.onLine(l)
		}
	}
	return len(p), nil
}

func (c *Console) flush() {
	c.mu.Lock()
	rest := c.partial
	c.partial = nil
	c.mu.Unlock()
	if len(rest) > 0 && c.onLine != nil {
		c.onLine(cleanLine(rest))
	}
}

func cleanLine(b []byte) string {
	return strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), " ")
}

// Wait blocks until re matches the output of the current boot, and returns
// the matching text, or until ctx ends.
func (c *Console) Wait(ctx context.Context, re *regexp.Regexp) (string, error) {
	for {
		c.mu.Lock()
		from := c.boot - c.trimmed
		if from < 0 {
			from = 0
		}
		m := re.Find(c.text[from:])
		changed := c.changed
		c.mu.Unlock()
		if m != nil {
			return string(m), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// Text returns the output of the current boot that is still in memory.
func (c *Console) Text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := c.boot - c.trimmed
	if from < 0 {
		from = 0
	}
	return string(c.text[from:])
}

// Tail returns the last n lines of all output, for error messages.
func (c *Console) Tail(n int) []string {
	c.mu.Lock()
	text := string(c.text)
	c.mu.Unlock()
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

// panicRE finds the kernel's last words; the lines before it say why.
var panicRE = regexp.MustCompile(`Kernel panic - not syncing:[^\n]*`)

// Panic returns the kernel panic of the current boot with the few lines
// before it, or "" when the kernel has not panicked.
func (c *Console) Panic() string {
	text := strings.ReplaceAll(c.Text(), "\r", "")
	loc := panicRE.FindStringIndex(text)
	if loc == nil {
		return ""
	}
	before := strings.Split(text[:loc[0]], "\n")
	if len(before) > 6 {
		before = before[len(before)-6:]
	}
	return strings.TrimSpace(strings.Join(before, "\n") + text[loc[0]:loc[1]])
}
