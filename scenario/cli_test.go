package scenario_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// These tests run the shakedown command itself, built once per test
// binary, so that they cover `shakedown run` as a user types it: flags,
// output, exit status and the JUnit file.

var cli struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cli.dir != "" {
		os.RemoveAll(cli.dir)
	}
	os.Exit(code)
}

func shakedownCLI(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: cannot build cmd/shakedown")
	}
	cli.once.Do(func() {
		if cli.dir, cli.err = os.MkdirTemp("", "shakedown-cli-"); cli.err != nil {
			return
		}
		cli.path = filepath.Join(cli.dir, "shakedown")
		out, err := exec.Command(goTool, "build", "-o", cli.path, "github.com/shakedown-dev/shakedown/cmd/shakedown").CombinedOutput()
		if err != nil {
			cli.err = fmt.Errorf("go build cmd/shakedown: %v\n%s", err, out)
		}
	})
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	return cli.path
}

// runCLI runs `shakedown args...` with env added to the environment and
// returns its combined output and exit status.
func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(shakedownCLI(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("shakedown %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), 0
}

// notCI gives the output a person sees, whatever the test's environment.
var notCI = []string{"CI="}

func TestCLIReportsBadScenarios(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const web = "web = machine(\"web\")\n"
	tests := []struct {
		name, src string
		want      string // after the file's path
	}{
		{"syntax.star", web + "def test(:\n", ":2:11: got ':', want ')'"},
		{"verb.star", web + "def test():\n    web.succed(\"true\")\n", ":3:9: machine web has no verb .succed (did you mean .succeed?)"},
		{"type.star", web + "web.wait_for_open_port(\"80\")\n", ":2:23: web.wait_for_open_port: for parameter port: got string, want int"},
		{"file.star", "web = machine(\"web\", files = {\"/srv/index.html\": \"index.html\"})\nweb.start()\n", ":1:14: machine web: files: /srv/index.html: host file: stat "},
		{"missing.star", "", ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if tt.src != "" {
				write(tt.name, tt.src)
			}
			out, code := runCLI(t, notCI, "run", p)
			if code != 1 {
				t.Errorf("got exit status %d, want 1", code)
			}
			if !strings.Contains(out, "FAIL "+p+" (not loaded)") || !strings.Contains(out, p+tt.want) {
				t.Errorf("output lacks FAIL and %q:\n%s", p+tt.want, out)
			}
			if strings.Contains(out, "scenario: "+p+"\n") {
				t.Errorf("a scenario that does not load started running:\n%s", out)
			}
		})
	}
}

// TestCLIWebIsLoopbackOnly: the page serves machines without a password,
// so neither shakedown web nor run --web listens beyond loopback.
func TestCLIWebIsLoopbackOnly(t *testing.T) {
	for _, args := range [][]string{
		{"web", "--addr", "0.0.0.0:7778"},
		{"run", "--web", "--web-addr", ":0", "../examples/service.star"},
	} {
		out, code := runCLI(t, notCI, args...)
		if code != 1 || !strings.Contains(out, "is not loopback") || strings.Contains(out, "scenario:") {
			t.Errorf("shakedown %v: exit %d:\n%s", args, code, out)
		}
	}
}

func TestCLIListAndShard(t *testing.T) {
	files := []string{"../examples/service.star", "../examples/lifecycle.star", "testdata/fail.star"}
	out, code := runCLI(t, notCI, append([]string{"run", "--list"}, files...)...)
	if code != 0 {
		t.Fatalf("got exit status %d, want 0:\n%s", code, out)
	}
	for _, want := range []string{
		"../examples/service.star (test())\n  web              256 MiB, 1 CPU, 1 file(s)\n",
		"../examples/lifecycle.star (top-level steps)\n  box ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	// Sorted: ../examples/lifecycle.star, ../examples/service.star,
	// testdata/fail.star; shard 2/2 holds the second.
	out, code = runCLI(t, notCI, append([]string{"run", "--list", "--shard", "2/2"}, files...)...)
	if code != 0 || strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]) != "../examples/service.star (test())" || strings.Count(out, ".star") != 1 {
		t.Errorf("shard 2/2: got status %d and\n%s\nwant only ../examples/service.star", code, out)
	}
	if out, code = runCLI(t, notCI, "run", "--shard", "3/2", files[0]); code != 1 || !strings.Contains(out, "want K/N with 1 <= K <= N") {
		t.Errorf("shard 3/2: got status %d and %q, want 1 and an explanation", code, out)
	}
}

