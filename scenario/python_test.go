package scenario

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// needPython skips where the host has no python3 (CI has it: Debian's
// python3 is part of every install that has apt's Python tools).
func needPython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(pythonBinary); err != nil {
		if testenv.InCI() {
			t.Fatal("python3 not found and CI=true: apt-get install python3")
		}
		t.Skip("python3 not found: apt-get install python3")
	}
}

// pyScenario writes a .star file declaring web and a Python script, and
// loads them.
func pyScenario(t *testing.T, script string) (*Scenario, string, error) {
	t.Helper()
	dir := t.TempDir()
	py := filepath.Join(dir, "test.py")
	os.WriteFile(py, []byte(script), 0o644)
	star := filepath.Join(dir, "nodes.star")
	os.WriteFile(star, []byte("web = machine(\"web\")\npython_test(\"test.py\")\n"), 0o644)
	sc, err := Load(star)
	return sc, py, err
}

// TestPythonLoadErrors: mistakes a script can hold fail the load, at
// their line, before anything boots.
func TestPythonLoadErrors(t *testing.T) {
	needPython(t)
	for _, tc := range []struct {
		name, script, want string
	}{
		{"syntax", "start_all()\nif True\n    pass\n", "test.py:2:8: SyntaxError: expected ':'"},
		{"verb", "start_all()\nweb.succed('true')\n", "test.py:2:1: machine web has no verb .succed (did you mean .succeed?)"},
		{"driver verb", "web.wait_for_windw('x')\n", "(did you mean .wait_for_window?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := pyScenario(t, tc.script)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("load: got %v, want %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "t.py"), []byte("start_all()\n"), 0o644)
	for _, tc := range []struct{ name, star, want string }{
		{"twice", "python_test('t.py')\npython_test('t.py')\n", "python_test: the test is " + filepath.Join(dir, "t.py") + " already"},
		{"and test()", "python_test('t.py')\ndef test():\n    pass\n", "a scenario has it or test(), not both"},
		{"missing", "python_test('nope.py')\n", "python_test: stat " + filepath.Join(dir, "nope.py")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".star")
			os.WriteFile(p, []byte("web = machine(\"web\")\n"+tc.star), 0o644)
			if _, err := Load(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("load: got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPythonFailures runs scripts that fail without booting a machine:
// each fails at its own line, with Python's message, and the subtest it
// failed in is recorded.
func TestPythonFailures(t *testing.T) {
	needPython(t)
	for _, tc := range []struct {
		name, script string
		summary      string // the result's
		log          []string
		failedCase   string
	}{
		{"raise", "import os\nlog.info('before')\nraise ValueError('boom')\n",
			"test.py:3: ValueError: boom", []string{"before", "Traceback (most recent call last):", `line 3, in <module>`}, ""},
		{"assert in a subtest", "with subtest('checks'):\n    with log.nested('inner'):\n        t.assertEqual(1, 2)\n",
			"test.py:3: AssertionError: 1 != 2", []string{"subtest: checks", "inner", "(failed: subtest: checks"}, "checks"},
		{"wrong argument", "import datetime\nweb.wait_for_file(42, timeout=datetime.timedelta(seconds=5))\n",
			"test.py:2: TypeError: web.wait_for_file: for parameter path: got int, want string", nil, ""},
		{"unknown verb at run time", "getattr(web, 'wait_for_unti')('x')\n",
			"test.py:1: AttributeError: machine web has no verb .wait_for_unti (did you mean .wait_for_unit?)", nil, ""},
		{"no steps", "x = 1 + 1\nserial_stdout_off()\nserial_stdout_on()\n",
			"scenario ran no steps", nil, ""},
		{"a graphical verb", "web.wait_for_x()\n",
			"test.py:1: ShakedownError: web.wait_for_x: unsupported operation: no graphical guest is declared", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, _, err := pyScenario(t, tc.script)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var out bytes.Buffer
			res := sc.Run(RunOptions{Log: &Log{W: &out}, Testbed: shakedown.Options{OutputDir: t.TempDir()}})
			if res.Passed() {
				t.Fatalf("passed:\n%s", out.String())
			}
			if got := res.Summary(); !strings.Contains(got, tc.summary) {
				t.Errorf("summary %q, want %q\n%s", got, tc.summary, out.String())
			}
			for _, want := range tc.log {
				if !strings.Contains(out.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, out.String())
				}
			}
			for _, c := range res.Cases {
				if (c.Err != nil) != (c.Name == tc.failedCase || c.Name == TopLevel && tc.failedCase == "") {
					t.Errorf("case %q: err %v", c.Name, c.Err)
				}
			}
		})
	}
}

// TestPythonDeadline: a script that never ends is stopped at the
// testbed's deadline, as Ctrl-C stops it, and nothing of it is left.
func TestPythonDeadline(t *testing.T) {
	needPython(t)
	sc, py, err := pyScenario(t, "import time\nlog.info('sleeping')\ntime.sleep(600)\n")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out}, Testbed: shakedown.Options{Timeout: 3 * time.Second, OutputDir: t.TempDir()}})
	if res.Passed() || !strings.Contains(res.Err.Error(), "deadline") {
		t.Errorf("result %v, want the deadline\n%s", res.Err, out.String())
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %v to stop", d)
	}
	if out, _ := exec.Command("pgrep", "-f", py).Output(); len(out) > 0 {
		t.Errorf("python still runs: %s", out)
	}
}

