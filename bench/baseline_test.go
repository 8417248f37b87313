package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// baselineTools are the host programs run.sh needs besides QEMU, with the
// Debian packages that provide them.
var baselineTools = []struct{ name, pkg string }{
	{"bash", "bash"},
	{"cpio", "cpio"},
	{"gzip", "gzip"},
	{"go", "golang-go (or Go from go.dev)"},
}

// needTool fails (in CI) or skips (elsewhere) when a program the baseline
// needs is missing, naming its package.
func needTool(b testing.TB, name, pkg string) {
	b.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	msg := fmt.Sprintf("%s not found: the shell-backdoor baseline needs it (apt-get install %s)", name, pkg)
	if testenv.InCI() {
		b.Fatalf("%s; CI=true, so this fails instead of skipping", msg)
	}
	b.Skip(msg)
}

// tcgShim is a qemu-system-x86_64 that runs the real one (%s) with
// accel=kvm:tcg turned into accel=tcg and every other argument untouched.
const tcgShim = `#!/usr/bin/env bash
# Written by shakedown's bench package: the baseline's host asks for
# accel=kvm:tcg, and shakedown runs under TCG on this host, so the baseline
# must too for the figures to compare.
args=()
for a in "$@"; do args+=("${a//accel=kvm:tcg/accel=tcg}"); done
exec %s "${args[@]}"
`

// writeTCGShim writes tcgShim as dir/qemu-system-x86_64, exec'ing real
// (an absolute path: the shim's own directory comes first on PATH).
func writeTCGShim(dir, real string) error {
	if !filepath.IsAbs(real) {
		return fmt.Errorf("tcg shim: real qemu %q is not an absolute path", real)
	}
	p := filepath.Join(dir, qemuBinary)
	if err := os.WriteFile(p, []byte(fmt.Sprintf(tcgShim, shellQuote(real))), 0o755); err != nil {
		return fmt.Errorf("tcg shim: %w", err)
	}
	return nil
}

// shellQuote quotes s as one word for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// baselineWaitDelay bounds how long the run waits for its output pipes
// after run.sh is gone or killed: a grandchild that kept them open is
// killed with the process group before then.
const baselineWaitDelay = 10 * time.Second

// runBaseline runs script with env and returns its output (stdout and
// stderr together). run.sh, its host program and the QEMU that starts form
// one process group of their own, which is killed whole on timeout or
// failure, so no QEMU of the baseline outlives the call.
func runBaseline(script string, env []string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout,
		fmt.Errorf("not finished within %v (baselineTimeout)", timeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If this process dies, run.sh goes with it; its host program
		// kills its QEMU the same way when run.sh's group is killed.
		Pdeathsig: syscall.SIGKILL,
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = baselineWaitDelay
	err := cmd.Run()
	if err == nil {
		return out.String(), nil
	}
	if cmd.Process != nil {
		// On failure the host program may have left its QEMU running
		// (it panics on a lost connection before killing it).
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return out.String(), fmt.Errorf("baseline %s: %w; its last output:\n%s", script, err, lastLines(out.String(), baselineTailLines))
}

// baselineTailLines is how much of a failed run's output goes into the
// error: enough for a Go panic's head or a build error.
const baselineTailLines = 20

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// baselineFigures are the figures run.sh prints on its last line.
type baselineFigures struct {
	line                string
	bootS               float64
	p50ms, p90ms, minMs float64
	samples             int
}

var baselineLineRE = regexp.MustCompile(`boot_to_shell_s=([0-9.]+) cmd_rtt_ms p50=([0-9.]+) p90=([0-9.]+) min=([0-9.]+) n=([0-9]+)`)

// parseBaseline finds run.sh's figures line, e.g.
// "boot_to_shell_s=6.43 cmd_rtt_ms p50=19.59 p90=24.32 min=16.11 n=200",
// in its output.
func parseBaseline(out string) (baselineFigures, error) {
	m := baselineLineRE.FindStringSubmatch(out)
	if m == nil {
		return baselineFigures{}, fmt.Errorf("baseline output has no line like %q; it was:\n%s",
			"boot_to_shell_s=S cmd_rtt_ms p50=MS p90=MS min=MS n=N", lastLines(out, baselineTailLines))
	}
	f := baselineFigures{line: m[0]}
	for i, dst := range []*float64{&f.bootS, &f.p50ms, &f.p90ms, &f.minMs} {
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return baselineFigures{}, fmt.Errorf("baseline figures %q: %w", m[0], err)
		}
		*dst = v
	}
	n, err := strconv.Atoi(m[5])
	if err != nil {
		return baselineFigures{}, fmt.Errorf("baseline figures %q: %w", m[0], err)
	}
	f.samples = n
	return f, nil
}

func TestParseBaseline(t *testing.T) {
	out := "go: downloading golang.org/x/sys v0.38.0\nboot_to_shell_s=6.43 cmd_rtt_ms p50=19.59 p90=24.32 min=16.11 n=200\n"
	got, err := parseBaseline(out)
	if err != nil {
		t.Fatalf("parseBaseline: %v", err)
	}
	want := baselineFigures{line: strings.Split(out, "\n")[1], bootS: 6.43, p50ms: 19.59, p90ms: 24.32, minMs: 16.11, samples: 200}
	if got != want {
		t.Errorf("parseBaseline = %+v, want %+v", got, want)
	}
	if _, err := parseBaseline("unexpected aGVsbG8K 1\n"); err == nil || !strings.Contains(err.Error(), "unexpected aGVsbG8K 1") {
		t.Errorf("parseBaseline of a failed run: error %v, want one quoting the output", err)
	}
}

// TestTCGShim runs the shim in front of a fake QEMU that prints its
// arguments, one per line.
func TestTCGShim(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "it's qemu")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nfor a; do echo \"[$a]\"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	shimDir := filepath.Join(dir, "shim")
	if err := os.Mkdir(shimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeTCGShim(shimDir, fake); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(filepath.Join(shimDir, qemuBinary),
		"-machine", "q35,accel=kvm:tcg", "-append", "console=ttyS0 quiet", "").Output()
	if err != nil {
		t.Fatalf("shim: %v", err)
	}
	want := "[-machine]\n[q35,accel=tcg]\n[-append]\n[console=ttyS0 quiet]\n[]\n"
	if string(got) != want {
		t.Errorf("shim passed\n%s\nwant\n%s", got, want)
	}
	if err := writeTCGShim(shimDir, "qemu-system-x86_64"); err == nil {
		t.Errorf("writeTCGShim with a relative path: got no error, want one")
	}
}
