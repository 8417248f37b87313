// Package shakedown runs end-to-end tests of whole Linux machines in QEMU
// virtual machines, from Go tests.
//
// A test creates a Testbed with New, declares machines with
// Testbed.Machine, boots them (Testbed.StartAll, or implicitly on the first
// verb) and drives them with the verbs of Machine, named as in the NixOS
// test driver: Succeed, Fail, WaitUntilSucceeds, WaitForOpenPort, Crash,
// Reboot and the rest. Every wait is bounded, and a failure names what was
// awaited, for how long, what was seen last and the machine's last console
// lines. The testbed stops every machine when the test ends, whatever the
// outcome; the artifacts (console logs, screenshots) are kept when it fails.
//
// Snapshot and Restore save and bring back the whole testbed (machines'
// RAM, devices and disks, the networks' faults) within a test, and
// Checkpoint keeps such a state in the cache across tests and processes,
// so that a slow setup runs once and every test starts from its end.
//
// Every verb has an E form returning its error (SucceedE, StartAllE),
// which wraps a sentinel of errors.go; front ends outside go test pass a
// RunT. The package is the Go API alone: it imports the layers below it,
// never the other way round.
package shakedown

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/control"
	"github.com/shakedown-dev/shakedown/image/bootfiles"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/internal/addrplan"
	"github.com/shakedown-dev/shakedown/internal/interrupt"
	"github.com/shakedown-dev/shakedown/internal/record"
	"github.com/shakedown-dev/shakedown/internal/rundir"
	"github.com/shakedown-dev/shakedown/internal/snapshot"
	"github.com/shakedown-dev/shakedown/internal/webui"
	"github.com/shakedown-dev/shakedown/qemu"
)

// Timeouts. Under TCG a machine boots in about 3 s on an idle machine and
// ten times slower on a loaded CI runner; the defaults leave room for that.
const (
	// DefaultTimeout is the global deadline of a testbed when neither
	// Options.Timeout nor the go test -timeout sets one.
	DefaultTimeout = 30 * time.Minute
	// DefaultWait bounds each wait and each command unless the machine
	// view says otherwise (Machine.WithTimeout).
	DefaultWait = 5 * time.Minute
	// DefaultBootTimeout bounds a boot, from QEMU's start to the agent's
	// answer.
	DefaultBootTimeout = 2 * time.Minute
	// shutdownTimeout bounds a clean power-off before QEMU is killed.
	shutdownTimeout = time.Minute
	// deadlineMargin is kept before go test's own deadline, so that the
	// testbed fails with its own message and still cleans up, rather than
	// go test's panic killing the process mid-step.
	deadlineMargin = 15 * time.Second
)

// Environment variables the testbed reads.
const (
	// EnvAccel forces the accelerator: "tcg" or "kvm".
	EnvAccel = "SHAKEDOWN_ACCEL"
	// EnvOutput is the parent directory of test artifacts.
	EnvOutput = rundir.EnvOutput
)

// T is what a testbed needs of a test: *testing.T, *testing.B and
// testing.TB satisfy it. Verbs report failures through Fatalf, so they must
// be called from the test's goroutine, as with t.Fatal. Front ends other
// than go test (the CLI) implement it themselves.
type T interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Cleanup(func())
}

// Options configure a Testbed. The zero value is a testbed with the default
// deadline, Debian's kernel from the host's apt, the user's cache and
// artifacts under the temporary directory.
type Options struct {
	// Timeout is the global deadline for everything the testbed does;
	// 0 means DefaultTimeout, and never later than go test's -timeout
	// allows.
	Timeout time.Duration
	// OutputDir is where the test's artifacts directory is made; "" means
	// $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown.
	OutputDir string
	// CacheDir holds downloaded packages, kernels and built images; ""
	// means $SHAKEDOWN_CACHE, else $XDG_CACHE_HOME/shakedown.
	CacheDir string
	// RequireKVM makes the absence of a usable KVM an error instead of a
	// fallback to TCG emulation.
	RequireKVM bool
	// Accel forces "kvm" or "tcg"; "" means $SHAKEDOWN_ACCEL, else detect.
	Accel string
	// QuietConsole stops streaming console lines into the test log; they
	// still go to the console log files.
	QuietConsole bool
	// KeepOutput keeps the artifacts directory when the test passes too
	// (it is always kept when the test fails).
	KeepOutput bool
	// Progress, if set, receives the steps of building each machine's
	// image and booting it as they begin, advance and end (see Event),
	// for a live display. Calls come one at a time, from the goroutines
	// doing the work; it must return quickly.
	Progress func(Event)
}

