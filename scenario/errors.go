package scenario

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Error is a scenario failure tied, where possible, to the line of the
// scenario that caused it: a syntax error, a Starlark error, or a step that
// failed.
type Error struct {
	// Pos is where in the scenario it happened; zero when nowhere.
	Pos syntax.Position
	// Msg is the first line of the message: what failed.
	Msg string
	// Detail is the rest: command output, the machine's last console
	// lines.
	Detail string
	// Trace lists the callers of Pos, innermost first, as "pos: in name".
	Trace []string
}

// Summary is the error's first line, with its position.
func (e *Error) Summary() string {
	if e.Pos.IsValid() {
		return e.Pos.String() + ": " + e.Msg
	}
	return e.Msg
}

// Error returns the summary, the callers and the detail, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Summary())
	for _, t := range e.Trace {
		b.WriteString("\n  called from ")
		b.WriteString(t)
	}
	if e.Detail != "" {
		b.WriteString("\n")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// builtinFile is the file name Starlark gives the frames of Go builtins.
const builtinFile = "<builtin>"

// stepError is what a failing verb returns to Starlark: the builtin's name
// and the verb's failure message.
type stepError struct {
	verb string
	msg  string
	err  error // the verb's, for errors.Is; not in the message
}

func (e *stepError) Error() string { return e.verb + ": " + e.msg }

// asError turns what Starlark returned into an *Error with the scenario
// line: the innermost frame in the scenario file, not in a Go builtin, is
// the line that issued the failing call.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se syntax.Error
	var rl resolve.ErrorList
	var ev *starlark.EvalError
	switch {
	case errors.As(err, &se):
		return &Error{Pos: se.Pos, Msg: se.Msg}
	case errors.As(err, &rl):
		e := &Error{Pos: rl[0].Pos, Msg: rl[0].Msg}
		var more []string
		for _, r := range rl[1:] {
			more = append(more, r.Error())
		}
		e.Detail = strings.Join(more, "\n")
		return e
	case errors.As(err, &ev):
		msg := ev.Msg
		var step *stepError
		if errors.As(err, &step) {
			msg = step.Error()
		}
		e := split(msg)
		inner := true
		for i := len(ev.CallStack) - 1; i >= 0; i-- {
			fr := ev.CallStack[i]
			if fr.Pos.Filename() == builtinFile {
				continue
			}
			if inner {
				e.Pos, inner = fr.Pos, false
				continue
			}
			e.Trace = append(e.Trace, fmt.Sprintf("%s: in %s", fr.Pos, fr.Name))
		}
		return e
	}
	return split(err.Error())
}

// split makes an Error of a message whose first line is the summary.
func split(msg string) *Error {
	first, rest, _ := strings.Cut(msg, "\n")
	return &Error{Msg: first, Detail: rest}
}