// junitReport is the JUnit shape CI systems read.
type junitReport struct {
	Suites []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junitReport {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("JUnit report: %v", err)
	}
	var r junitReport
	if err := xml.Unmarshal(data, &r); err != nil {
		t.Fatalf("JUnit report does not parse: %v\n%s", err, data)
	}
	if len(r.Suites) != 1 {
		t.Fatalf("got %d test suites, want 1:\n%s", len(r.Suites), data)
	}
	return r
}

func TestCLIRunsServiceExample(t *testing.T) {
	testenv.NeedVM(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "junit.xml")
	out, code := runCLI(t, notCI, "run", "--timeout", "5m", "--out", dir, "--junit", report, "../examples/service.star")
	if code != 0 {
		t.Fatalf("got exit status %d, want 0:\n%s", code, out)
	}
	for _, want := range []string{
		"scenario: ../examples/service.star\n",
		"  subtest: httpd serves /srv\n",
		`    web: succeed "wget -qO- http://127.0.0.1/"`,
		"(finished: subtest: httpd stops, in ",
		"PASS ../examples/service.star (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[2K") {
		t.Errorf("output to a pipe has a live status line:\n%q", out)
	}
	s := readJUnit(t, report).Suites[0]
	if s.Name != "../examples/service.star" || s.Tests != 4 || s.Failures != 0 {
		t.Errorf("got suite %q with %d tests and %d failures, want ../examples/service.star, 4, 0", s.Name, s.Tests, s.Failures)
	}
}

func TestCLIFailingScenario(t *testing.T) {
	testenv.NeedVM(t)
	const path = "testdata/fail.star"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The failing step's position: the line of the subtest that fails
	// and the column of the call's parenthesis, as Starlark reports calls.
	var pos string
	for i, line := range strings.Split(string(src), "\n") {
		if strings.Contains(line, `"fails on purpose"`) {
			pos = fmt.Sprintf("%s:%d:%d", path, i+1, strings.Index(line, "web.succeed(")+len("web.succeed("))
		}
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "junit.xml")
	// CI=true: quiet, but a failed scenario's whole log is printed.
	out, code := runCLI(t, []string{"CI=true"}, "run", "--web", "--timeout", "5m", "--out", dir, "--junit", report, path)
	if code != 1 {
		t.Fatalf("got exit status %d, want 1:\n%s", code, out)
	}
	wantErr := pos + `: web.succeed: command "echo about to fail; test -e /nonexistent" failed with status 1`
	for _, want := range []string{
		wantErr,
		"FAIL " + path + " (",
		"subtest: fails on purpose",
		"about to fail",
		"last console lines of web:",
		"artifacts kept in " + dir,
		"shakedown web: open http://127.0.0.1:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The summary names the report, which names the failing step.
	_, after, _ := strings.Cut(out, "  report: ")
	html, err := os.ReadFile(strings.TrimSpace(strings.SplitN(after, "\n", 2)[0]))
	if err != nil || !strings.Contains(string(html), "echo about to fail; test -e /nonexistent") {
		t.Errorf("report: %v", err)
	}
	if strings.Contains(out, "subtest: never runs") {
		t.Errorf("the subtest after the failure ran:\n%s", out)
	}
	s := readJUnit(t, report).Suites[0]
	if s.Tests != 3 || s.Failures != 1 {
		t.Fatalf("got %d tests and %d failures, want 3 (top level, boots, fails on purpose) and 1", s.Tests, s.Failures)
	}
	for _, c := range s.Cases {
		if (c.Failure != nil) != (c.Name == "fails on purpose") {
			t.Errorf("case %q: got failure %v, want one only on \"fails on purpose\"", c.Name, c.Failure)
		}
		if c.Failure == nil {
			continue
		}
		if c.Failure.Message != wantErr {
			t.Errorf("got failure message %q, want %q", c.Failure.Message, wantErr)
		}
		if !strings.Contains(c.Failure.Text, "last console lines of web:") {
			t.Errorf("failure text lacks the console excerpt:\n%s", c.Failure.Text)
		}
	}
}

func TestCLIRunsRouterExample(t *testing.T) {
	testenv.NeedVM(t)
	out, code := runCLI(t, notCI, "run", "--timeout", "5m", "--out", t.TempDir(), "../examples/router.star")
	if code != 0 {
		t.Fatalf("got exit status %d, want 0:\n%s", code, out)
	}
	for _, want := range []string{
		"(finished: subtest: networks are apart without forwarding, in ",
		"(finished: subtest: a TCP request crosses the router, in ",
		"partition [client] [router server]\n",
		"left: impair client loss=100%\n",
		"PASS ../examples/router.star (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
