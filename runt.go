package shakedown

import (
	"fmt"
	"sync"
)

// RunT is the T of a front end that runs a testbed outside go test (the
// CLI, a scenario, a script runner). Logs go to Log; cleanups run, last
// registered first, when Close is called; Fail marks the run failed, so
// that the testbed keeps its artifacts.
//
// Front ends call the E forms of verbs, which return errors, so nothing
// calls Fatalf; should a failing verb be called by mistake, Fatalf marks
// the run failed and panics with a message that says so.
type RunT struct {
	// RunName is the name of the run (a scenario's file name): the run
	// directory and the control socket's state are named after it.
	RunName string
	// Log receives each log line; nil discards them.
	Log func(line string)

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

// Helper does nothing: there is no call stack to trim.
func (t *RunT) Helper() {}

// Name returns RunName.
func (t *RunT) Name() string { return t.RunName }

// Logf formats a line for Log.
func (t *RunT) Logf(format string, args ...any) {
	if t.Log != nil {
		t.Log(fmt.Sprintf(format, args...))
	}
}

// Fatalf marks the run failed and panics: see RunT.
func (t *RunT) Fatalf(format string, args ...any) {
	t.Fail()
	panic(fmt.Sprintf("shakedown: a failing verb was called through RunT (front ends call the E forms): "+format, args...))
}

// Fail marks the run failed.
func (t *RunT) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

// Failed reports whether Fail was called.
func (t *RunT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

// Cleanup registers f to run at Close.
func (t *RunT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// Close runs the cleanups in reverse order, as go test does, once.
func (t *RunT) Close() {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}
