// Package record keeps what a testbed does as it happens: its steps with
// their times and results, its failures, what each machine is doing, and
// every machine's console lines with the time each arrived. The live web
// page reads it while the testbed runs; the HTML report renders it when
// the testbed ends. It imports only package network (for the faults it
// describes): the root package feeds it, and the front ends read its
// View, without a cycle.
package record

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Results of a testbed, in View.Result.
const (
	Running = "running"
	Passed  = "passed"
	Failed  = "failed"
)

// Machine states, in Machine.State; a build step's name while the
// machine's image is being built.
const (
	Declared = "declared"
	Booting  = "booting"
	Up       = "up"
	Stopped  = "stopped"
	Crashed  = "crashed"
)

// Steps of a boot that Progress gives a meaning to; the rest are steps of
// building the machine's image.
const (
	// StepBoot runs from QEMU's start until the agent answers.
	StepBoot = "boot"
	// StepUp is reported once, done, when the machine answers.
	StepUp = "up"
	// DownloadPrefix begins the steps of package downloads, which are
	// left out: their build step covers them.
	DownloadPrefix = "download "
)

// consoleKeep is how many console lines of each machine the record holds
// in memory for the live page and the report's excerpts; the console log
// file has them all.
const consoleKeep = 4000

// Step is one timed thing the test did: a section (a subtest, or a front
// end's step such as a scenario verb), which later steps nest in, or an
// action of the API (a command, a wait, a boot, a fault).
type Step struct {
	ID int `json:"id"`
	// Parent is the ID of the section open when the step began; 0 at
	// the top.
	Parent  int    `json:"parent,omitempty"`
	Section bool   `json:"section,omitempty"`
	Machine string `json:"machine,omitempty"`
	Title   string `json:"title"`
	// Start and End time the step; End is zero while it runs, and equal
	// to Start for an instant (a crash, a partition).
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	// Note says how it ended when that is not an error (an exit status).
	Note string `json:"note,omitempty"`
	// Err is why it failed; "" when it did not.
	Err string `json:"err,omitempty"`
}

// Running reports whether the step has not ended yet.
func (s Step) Running() bool { return s.End.IsZero() }

// Duration is the step's length, up to now while it runs.
func (s Step) Duration() time.Duration {
	if s.Running() {
		return time.Since(s.Start)
	}
	return s.End.Sub(s.Start)
}

// Failure is an error a verb returned or a test failed with.
type Failure struct {
	Time    time.Time `json:"time"`
	Machine string    `json:"machine,omitempty"`
	// Step is the innermost section open then (0: none); Action the
	// machine's last step begun by then, the verb that failed (0: none).
	Step    int    `json:"step,omitempty"`
	Action  int    `json:"action,omitempty"`
	Message string `json:"message"`
}

// Line is one console line of a machine.
type Line struct {
	Machine string    `json:"machine"`
	Seq     int64     `json:"seq"` // 1, 2, ... per machine
	Time    time.Time `json:"time"`
	Text    string    `json:"text"`
}

// Record is one testbed's record. Its methods are safe for concurrent
// use.
type Record struct {
	mu       sync.Mutex
	name     string
	started  time.Time
	ended    time.Time
	result   string
	steps    []Step
	open     []int // IDs of the open sections, innermost last
	failures []Failure
	status   map[string]string                 // machine → its state, when told
	building map[[2]string]func(error, string) // (machine, step) → its end
	consoles map[string]*ring
	changed  chan struct{} // closed and replaced on every change
	done     chan struct{} // closed by End
}

// New starts the record of the testbed named name.
func New(name string) *Record {
	return &Record{name: name, started: time.Now(), result: Running,
		status: map[string]string{}, building: map[[2]string]func(error, string){}, consoles: map[string]*ring{},
		changed: make(chan struct{}), done: make(chan struct{})}
}

// touch wakes whoever waits for a change; r.mu is held.
func (r *Record) touch() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change.
func (r *Record) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Done is closed when the testbed has ended (End).
func (r *Record) Done() <-chan struct{} { return r.done }

// Begin records the start of a step and returns the function that ends
// it, with err (nil: it worked) and a note. A section is a step that the
// steps begun before it ends nest in. Ending twice keeps the first end.
func (r *Record) Begin(machine, title string, section bool) (end func(err error, note string)) {
	r.mu.Lock()
	id := r.add(Step{Section: section, Machine: machine, Title: title, Start: time.Now()})
	if section {
		r.open = append(r.open, id)
	}
	r.mu.Unlock()
	return func(err error, note string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		s := &r.steps[id-1]
		if !s.End.IsZero() {
			return
		}
		s.End, s.Note = time.Now(), note
		if err != nil {
			s.Err = err.Error()
		}
		if i := slices.Index(r.open, id); i >= 0 {
			r.open = slices.Delete(r.open, i, i+1)
		}
		r.touch()
	}
}

// Event records an instant step, such as a crash or a partition.
func (r *Record) Event(machine, title string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.add(Step{Machine: machine, Title: title, Start: now, End: now})
}

