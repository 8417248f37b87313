package scenario

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/shakedown-dev/shakedown"
)

// RunOptions configure Scenario.Run. The zero value runs with the
// testbed's defaults and prints nothing.
type RunOptions struct {
	// Testbed configures the scenario's testbed: deadline, artifacts
	// parent directory, cache, accelerator, console streaming.
	Testbed shakedown.Options
	// Log receives the run's sections and the testbed's messages.
	Log *Log
	// KeepDir, if set, receives what copy_from_vm copies and screenshot
	// saves. The testbed removes its own directory when a scenario
	// passes; files in KeepDir stay.
	KeepDir string
	// Hold, if set, is called when the scenario has ended, passed (err
	// nil) or failed, with its machines still up; they stop when it
	// returns. `shakedown run -k` waits there for the user.
	Hold func(tb *shakedown.Testbed, err error)
}

// mode is the pass a runner executes the program in.
type mode int

const (
	// loading declares machines and stops at the first step.
	loading mode = iota
	// running makes the testbed at the first step and runs everything.
	running
)

// runner executes a scenario's program once, in one mode.
type runner struct {
	sc          *Scenario
	mode        mode
	opts        RunOptions
	log         *Log
	t           *shakedown.RunT
	thread      *starlark.Thread
	predeclared starlark.StringDict
	tb          *shakedown.Testbed
	machines    []*machineValue
	byName      map[string]*machineValue
	networks    []*networkValue
	netByName   map[string]*networkValue
	hosts       []*hostValue
	hostByName  map[string]*hostValue
	steps       int
	res         *Result
	open        []int               // indexes in res.Cases of the subtests running
	recorded    bool                // the failure on its way up is recorded on a subtest
	endRecord   func(error)         // ends the scenario's step in the testbed's record
	serial      atomic.Bool         // console lines go to the log (a Python script's serial_stdout_on)
	shell       func(string) string // how commands run: nil for as given, driverShell for Python
	pythonTest  string              // python_test()'s script, once called in this pass
}

func newRunner(sc *Scenario, m mode, opts RunOptions) *runner {
	r := &runner{sc: sc, mode: m, opts: opts, log: opts.Log,
		byName: map[string]*machineValue{}, netByName: map[string]*networkValue{},
		hostByName: map[string]*hostValue{},
		res:        &Result{Path: sc.Path}}
	r.t = &shakedown.RunT{RunName: strings.TrimSuffix(filepath.Base(sc.Path), ".star"),
		Log: func(line string) {
			if r.serial.Load() || !r.isConsoleLine(line) {
				r.log.Printf("%s", line)
			}
		}}
	r.serial.Store(!opts.Testbed.QuietConsole)
	r.predeclared = starlark.StringDict{
		"machine":       starlark.NewBuiltin("machine", r.machineBuiltin),
		"start_all":     starlark.NewBuiltin("start_all", r.startAll),
		"snapshot":      starlark.NewBuiltin("snapshot", r.snapshot),
		"restore":       starlark.NewBuiltin("restore", r.restore),
		"checkpoint":    starlark.NewBuiltin("checkpoint", r.checkpoint),
		"subtest":       starlark.NewBuiltin("subtest", r.subtest),
		"log":           starlark.NewBuiltin("log", r.logBuiltin),
		"network":       starlark.NewBuiltin("network", r.networkBuiltin),
		"partition":     starlark.NewBuiltin("partition", r.partition),
		"heal":          starlark.NewBuiltin("heal", r.heal),
		"accel":         starlark.NewBuiltin("accel", r.accel),
		"output_dir":    starlark.NewBuiltin("output_dir", r.outputDir),
		"service":       starlark.NewBuiltin("service", serviceBuiltin),
		"readiness":     starlark.NewBuiltin("readiness", readinessBuiltin),
		"disk":          starlark.NewBuiltin("disk", r.diskBuiltin),
		"debian":        starlark.NewBuiltin("debian", debianBuiltin),
		"file":          starlark.NewBuiltin("file", r.fileBuiltin),
		"dns_stub":      starlark.NewBuiltin("dns_stub", r.dnsStubBuiltin),
		"ca":            starlark.NewBuiltin("ca", caBuiltin),
		"pdns_api":      starlark.NewBuiltin("pdns_api", r.pdnsAPIBuiltin),
		"dhcp_stub":     starlark.NewBuiltin("dhcp_stub", r.dhcpStubBuiltin),
		"udhcpc_script": starlark.NewBuiltin("udhcpc_script", udhcpcScriptBuiltin),
		"acme_stub":     starlark.NewBuiltin("acme_stub", r.acmeStubBuiltin),
		"web_stub":      starlark.NewBuiltin("web_stub", r.webStubBuiltin),
		"registry_stub": starlark.NewBuiltin("registry_stub", r.registryStubBuiltin),
		"python_test":   starlark.NewBuiltin("python_test", r.pythonTestBuiltin),
	}
	return r
}

