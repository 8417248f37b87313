package shakedown

import (
	"sync"

	"github.com/shakedown-dev/shakedown/image/bootfiles"
	"github.com/shakedown-dev/shakedown/image/deb"
)

// Event is one report on the slow work before a machine answers: building
// its image (resolving and downloading packages, building the agent and
// the initramfs) and booting it. Options.Progress and ImageOptions.Progress
// receive them, for a live display such as the CLI's status line.
//
// Each step is reported when it begins (Done false), for downloads again as
// bytes arrive (Done false, Bytes growing), and when it ends (Done true,
// Err set if it failed). Steps nest: the downloads of the kernel happen
// within StepKernel, for instance, and end before it does. A boot ends with
// StepUp, which is reported once, done, when the machine answers.
type Event struct {
	// Machine is the machine the work is for; "" for BuildImage.
	Machine string
	// Step says what is being done: one of the Step constants, or
	// "download NAME" for the .deb of Debian package NAME.
	Step string
	// Done is set on the last event of a step.
	Done bool
	// Bytes and Total are a download's progress: the bytes received so
	// far and the size the package index gives (0 if it gives none).
	Bytes, Total int64
	// Err is why the step failed, on its Done event; nil if it worked.
	Err error
}

// Steps reported in Event.Step, in the order a cold boot goes through them.
const (
	// StepKernel resolves Debian's kernel package and, on a cache miss,
	// downloads and unpacks it.
	StepKernel = bootfiles.StepKernel
	// StepAgent builds the guest agent (once per process).
	StepAgent = bootfiles.StepAgent
	// StepBusybox resolves and fetches busybox-static.
	StepBusybox = bootfiles.StepBusybox
	// StepPackages resolves, fetches and unpacks MachineConfig.Packages
	// and their dependencies; only reported when there are some.
	StepPackages = bootfiles.StepPackages
	// StepInitramfs hashes the image's contents and, on a cache miss,
	// writes the initramfs.
	StepInitramfs = bootfiles.StepInitramfs
	// StepRootfs builds a Debian system's root file system with
	// mmdebstrap, on a cache miss (with a lock, after fetching its .debs).
	StepRootfs = bootfiles.StepRootfs
	// StepDisk makes a Debian system's root disk image, on a cache miss.
	StepDisk = bootfiles.StepDisk
	// StepBoot runs from QEMU's start until the agent answers.
	StepBoot = "boot"
	// StepUp is the last event of a boot: the machine answers commands.
	StepUp = "up"
)

// DownloadStepPrefix begins the Step of a package download, followed by
// the package's name.
const DownloadStepPrefix = "download "

// reporter sends one machine's events to a progress function; the zero
// value reports nothing.
type reporter struct {
	machine string
	fn      func(Event)
}

// begin reports the start of step and returns the function that reports
// its end.
func (r reporter) begin(step string) (end func(err error)) {
	if r.fn == nil {
		return func(error) {}
	}
	r.fn(Event{Machine: r.machine, Step: step})
	return func(err error) { r.fn(Event{Machine: r.machine, Step: step, Done: true, Err: err}) }
}

// report sends a single event.
func (r reporter) report(e Event) {
	if r.fn != nil {
		e.Machine = r.machine
		r.fn(e)
	}
}

// watch returns src with its downloads reported as steps of their own.
func (r reporter) watch(src deb.Source) deb.Source {
	if r.fn == nil {
		return src
	}
	return &deb.Watched{Next: src, Progress: func(p deb.DownloadProgress) {
		r.report(Event{Step: DownloadStepPrefix + p.Package.Name, Bytes: p.Bytes, Total: p.Total, Done: p.Done, Err: p.Err})
	}}
}

// progress is where a build for the reporter's machine reports.
func (r reporter) progress(logf func(string, ...any)) bootfiles.Progress {
	return bootfiles.Progress{Begin: r.begin, Source: r.watch(deb.Apt{}), Logf: logf}
}

// serialized returns fn behind a mutex: machines boot in parallel and
// downloads report from their own goroutines, but a progress function
// should not have to care.
func serialized(fn func(Event)) func(Event) {
	if fn == nil {
		return nil
	}
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		fn(e)
	}
}
