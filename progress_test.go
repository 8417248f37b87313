package shakedown_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// eventLog collects progress events.
type eventLog struct {
	mu     sync.Mutex
	events []shakedown.Event
}

func (l *eventLog) add(e shakedown.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) get() []shakedown.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// TestProgressEvents boots a machine with Options.Progress set and checks
// the steps it reports: each begun and ended in order, downloads (on a
// cold cache) nested in the step that needed them, and "up" last.
func TestProgressEvents(t *testing.T) {
	testenv.NeedVM(t)
	var log eventLog
	tb := shakedown.New(t, shakedown.Options{Progress: log.add})
	web := tb.Machine("web", shakedown.MachineConfig{MemoryMiB: 256})
	web.Start()
	events := log.get()

	var steps []string // "begin STEP" and "end STEP", downloads left out
	var open []string  // steps begun and not ended, innermost last
	for i, e := range events {
		if e.Machine != "web" {
			t.Errorf("event %d: got machine %q, want web: %+v", i, e.Machine, e)
		}
		if e.Err != nil {
			t.Errorf("event %d: got error %v, want none", i, e.Err)
		}
		if name, ok := strings.CutPrefix(e.Step, shakedown.DownloadStepPrefix); ok {
			if len(open) == 0 || (open[len(open)-1] != shakedown.StepKernel && open[len(open)-1] != shakedown.StepBusybox) {
				t.Errorf("event %d: download of %s within %q, want it within %q or %q", i, name, open, shakedown.StepKernel, shakedown.StepBusybox)
			}
			if e.Done && e.Total > 0 && e.Bytes != e.Total {
				t.Errorf("event %d: download of %s done with %d of %d bytes", i, name, e.Bytes, e.Total)
			}
			continue
		}
		switch {
		case e.Step == shakedown.StepUp:
			steps = append(steps, "up")
		case e.Done:
			if len(open) == 0 || open[len(open)-1] != e.Step {
				t.Errorf("event %d: %q ended while %q were open, want it innermost", i, e.Step, open)
			} else {
				open = open[:len(open)-1]
			}
			steps = append(steps, "end "+e.Step)
		default:
			open = append(open, e.Step)
			steps = append(steps, "begin "+e.Step)
		}
	}
	want := []string{
		"begin " + shakedown.StepKernel, "end " + shakedown.StepKernel,
		"begin " + shakedown.StepAgent, "end " + shakedown.StepAgent,
		"begin " + shakedown.StepBusybox, "end " + shakedown.StepBusybox,
		"begin " + shakedown.StepInitramfs, "end " + shakedown.StepInitramfs,
		"begin " + shakedown.StepBoot, "end " + shakedown.StepBoot,
		"up",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("got steps\n  %s\nwant\n  %s", strings.Join(steps, "\n  "), strings.Join(want, "\n  "))
	}
	if last := events[len(events)-1]; last.Step != shakedown.StepUp || !last.Done {
		t.Errorf("last event: got %+v, want %q, done", last, shakedown.StepUp)
	}

	// A running machine reports nothing more; a reboot reports a boot again.
	n := len(log.get())
	web.Succeed("true")
	if got := len(log.get()); got != n {
		t.Errorf("after a command: got %d events, want %d: %+v", got, n, log.get()[n:])
	}
	web.Reboot()
	again := log.get()[n:]
	if len(again) == 0 || again[len(again)-1].Step != shakedown.StepUp {
		t.Errorf("after Reboot: got %+v, want a boot ending with %q", again, shakedown.StepUp)
	}
}