func (r *runner) newThread() *starlark.Thread {
	r.thread = &starlark.Thread{
		Name: r.sc.Path,
		Print: func(_ *starlark.Thread, msg string) {
			if r.mode == running {
				r.log.Printf("%s", msg)
			}
		},
	}
	return r.thread
}

// Run runs the scenario in a fresh testbed: the top level, then test() if
// the file defines it. The testbed is made at the first step, so a
// scenario that fails before any step boots nothing. Run returns when
// every machine has stopped. A scenario that ran no step fails: passing
// without having tested anything would be a lie.
func (sc *Scenario) Run(opts RunOptions) *Result {
	r := newRunner(sc, running, opts)
	end := r.begin()
	err := r.exec()
	if err == nil && r.steps == 0 {
		err = &Error{Pos: syntax.MakePosition(&sc.Path, 1, 1),
			Msg: "scenario ran no steps: nothing was tested (call machine verbs at the top level or in test())"}
	}
	return r.finish(err, end)
}

// begin starts the result and the scenario's log section.
func (r *runner) begin() (end func(error)) {
	r.res.Started = time.Now()
	r.res.Cases = []Case{{Name: TopLevel}}
	return r.log.Section("scenario: " + r.sc.Path)
}

// finish records err, holds the machines if asked to, stops everything and
// completes the result.
func (r *runner) finish(err error, end func(error)) *Result {
	res := r.res
	if err != nil {
		r.t.Fail()
		e := asError(err)
		res.Err = e
		if !r.recorded {
			res.Cases[0].Err = e
		}
		r.log.print(red, e.Error())
	}
	if r.endRecord != nil {
		r.endRecord(res.Err)
	}
	if r.opts.Hold != nil && r.tb != nil {
		r.opts.Hold(r.tb, res.Err)
	}
	r.t.Close()
	if r.tb != nil && r.t.Failed() {
		res.OutputDir = r.tb.OutputDir()
	}
	res.Steps = r.steps
	res.Duration = time.Since(res.Started)
	res.Cases[0].Duration = res.Duration
	end(res.Err)
	return res
}

// isConsoleLine reports whether a testbed log line is a machine's console
// line ("web # ...").
func (r *runner) isConsoleLine(line string) bool {
	name, _, ok := strings.Cut(line, " # ")
	return ok && shakedown.CheckName("machine", name) == nil
}

// exec runs the top level and test().
func (r *runner) exec() error {
	thread := r.newThread()
	globals, err := r.sc.prog.Init(thread, r.predeclared)
	if err != nil {
		return err
	}
	if r.sc.Python != "" {
		return r.runPython()
	}
	fn, ok := globals["test"]
	if !ok {
		return nil
	}
	if err := checkTest(fn); err != nil {
		return err
	}
	_, err = starlark.Call(thread, fn, nil, nil)
	return err
}

// declare adds a machine; once the testbed exists it is declared there at
// once.
func (r *runner) declare(mv *machineValue) error {
	r.machines = append(r.machines, mv)
	r.byName[mv.decl.Name] = mv
	if r.tb == nil {
		return nil
	}
	m, err := r.tb.MachineE(mv.decl.Name, mv.decl.Config)
	if err != nil {
		return err
	}
	mv.m = m
	return nil
}