// Testbed owns a test's machines, its artifacts directory and its global
// deadline. New registers the cleanup that stops everything; there is
// nothing for the caller to close.
type Testbed struct {
	t      T
	opts   Options
	ctx    context.Context
	cancel context.CancelCauseFunc
	dir    string      // the run directory's path
	run    *rundir.Dir // the run directory, locked while the testbed lives
	cache  *cache.Cache

	accelOnce sync.Once // hypervisor
	accel     qemu.Accel
	accelErr  error

	mu                   sync.Mutex
	machines             map[string]*machine
	closed               bool
	closers              []func()
	networks             map[string]*Network
	hosts                map[string]*Host // named host endpoints (host.go)
	machineNums, netNums addrplan.Numbers // fixed at first use
	progress             func(Event)      // Options.Progress, serialized
	control              *control.Server  // nil when the socket could not be made
	rec                  *record.Record   // what the live page and the report show
	unhook               func()           // undoes interrupt.Register
}

// onClose registers f to run when the testbed ends, before its machines
// stop, e.g. to close a port forward's listener.
func (tb *Testbed) onClose(f func()) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.closers = append(tb.closers, f)
}

// New returns a testbed for t. It fails the test if the testbed cannot be
// set up (no usable cache or output directory), with the fix in the
// message. QEMU and the accelerator are looked for when the first machine
// starts, so a testbed of named hosts and networks alone needs neither.
func New(t T, opts Options) *Testbed {
	t.Helper()
	tb, err := NewE(t, opts)
	if err != nil {
		t.Fatalf("shakedown: %v", err)
	}
	return tb
}

// NewE is New returning its error. Front ends other than go test pass a
// RunT.
func NewE(t T, opts Options) (*Testbed, error) {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && dl.Add(-deadlineMargin).Before(deadline) {
			deadline = dl.Add(-deadlineMargin)
			timeout = time.Until(deadline).Round(time.Second)
		}
	}
	c, err := cache.Open(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	run, err := rundir.Make(opts.OutputDir, t.Name())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, stopDeadline := context.WithDeadlineCause(ctx, deadline,
		fmt.Errorf("%w: the testbed's %v deadline passed (set Options.Timeout or go test -timeout)", ErrGlobalTimeout, timeout))
	tb := &Testbed{t: t, opts: opts, ctx: ctx, dir: run.Path, run: run,
		cache: c, machines: map[string]*machine{}, rec: record.New(t.Name())}
	tb.progress = bootfiles.Serialized(func(e Event) {
		tb.rec.Progress(e.Machine, e.Step, e.Done, e.Err)
		if opts.Progress != nil {
			opts.Progress(e)
		}
	})
	tb.cancel = func(err error) { cancel(err); stopDeadline() }
	tb.unhook = interrupt.Register(func(sig os.Signal) {
		tb.cancel(fmt.Errorf("interrupted by %v", sig))
		tb.stopAll()
		tb.release(true)
	})
	t.Cleanup(tb.cleanup)
	tb.serveControl()
	return tb, nil
}

// hypervisor finds QEMU and chooses the accelerator, once per testbed,
// when the first machine starts: a testbed that boots nothing needs
// neither, and a missing QEMU fails the start with the package to
// install.
func (tb *Testbed) hypervisor() (qemu.Accel, error) {
	tb.accelOnce.Do(func() {
		if _, err := exec.LookPath(qemu.DefaultBinary); err != nil {
			tb.accelErr = ErrNoQEMU
			return
		}
		force := tb.opts.Accel
		if force == "" {
			force = os.Getenv(EnvAccel)
		}
		accel, why, err := qemu.ChooseAccel(tb.opts.RequireKVM, force)
		if err != nil {
			tb.accelErr = err
			return
		}
		tb.accel = accel
		accelLogged.Do(func() { tb.t.Logf("shakedown: %s", why) })
	})
	return tb.accel, tb.accelErr
}

// Context is cancelled at the global deadline and when the testbed ends;
// its cause says which.
func (tb *Testbed) Context() context.Context { return tb.ctx }

// OutputDir is the test's artifacts directory: console logs, screenshots,
// copied files. It is removed when the test passes and kept when it fails.
func (tb *Testbed) OutputDir() string { return tb.dir }

// Accel reports the accelerator the machines run under, choosing it
// (without starting a machine) if none has started yet; "" when there is
// no usable QEMU.
func (tb *Testbed) Accel() string {
	a, _ := tb.hypervisor()
	return string(a)
}

