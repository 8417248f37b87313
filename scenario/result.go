package scenario

import "time"

// TopLevel names the test case that stands for the steps of a scenario
// outside any subtest (its top level and test()).
const TopLevel = "(top level)"

// Result is the outcome of one scenario.
type Result struct {
	// Path is the scenario file, as given.
	Path string
	// Started and Duration time the whole run, boots and cleanup
	// included.
	Started  time.Time
	Duration time.Duration
	// Steps counts the verbs that ran.
	Steps int
	// Err is why the scenario failed (an *Error), nil when it passed.
	Err error
	// Cases are TopLevel first, then each subtest in the order it began;
	// a failure is recorded on the innermost subtest it happened in.
	Cases []Case
	// OutputDir is the testbed's artifacts directory when the scenario
	// failed (it is kept then, and removed when it passes).
	OutputDir string
}

// Passed reports whether the scenario passed.
func (r *Result) Passed() bool { return r.Err == nil }

// Case is one JUnit test case: a subtest, or the scenario's top level.
type Case struct {
	// Name is the subtest's name, with its parents' before it and "/"
	// between, as go test names subtests.
	Name     string
	Duration time.Duration
	// Err is the failure (an *Error), nil when the case passed.
	Err error
}

// Failed returns the result of a scenario that could not run at all, such
// as one that failed to load: err is recorded on its top level.
func Failed(path string, err error) *Result {
	e := asError(err)
	return &Result{Path: path, Started: time.Now(), Err: e, Cases: []Case{{Name: TopLevel, Err: e}}}
}

// Summary is the failure's first line with its scenario position, or ""
// when the scenario passed.
func (r *Result) Summary() string {
	if r.Err == nil {
		return ""
	}
	return asError(r.Err).Summary()
}