// testbed makes the testbed at the first step and declares the networks,
// machines and hosts known so far; its error fails the step that needed it.
func (r *runner) testbed() (*shakedown.Testbed, error) {
	if r.tb != nil {
		return r.tb, nil
	}
	opts := r.opts.Testbed
	if r.sc.Python != "" {
		// serial_stdout_on() can turn the console on later, so it
		// streams, and the log leaves it out until then.
		opts.QuietConsole = false
	}
	tb, err := shakedown.NewE(r.t, opts)
	if err != nil {
		return nil, err
	}
	r.tb = tb
	// The whole scenario is the testbed's outermost step, so that a
	// failure of the script itself (fail(), a wrong call) is on the
	// page and in the report too.
	r.endRecord = tb.Step("scenario: " + r.sc.Path)
	// Starlark code that loops without calling a verb still ends at the
	// testbed's global deadline.
	thread := r.thread
	stop := context.AfterFunc(tb.Context(), func() {
		thread.Cancel(context.Cause(tb.Context()).Error())
	})
	r.t.Cleanup(func() { stop() })
	for _, nv := range r.networks {
		if nv.n, err = tb.NetworkE(nv.name, nv.opts); err != nil {
			return nil, err
		}
	}
	for _, mv := range r.machines {
		if mv.m, err = tb.MachineE(mv.decl.Name, mv.decl.Config); err != nil {
			return nil, err
		}
	}
	// After the machines, so that a host's picked number is one no
	// machine declared so far holds.
	for _, hv := range r.hosts {
		if err := hv.bind(); err != nil {
			return nil, err
		}
	}
	// After the hosts, so that the stand-ins hold every name.
	for _, hv := range r.hosts {
		if hv.dns != nil {
			if err := hv.addTestbedRecords(); err != nil {
				return nil, err
			}
		}
	}
	return tb, nil
}

// bind makes the testbed, for what needs the Go handles without being a
// step (a machine's or host's address); in the load pass it stops the
// program there, as a step does.
func (r *runner) bind() (*shakedown.Testbed, error) {
	if r.mode == loading {
		return nil, errStepsBegin
	}
	return r.testbed()
}

// step runs one step: a verb or start_all. In the load pass it stops the
// program instead. The verb's error becomes the error Starlark sees, named
// after the builtin that issued it.
func (r *runner) step(builtin, machine, title string, do func() (starlark.Value, error)) (v starlark.Value, err error) {
	if r.mode == loading {
		return nil, errStepsBegin
	}
	r.steps++
	end := r.log.section(title, true)
	defer func() { end(err) }()
	tb, err := r.testbed()
	if err != nil {
		return nil, &stepError{verb: builtin, msg: err.Error()}
	}
	endRecord := tb.Step(title)
	defer func() { endRecord(err) }()
	if v, err = do(); err != nil {
		return nil, &stepError{verb: builtin, msg: stepMessage(machine, err), err: err}
	}
	return v, nil
}

// verb runs a machine verb called from Starlark.
func (r *runner) verb(thread *starlark.Thread, mv *machineValue, name string, v verbFunc, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kwargs, tv := takeTimeout(kwargs)
	timeout, err := parseDuration(tv)
	if err != nil {
		return nil, fmt.Errorf("%s: timeout: %w", name, err)
	}
	title, do, err := v(&verbCall{r: r, name: name, machine: mv.decl.Name, args: args, kwargs: kwargs, timeout: timeout, wrap: r.shell})
	if err != nil {
		return nil, err
	}
	return r.step(name, mv.decl.Name, title, func() (starlark.Value, error) {
		m := mv.m
		if timeout > 0 {
			m = m.WithTimeout(timeout)
		}
		return do(m)
	})
}

// startAll is start_all(): boot every declared machine, in parallel.
func (r *runner) startAll(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return r.step(b.Name(), "", "start_all", func() (starlark.Value, error) {
		return starlark.None, r.tb.StartAllE()
	})
}

// snapshot is snapshot(name): save the whole testbed (Testbed.Snapshot).
func (r *runner) snapshot(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	return r.step(b.Name(), "", "snapshot "+name, func() (starlark.Value, error) {
		return starlark.None, r.tb.SnapshotE(name)
	})
}