// add records s in the innermost open section and returns its ID; r.mu
// is held.
func (r *Record) add(s Step) int {
	s.ID, s.Parent = len(r.steps)+1, r.section()
	r.steps = append(r.steps, s)
	r.touch()
	return s.ID
}

// section is the innermost open section's ID; r.mu is held.
func (r *Record) section() int {
	if len(r.open) == 0 {
		return 0
	}
	return r.open[len(r.open)-1]
}

// Fail records a failure of machine ("" for the testbed), in the
// innermost open section.
func (r *Record) Fail(machine, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := Failure{Time: time.Now(), Machine: machine, Step: r.section(), Message: message}
	for i := len(r.steps) - 1; i >= 0 && f.Action == 0; i-- {
		if s := r.steps[i]; !s.Section && (machine == "" || s.Machine == machine) {
			f.Action = s.ID
		}
	}
	r.failures = append(r.failures, f)
	r.touch()
}

// SetState records what a machine is doing: one of the machine states, or
// a build step.
func (r *Record) SetState(machine, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status[machine] != state {
		r.status[machine] = state
		r.touch()
	}
}

// Progress records a step of building a machine's image or booting it, as
// the machine's state and a timed step. Downloads and events of no
// machine are left out.
func (r *Record) Progress(machine, step string, done bool, err error) {
	if machine == "" || strings.HasPrefix(step, DownloadPrefix) {
		return
	}
	key := [2]string{machine, step}
	switch {
	case step == StepUp:
		r.SetState(machine, Up)
	case !done:
		state := Booting
		if step != StepBoot {
			state = "building image: " + step
		}
		r.SetState(machine, state)
		end := r.Begin(machine, step, false)
		r.mu.Lock()
		r.building[key] = end
		r.mu.Unlock()
	default:
		r.mu.Lock()
		end := r.building[key]
		delete(r.building, key)
		r.mu.Unlock()
		if end != nil {
			end(err, "")
		}
	}
}

// Exited records the end of a machine's boot: it died (crashed), or was
// stopped.
func (r *Record) Exited(machine string, died bool) {
	if died {
		r.SetState(machine, Crashed)
	} else {
		r.SetState(machine, Stopped)
	}
}

// Crashed records that the test cut a machine's power.
func (r *Record) Crashed(machine string) {
	r.Event(machine, "crash")
	r.SetState(machine, Crashed)
}

// State is what a machine is doing, as last told; Declared if nothing
// was.
func (r *Record) State(machine string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.status[machine]; ok {
		return s
	}
	return Declared
}

// Console records a console line of machine.
func (r *Record) Console(machine, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.consoles[machine]
	if c == nil {
		c = &ring{}
		r.consoles[machine] = c
	}
	c.add(Line{Machine: machine, Time: time.Now(), Text: text})
	r.touch()
}

// Lines returns the console lines of machine after sequence number seq
// that the record still holds, oldest first.
func (r *Record) Lines(machine string, seq int64) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.consoles[machine]; c != nil {
		return c.after(seq)
	}
	return nil
}

// Around returns the console lines of machine from before to after t.
func (r *Record) Around(machine string, t time.Time, before, after time.Duration) []Line {
	var out []Line
	for _, l := range r.Lines(machine, 0) {
		if !l.Time.Before(t.Add(-before)) && !l.Time.After(t.Add(after)) {
			out = append(out, l)
		}
	}
	return out
}

// End records the testbed's end and its result; later calls change
// nothing.
func (r *Record) End(failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.result != Running {
		return
	}
	r.ended, r.result = time.Now(), Passed
	if failed {
		r.result = Failed
	}
	for i := range r.steps {
		if r.steps[i].End.IsZero() {
			r.steps[i].End = r.ended
		}
	}
	r.open = nil
	r.touch()
	close(r.done)
}

// Fill copies the record's part of a View into v: name, times, result,
// steps, failures and each machine's state.
func (r *Record) Fill(v *View) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v.Testbed, v.Started, v.Ended, v.Result = r.name, r.started, r.ended, r.result
	v.Steps = slices.Clone(r.steps)
	v.Failures = slices.Clone(r.failures)
	for i := range v.Machines {
		m := &v.Machines[i]
		m.State = Declared
		if s, ok := r.status[m.Name]; ok {
			m.State = s
		}
		if c := r.consoles[m.Name]; c != nil {
			m.ConsoleSeq = c.seq
		}
	}
}

// ring holds a machine's last consoleKeep lines.
type ring struct {
	lines []Line
	seq   int64 // the last line's
}

func (c *ring) add(l Line) {
	c.seq++
	l.Seq = c.seq
	if len(c.lines) == consoleKeep {
		c.lines = slices.Delete(c.lines, 0, consoleKeep/4)
	}
	c.lines = append(c.lines, l)
}

func (c *ring) after(seq int64) []Line {
	i, _ := slices.BinarySearchFunc(c.lines, seq+1, func(l Line, s int64) int { return int(l.Seq - s) })
	return slices.Clone(c.lines[i:])
}
