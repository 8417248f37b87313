package scenario

import (
	"fmt"
	"strings"
)

// runT is the shakedown.T of a scenario run. Fatalf panics with fatal,
// which the builtin that issued the step recovers and returns to Starlark
// as an error, so a failing verb ends the scenario like any Starlark error
// and reports the scenario line. Cleanups run when the run ends.
type runT struct {
	name     string
	log      *Log
	failed   bool
	cleanups []func()
}

// fatal is the panic value of runT.Fatalf.
type fatal struct{ msg string }

func (t *runT) Helper()                         {}
func (t *runT) Name() string                    { return t.name }
func (t *runT) Failed() bool                    { return t.failed }
func (t *runT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *runT) Logf(format string, args ...any) { t.log.Printf(format, args...) }

func (t *runT) Fatalf(format string, args ...any) {
	t.failed = true
	panic(fatal{fmt.Sprintf(format, args...)})
}

// catch runs f and returns the message of a Fatalf inside it.
func catch(f func()) (msg string, failed bool) {
	defer func() {
		if p := recover(); p != nil {
			ft, ok := p.(fatal)
			if !ok {
				panic(p)
			}
			msg, failed = ft.msg, true
		}
	}()
	f()
	return "", false
}

// cleanup runs the cleanups in reverse order, as go test does; a Fatalf
// in one is logged and does not stop the others.
func (t *runT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		if msg, failed := catch(t.cleanups[i]); failed {
			t.log.Printf("cleanup: %s", msg)
		}
	}
	t.cleanups = nil
}

// machineMsg strips the "name: " with which verbs begin their failures,
// since the step's name already says which machine it was.
func machineMsg(machine, msg string) string {
	return strings.TrimPrefix(msg, machine+": ")
}