// restore is restore(name): back to snapshot(name)'s state
// (Testbed.Restore).
func (r *runner) restore(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	return r.step(b.Name(), "", "restore "+name, func() (starlark.Value, error) {
		return starlark.None, r.tb.RestoreE(name)
	})
}

// checkpoint is checkpoint(key, fn): run fn() and save the state in the
// cache under key, or restore that state instead of running fn
// (Testbed.Checkpoint). fn's steps are the scenario's steps.
func (r *runner) checkpoint(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key string
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "fn", &fn); err != nil {
		return nil, err
	}
	if r.mode == loading {
		return nil, errStepsBegin
	}
	r.steps++
	if _, err := r.testbed(); err != nil {
		return nil, &stepError{verb: b.Name(), msg: err.Error()}
	}
	var setupErr error // fn's own, with its failing step, passed on as it is
	err := r.tb.CheckpointE(key, func() error {
		_, setupErr = starlark.Call(thread, fn, nil, nil)
		return setupErr
	})
	if err != nil && err != setupErr {
		return nil, &stepError{verb: b.Name(), msg: err.Error()}
	}
	return starlark.None, err
}

// subtest is subtest(name, fn): run fn() as a named, timed section and a
// JUnit test case. Starlark has no `with`, so the NixOS driver's
// `with subtest("x"):` block becomes a function. A failure inside ends the
// scenario, as in the NixOS driver, and is recorded on this subtest.
func (r *runner) subtest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "fn", &fn); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s: empty name", b.Name())
	}
	if r.mode == loading {
		return nil, errStepsBegin
	}
	if _, err := r.testbed(); err != nil {
		return nil, err
	}
	end := r.beginSubtest(name)
	v, err := starlark.Call(thread, fn, nil, nil)
	end(err)
	return v, err
}

// beginSubtest opens a subtest: a JUnit case, a log section and a step
// of the testbed's record; the function it returns closes it, recording
// err on it if no inner subtest recorded the failure first. The testbed
// exists.
func (r *runner) beginSubtest(name string) (end func(err error)) {
	endRecord := r.tb.Step("subtest: " + name)
	full := name
	if n := len(r.open); n > 0 {
		full = r.res.Cases[r.open[n-1]].Name + "/" + name
	}
	i := len(r.res.Cases)
	r.res.Cases = append(r.res.Cases, Case{Name: full})
	r.open = append(r.open, i)
	endLog := r.log.Section("subtest: " + name)
	began := time.Now()
	return func(err error) {
		r.open = r.open[:len(r.open)-1]
		r.res.Cases[i].Duration = time.Since(began)
		if err != nil && !r.recorded {
			r.res.Cases[i].Err = asError(err)
			r.recorded = true
		}
		endLog(err)
		endRecord(err)
	}
}

// accel is accel(): the accelerator the machines run under, "kvm" or
// "tcg" (Testbed.Accel), for timeouts that depend on it; "" without a
// usable QEMU. It makes the testbed, as a step does.
func (r *runner) accel(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	tb, err := r.bind()
	if err != nil {
		return nil, err
	}
	return starlark.String(tb.Accel()), nil
}

// outputDir is output_dir(): the testbed's artifacts directory
// (Testbed.OutputDir), kept when the scenario fails; what must outlive a
// passing run goes to copy_from_vm's directory instead.
func (r *runner) outputDir(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	tb, err := r.bind()
	if err != nil {
		return nil, err
	}
	return starlark.String(tb.OutputDir()), nil
}

// logBuiltin is log(*args): print at the current depth, as print() does.
func (r *runner) logBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("%s: unexpected keyword argument %s", b.Name(), kwargs[0][0])
	}
	parts := make([]string, len(args))
	for i, a := range args {
		if s, ok := starlark.AsString(a); ok {
			parts[i] = s
		} else {
			parts[i] = a.String()
		}
	}
	if r.mode == running {
		r.log.Printf("%s", strings.Join(parts, " "))
	}
	return starlark.None, nil
}