func TestDriverShell(t *testing.T) {
	got := driverShell(`echo "it's" | wc -c`)
	want := `command -v bash >/dev/null && exec bash -c 'set -euo pipefail; echo "it'\''s" | wc -c'; set -euo pipefail; echo "it's" | wc -c`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// It runs here as it runs in a guest.
	for _, tc := range []struct {
		cmd  string
		fail bool
	}{{"false | true", true}, {"true | true", false}, {"unset_var_x=; echo $nope", true}} {
		err := exec.Command("/bin/sh", "-c", driverShell(tc.cmd)).Run()
		if (err != nil) != tc.fail {
			t.Errorf("%q: %v, want failure %v", tc.cmd, err, tc.fail)
		}
	}
}

func TestStarlarkJSON(t *testing.T) {
	in := map[string]any{"a": []any{1.0, 2.5, "x", true, nil}, "b": map[string]any{"c": "d"}}
	sv, err := toStarlark(in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := fromStarlark(sv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{int64(1), 2.5, "x", true, nil}, "b": map[string]any{"c": "d"}}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip: %#v", back)
	}
	tuple, _ := fromStarlark(starlark.Tuple{starlark.MakeInt(0), starlark.String("out")})
	if !reflect.DeepEqual(tuple, []any{int64(0), "out"}) {
		t.Errorf("tuple: %#v", tuple)
	}
}

// TestPythonExamples runs the NixOS-style scripts under examples/python.
func TestPythonExamples(t *testing.T) {
	testenv.NeedPackages(t)
	needPython(t)
	if _, err := exec.LookPath("tesseract"); err != nil && !testenv.InCI() {
		t.Skip("tesseract not found: apt-get install tesseract-ocr")
	}
	for _, name := range []string{"service", "network", "console"} {
		t.Run(name, func(t *testing.T) {
			sc, err := Load("../examples/python/" + name + ".star")
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{Timeout: 10 * time.Minute}})
			if !res.Passed() {
				t.Fatalf("failed: %v\n%s", res.Err, out.String())
			}
			if len(res.Cases) < 3 {
				t.Errorf("%d cases, want the script's subtests", len(res.Cases))
			}
		})
	}
}

// TestRunPythonFromGo: machines declared in Go, the test in Python.
func TestRunPythonFromGo(t *testing.T) {
	testenv.NeedVM(t)
	needPython(t)
	tb := shakedown.New(t, shakedown.Options{QuietConsole: true})
	tb.Machine("web", shakedown.MachineConfig{})
	py := filepath.Join(t.TempDir(), "test.py")
	os.WriteFile(py, []byte("start_all()\nwith subtest('up'):\n    assert web.is_up()\n    t.assertEqual(web.succeed('echo hi'), 'hi\\n')\nweb.fail('false')\n"), 0o644)
	var out bytes.Buffer
	if err := RunPython(tb, py, &Log{W: &out, Steps: true}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "(finished: subtest: up, in ") {
		t.Errorf("log:\n%s", out.String())
	}
	os.WriteFile(py, []byte("web.succeed('true')\nweb.succeed('exit 4')\n"), 0o644)
	err := RunPython(tb, py, nil)
	if err == nil || !strings.Contains(err.Error(), "test.py:2: ShakedownError: web.succeed: command") {
		t.Errorf("a failing script: %v", err)
	}
}

func TestUserSystemctl(t *testing.T) {
	if got, want := userSystemctl("alice", "is-active 'foo'"), "systemctl --user --machine='alice@' is-active 'foo'"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
