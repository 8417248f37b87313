package bootfiles

import (
	"sync"

	"github.com/shakedown-dev/shakedown/image/deb"
)

// Event is one report on the slow work before a machine answers: building
// its image (resolving and downloading packages, building the agent and
// the initramfs) and booting it; the root package's Options.Progress
// receives them, for a live display such as the CLI's status line.
//
// Each step is reported when it begins (Done false), for downloads again as
// bytes arrive (Done false, Bytes growing), and when it ends (Done true,
// Err set if it failed). Steps nest: the downloads of the kernel happen
// within StepKernel, for instance, and end before it does.
type Event struct {
	// Machine is the machine the work is for; "" for a build of its own.
	Machine string
	// Step says what is being done: one of the Step constants, or
	// DownloadStepPrefix and a Debian package's name for its .deb.
	Step string
	// Done is set on the last event of a step.
	Done bool
	// Bytes and Total are a download's progress: the bytes received so
	// far and the size the package index gives (0 if it gives none).
	Bytes, Total int64
	// Err is why the step failed, on its Done event; nil if it worked.
	Err error
}

// DownloadStepPrefix begins the Step of a package download, followed by
// the package's name.
const DownloadStepPrefix = "download "

// Reporter sends one machine's events to a function; the zero value
// reports nothing.
type Reporter struct {
	Machine string
	Fn      func(Event)
}

// Begin reports the start of step and returns the function that reports
// its end.
func (r Reporter) Begin(step string) (end func(err error)) {
	if r.Fn == nil {
		return func(error) {}
	}
	r.Fn(Event{Machine: r.Machine, Step: step})
	return func(err error) { r.Fn(Event{Machine: r.Machine, Step: step, Done: true, Err: err}) }
}

// Report sends a single event, as the reporter's machine's.
func (r Reporter) Report(e Event) {
	if r.Fn != nil {
		e.Machine = r.Machine
		r.Fn(e)
	}
}

// Progress is where a build for the reporter's machine reports: its steps,
// and its downloads from apt as steps of their own.
func (r Reporter) Progress(logf func(string, ...any)) Progress {
	p := Progress{Begin: r.Begin, Source: deb.Apt{}, Logf: logf}
	if r.Fn != nil {
		p.Source = &deb.Watched{Next: p.Source, Progress: func(d deb.DownloadProgress) {
			r.Report(Event{Step: DownloadStepPrefix + d.Package.Name, Bytes: d.Bytes, Total: d.Total, Done: d.Done, Err: d.Err})
		}}
	}
	return p
}

// Serialized returns fn behind a mutex: machines boot in parallel and
// downloads report from their own goroutines, but a progress function
// should not have to care.
func Serialized(fn func(Event)) func(Event) {
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