// Machine declares a machine; name must be unique, a valid hostname, and
// declared before the machine is used. Calling it again with the same name
// returns the same machine (and fails the test if the config differs).
func (tb *Testbed) Machine(name string, cfg MachineConfig) *Machine {
	tb.t.Helper()
	m, err := tb.MachineE(name, cfg)
	tb.must(err)
	return m
}

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckName reports whether name is usable for a machine or a network
// (kind says which, for the message): a valid hostname of lowercase
// letters, digits and inner dashes. Front ends check names with it before
// anything boots.
func CheckName(kind, name string) error {
	if !hostnameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: use lowercase letters, digits and inner dashes, as in a hostname", ErrInvalid, kind, name)
	}
	return nil
}

// MachineE is Machine returning its error; a configuration that cannot
// work wraps ErrInvalid.
func (tb *Testbed) MachineE(name string, cfg MachineConfig) (*Machine, error) {
	if err := CheckName("machine", name); err != nil {
		return nil, err
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return nil, fmt.Errorf("machine %s: %w", name, ErrTestbedEnded)
	}
	if m, ok := tb.machines[name]; ok {
		return &Machine{machine: m}, nil
	}
	if h, ok := tb.hosts[name]; ok {
		return nil, fmt.Errorf("machine %s: host endpoint %s on network %s has that name (names go in /etc/hosts, so hosts and machines need different ones)", name, name, h.n.name)
	}
	if len(tb.machines) == 254 {
		return nil, fmt.Errorf("machine %s: a testbed holds at most 254 machines", name)
	}
	m, err := newMachine(tb, name, cfg)
	if err != nil {
		return nil, err
	}
	tb.machines[name] = m
	return &Machine{machine: m}, nil
}

// Machines returns the declared machines in name order, which is also the
// order of their numbers (1, 2, ...) in addresses.
func (tb *Testbed) Machines() []*Machine {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var ms []*Machine
	for _, n := range slices.Sorted(maps.Keys(tb.machines)) {
		ms = append(ms, &Machine{machine: tb.machines[n]})
	}
	return ms
}

// StartAll boots every declared machine that is not running, in parallel,
// and waits until all answer. It fails the test with every machine's error.
func (tb *Testbed) StartAll() {
	tb.t.Helper()
	tb.must(tb.StartAllE())
}

// StartAllE is StartAll returning the machines' errors, joined.
func (tb *Testbed) StartAllE() error {
	return snapshot.Each(tb.Machines(), (*Machine).StartE)
}

// Subtest runs f as a named, timed section of the test, as the NixOS
// driver's `with subtest(...)`: the log shows where it starts and how long
// it took. A verb failing inside fails the whole test, as there; use t.Run
// with Machine.WithT for Go subtests that fail on their own.
func (tb *Testbed) Subtest(name string, f func()) {
	tb.t.Helper()
	began, end := time.Now(), tb.Step("subtest: "+name)
	tb.logf("subtest: %s", name)
	defer func() {
		end(errSubtestStopped) // unless f returned: the first end stands
		tb.logf("(finished: subtest: %s, in %.2f s)", name, time.Since(began).Seconds())
	}()
	f()
	end(nil)
}

// logf writes one line to the test log.
func (tb *Testbed) logf(format string, args ...any) {
	tb.mu.Lock()
	closed := tb.closed
	tb.mu.Unlock()
	if !closed {
		tb.t.Logf(format, args...)
	}
}

// cleanup stops every machine and settles the artifacts: kept and named
// when the test failed, removed when it passed.
func (tb *Testbed) cleanup() {
	failed := tb.t.Failed()
	tb.rec.End(failed) // before the control socket closes, so that open pages see it
	if tb.control != nil {
		tb.control.Close()
	}
	tb.mu.Lock()
	closers := tb.closers
	tb.closers = nil
	tb.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	tb.stopAll()
	for _, n := range tb.allNetworks() {
		n.close()
	}
	if failed {
		for _, m := range tb.Machines() {
			m.report()
		}
	}
	if failed || tb.opts.KeepOutput {
		report, err := webui.WriteReport(tb.view(), tb.rec)
		if err != nil {
			report = err.Error()
		}
		tb.t.Logf("shakedown: artifacts kept in %s (report: %s)", tb.dir, report)
	}
	tb.mu.Lock()
	tb.closed = true
	for _, m := range tb.machines {
		m.logFile.Close()
	}
	tb.mu.Unlock()
	tb.cancel(ErrTestbedEnded)
	tb.release(!failed && !tb.opts.KeepOutput)
	tb.unhook()
}

// stopAll kills every machine and waits for their goroutines.
func (tb *Testbed) stopAll() {
	snapshot.Each(tb.Machines(), func(m *Machine) error { m.kill(); return nil })
}

// release unlocks the run directory; remove deletes it.
func (tb *Testbed) release(remove bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.run.Release(remove)
}

// accelLogged says the accelerator once per process, not per testbed.
var accelLogged sync.Once
