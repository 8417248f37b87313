package shakedown

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/control"
	"github.com/shakedown-dev/shakedown/internal/record"
	"github.com/shakedown-dev/shakedown/internal/webui"
)

// serveControl starts the testbed's control socket (package control):
// `shakedown ls`, `ssh` and `proxy` reach its machines over SSH, and
// `shakedown web` reads its record (package record) over HTTP. A testbed
// without one still works, so a failure is only logged.
func (tb *Testbed) serveControl() {
	srv, err := control.Serve(control.Config{
		Dir:  tb.dir,
		Name: tb.t.Name(),
		Machines: func() []control.Machine {
			var ms []control.Machine
			for _, m := range tb.Machines() {
				ms = append(ms, control.Machine{Name: m.name, Running: m.running()})
			}
			return ms
		},
		Agent: func(name string) (*ssh.Client, error) {
			m, err := tb.upMachine(name)
			if err != nil {
				return nil, err
			}
			return m.current().Agent().SSH(), nil
		},
		HTTP: webui.Handler(webui.Source{Record: tb.rec, Dir: tb.dir, View: tb.view,
			Screenshot: func(name string) (string, error) {
				m, err := tb.upMachine(name)
				if err != nil {
					return "", err
				}
				return m.screenshot(webui.ScreenshotName())
			}}),
	})
	if err != nil {
		tb.t.Logf("shakedown: %v (shakedown ls, ssh, proxy and web will not reach this testbed)", err)
		return
	}
	tb.control = srv
}

// upMachine returns the machine named name if it is up, or why not.
func (tb *Testbed) upMachine(name string) (*Machine, error) {
	tb.mu.Lock()
	m := &Machine{machine: tb.machines[name]}
	tb.mu.Unlock()
	if m.machine == nil || !m.IsUp() {
		return nil, fmt.Errorf("machine %s is not running", name)
	}
	return m, nil
}

// Step records a named, timed step of the test for the live page and the
// report: the verbs called until end nest in it, and end's error marks it
// failed. Subtest and the scenario's verbs are steps.
func (tb *Testbed) Step(title string) (end func(err error)) {
	e := tb.rec.Begin("", title, true)
	return func(err error) { e(err, "") }
}

// view describes the testbed now: the record's part and its topology.
// Numbers not given out yet stay 0, so that watching never freezes them.
func (tb *Testbed) view() record.View {
	v := record.View{Dir: tb.dir, PID: os.Getpid()}
	machines := tb.Machines()
	for _, m := range machines {
		num, _ := tb.machineNums.Known(m.name)
		v.Machines = append(v.Machines, record.Machine{Name: m.name, Number: num, Networks: m.cfg.Networks})
	}
	for _, n := range tb.allNetworks() {
		c := n.sw.Counters()
		nv := record.Network{Name: n.name, Capture: n.pcap, Frames: c.RxFrames, Bytes: c.RxBytes, Drops: c.Drops.Total()}
		nv.Number, _ = tb.netNums.Known(n.name)
		for _, m := range machines {
			if num, ok := tb.machineNums.Known(m.name); slices.Contains(m.cfg.Networks, n.name) {
				l := record.Link{Peer: m.name, State: record.LinkDown}
				if ok && nv.Number > 0 {
					l.Addr = n.address(num, false).String()
				}
				m.mu.Lock()
				if m.blocked[n.name] {
					l.State = record.LinkBlocked
				} else if m.nics != nil {
					l.State = record.LinkUp
				}
				m.mu.Unlock()
				nv.Links = append(nv.Links, l)
			}
		}
		for _, h := range tb.Hosts() {
			if h.n == n {
				nv.Links = append(nv.Links, record.Link{Peer: h.name, Host: true, Addr: h.Addr().String(), State: record.LinkUp})
			}
		}
		nv.Groups = record.ApplyFaults(nv.Links, n.faults.State(peerName))
		v.Networks = append(v.Networks, nv)
	}
	tb.rec.Fill(&v)
	return v
}

// exited is the end of a boot: the machine leaves its networks, and the
// record says whether it stopped or crashed.
func (m *machine) exited() {
	m.detach()
	v := m.current()
	m.tb.rec.Exited(m.name, v != nil && errors.Is(context.Cause(v.Run()), ErrMachineDied))
}
