package shakedown_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
)

// TestBackgroundJobOutlivesCommand: a job that a command leaves running
// and that writes to the command's output (`daemon >&2 &`, how NixOS test
// scripts start servers) must outlive the command's return, and what it
// writes then must reach the machine's console log, marked as a background
// job's. The agent once closed the output pipes when the command returned,
// and the job died of SIGPIPE on its first line.
func TestBackgroundJobOutlivesCommand(t *testing.T) {
	tb := newTestbed(t)
	m := tb.Machine("bg", shakedown.MachineConfig{})
	tests := []struct {
		cmd, file string
		line      *regexp.Regexp
	}{
		{"(sleep 1; echo late >&2; touch /tmp/after) >&2 &", "/tmp/after", regexp.MustCompile(`\[bg: \(sleep 1; echo late >&2; [^\]]*\] late\r?\n`)},
		{"(sleep 1; echo late-out; touch /tmp/after-out) &", "/tmp/after-out", regexp.MustCompile(`\[bg: \(sleep 1; echo late-out; [^\]]*\] late-out\r?\n`)},
	}
	m.Start()
	for _, tt := range tests {
		// The command returns at once, its job's line comes a second
		// later: not in the command's output.
		if out := m.Succeed(tt.cmd); out != "" {
			t.Errorf("%s: got stdout %q, want none", tt.cmd, out)
		}
	}
	// The jobs write a second after they start: the waits need not be
	// long, and a job that died fails the test soon.
	quick := m.WithTimeout(30 * time.Second)
	for _, tt := range tests {
		quick.WaitForFile(tt.file)
		quick.WaitForConsoleText(tt.line.String())
	}
	// The console log file is what a person reads after a failure.
	log, err := os.ReadFile(filepath.Join(tb.OutputDir(), "bg.console.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if !tt.line.Match(log) {
			t.Errorf("bg.console.log: no line matching %q", tt.line)
		}
	}
}
