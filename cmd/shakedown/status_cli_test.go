package main

import (
	"io"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// TestRunStatusLine runs a scenario in a pseudo-terminal: the live line
// shows the boot and is cleared before the log line that follows it; with
// CI=true there is none.
func TestRunStatusLine(t *testing.T) {
	testenv.NeedVM(t)
	for _, tc := range []struct {
		name string
		env  []string
		live bool
	}{
		{"terminal", nil, true},
		{"terminal in CI", []string{"CI=true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := command(t, t.TempDir(), "run", "-v", scenarioFile(t, webScenario))
			cmd.Env = append(cmd.Env, tc.env...)
			ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
			if err != nil {
				t.Fatal(err)
			}
			defer ptmx.Close()
			var screen strings.Builder
			copied := make(chan struct{})
			go func() { io.Copy(&screen, ptmx); close(copied) }()
			if err := cmd.Wait(); err != nil {
				t.Errorf("shakedown run: %v", err)
			}
			<-copied
			got := screen.String()
			if !strings.Contains(got, "PASS ") {
				t.Errorf("got no PASS in:\n%q", got)
			}
			if !tc.live {
				if strings.Contains(got, clearLine) {
					t.Errorf("got a status line with CI=true:\n%q", got)
				}
				return
			}
			for _, want := range []string{
				clearLine + "web: booting (",
				// The line is cleared before the log goes on.
				clearLine + "    web: up in ",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("output lacks %q:\n%q", want, got)
				}
			}
		})
	}
}
