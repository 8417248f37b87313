package shakedown

import (
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/control"
)

// serveControl starts the testbed's control socket (package control), so
// that `shakedown ls`, `ssh`, `proxy` and `web` reach its machines. A
// testbed without one still works, so a failure is only logged.
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
			m := tb.lookupMachine(name)
			if m == nil {
				return nil, fmt.Errorf("machine %s is not declared", name)
			}
			v := m.current()
			if v == nil || v.Agent() == nil || v.Run().Err() != nil {
				return nil, fmt.Errorf("machine %s is not running", name)
			}
			return v.Agent().SSH(), nil
		},
	})
	if err != nil {
		tb.t.Logf("shakedown: %v (shakedown ls, ssh and proxy will not reach this testbed)", err)
		return
	}
	tb.control = srv
}

// lookupMachine returns the machine named name, or nil.
func (tb *Testbed) lookupMachine(name string) *machine {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.machines[name]
}
