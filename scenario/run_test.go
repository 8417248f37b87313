package scenario

import (
	"bytes"
	"strings"
	"testing"
)

// These runs call no verb, so they make no testbed and need no QEMU.

func TestRunWithoutStepsFails(t *testing.T) {
	sc, err := load(t, "idle", "web = machine(\"web\")\ndef test():\n    log(\"thinking about it\")\n")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out}})
	if res.Passed() {
		t.Fatal("passed, want a failure for running no steps")
	}
	if got, want := res.Summary(), "testdata/idle.star:1:1: scenario ran no steps"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want it to start with %q", got, want)
	}
	if res.Steps != 0 || res.OutputDir != "" {
		t.Errorf("got %d steps and output dir %q, want 0 and none", res.Steps, res.OutputDir)
	}
	if !strings.Contains(out.String(), "  thinking about it\n") {
		t.Errorf("log lacks the scenario's log() line:\n%s", out.String())
	}
}

func TestRunRecordsFailingSubtest(t *testing.T) {
	sc, err := load(t, "sub", `web = machine("web")

def check(x):
    if x > 1:
        fail("x is %d" % x)

def test():
    subtest("first", lambda: check(1))
    def outer():
        subtest("inner", lambda: check(2))
    subtest("outer", outer)
    subtest("never", lambda: check(0))
    web.succeed("true")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out}})
	if res.Passed() {
		t.Fatal("passed, want a failure")
	}
	var names []string
	for _, c := range res.Cases {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, ","), TopLevel+",first,outer,outer/inner"; got != want {
		t.Errorf("got cases %s, want %s", got, want)
	}
	failing := res.Cases[3]
	if failing.Err == nil {
		t.Fatal("outer/inner: no failure recorded")
	}
	e := failing.Err.(*Error)
	if got, want := e.Summary(), "testdata/sub.star:5:13: fail: x is 2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := strings.Join(e.Trace, "|"), "testdata/sub.star:10:39: in lambda|testdata/sub.star:10:16: in outer|testdata/sub.star:11:12: in test"; got != want {
		t.Errorf("got trace %q, want %q", got, want)
	}
	for _, i := range []int{0, 1, 2} {
		if res.Cases[i].Err != nil {
			t.Errorf("case %s: got failure %v, want it on outer/inner only", res.Cases[i].Name, res.Cases[i].Err)
		}
	}
	for _, want := range []string{"subtest: first\n", "(finished: subtest: first, in ", "  subtest: inner\n", "(failed: subtest: outer, after "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("log has colour escapes without Log.Color")
	}

	var b bytes.Buffer
	if err := WriteJUnit(&b, []*Result{res}); err != nil {
		t.Fatal(err)
	}
	s := parseJUnit(t, b.Bytes()).Suites[0]
	if s.Failures != 1 || s.Cases[3].Name != "outer/inner" || s.Cases[3].Failure == nil {
		t.Fatalf("got suite %+v, want one failure, on outer/inner", s)
	}
	if !strings.HasPrefix(s.Cases[3].Failure.Message, "testdata/sub.star:5:13: ") {
		t.Errorf("got failure message %q, want the scenario position first", s.Cases[3].Failure.Message)
	}
}

func TestLogColour(t *testing.T) {
	var out bytes.Buffer
	l := &Log{W: &out, Color: true}
	end := l.Section("subtest: x")
	l.Printf("inside\nand more")
	end(nil)
	got := out.String()
	for _, want := range []string{bold + "subtest: x" + reset, "  inside\n  and more\n", dim + "(finished: subtest: x, in "} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}
