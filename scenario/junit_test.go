package scenario

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"go.starlark.net/syntax"
)

func TestWriteJUnit(t *testing.T) {
	path := "a.star"
	failure := &Error{
		Pos:    syntax.MakePosition(&path, 7, 9),
		Msg:    `web.succeed: command "false" failed with status 1`,
		Detail: "last console lines of web:\n  web # \x1b[1mbold\x1b[0m ]]> end",
	}
	results := []*Result{
		{Path: "a.star", Duration: 3 * time.Second, Err: failure, Cases: []Case{
			{Name: TopLevel, Duration: 3 * time.Second},
			{Name: "boots", Duration: time.Second},
			{Name: "serves", Duration: time.Second, Err: failure},
		}},
		{Path: "b.star", Duration: time.Second, Cases: []Case{{Name: TopLevel, Duration: time.Second}}},
		Failed("c.star", errors.New("load scenario: open c.star: no such file or directory")),
	}
	var b bytes.Buffer
	if err := WriteJUnit(&b, results); err != nil {
		t.Fatal(err)
	}
	got := parseJUnit(t, b.Bytes())
	if got.Tests != 5 || got.Failures != 2 || len(got.Suites) != 3 {
		t.Fatalf("got %d tests, %d failures, %d suites; want 5, 2, 3", got.Tests, got.Failures, len(got.Suites))
	}
	a := got.Suites[0]
	if a.Name != "a.star" || a.Tests != 3 || a.Failures != 1 || a.Time != 3 {
		t.Errorf("got suite %q with %d tests, %d failures, %v s; want a.star, 3, 1, 3", a.Name, a.Tests, a.Failures, a.Time)
	}
	for i, want := range []string{TopLevel, "boots", "serves"} {
		if a.Cases[i].Name != want || a.Cases[i].Classname != "a.star" {
			t.Errorf("case %d: got %q (class %q), want %q (class a.star)", i, a.Cases[i].Name, a.Cases[i].Classname, want)
		}
		if (a.Cases[i].Failure != nil) != (want == "serves") {
			t.Errorf("case %q: got failure %v, want one only on serves", want, a.Cases[i].Failure)
		}
	}
	f := a.Cases[2].Failure
	if want := `a.star:7:9: web.succeed: command "false" failed with status 1`; f.Message != want {
		t.Errorf("got message %q, want %q", f.Message, want)
	}
	for _, want := range []string{"last console lines of web:", "\ufffd[1mbold\ufffd[0m", "]]> end"} {
		if !strings.Contains(f.Text, want) {
			t.Errorf("failure text %q lacks %q", f.Text, want)
		}
	}
	if c := got.Suites[2]; c.Failures != 1 || !strings.Contains(c.Cases[0].Failure.Message, "no such file") {
		t.Errorf("got load failure suite %+v, want the load error on its top level", c)
	}
}
