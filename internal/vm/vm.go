// Package vm runs one boot of a machine: its QEMU process, the goroutines
// that read its console and notice its end, and the connection to its
// guest agent, with what a snapshot needs of it (pause, save, load,
// resume). The testbed (the root package) prepares what a boot needs
// (images, disks, network ports, the command line) and decides what a
// boot's end means; a Reboot there is a new VM on the same disks. It
// imports qemu and agentclient.
package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/qemu"
)

// consoleDrain bounds the wait, after QEMU exits, for the console's last
// lines, which usually say why.
const consoleDrain = 2 * time.Second

// settleTime bounds how long a lost agent connection waits for QEMU's exit
// to be noticed: the connection drops first, and the console's last lines,
// which say why, arrive a moment later.
const settleTime = 3 * time.Second

// reopenWait bounds Pause's wait for the agent to reopen its port: past
// it, the machine is paused all the same, and its state costs a hello
// (half a second) when it runs again.
const reopenWait = 5 * time.Second

// Config is one boot.
type Config struct {
	// QEMU is the process; with QEMU.State set it loads that state
	// instead of booting.
	QEMU qemu.Config
	// Console reads the serial console.
	Console *qemu.Console
	// Stopped is the cause of a run that ended because it was asked to
	// (Expect); Died explains one that nobody asked for.
	Stopped error
	Died    func(*qemu.Process) error
	// Exited runs once the boot has ended and its agent is closed.
	Exited func()
}

// VM is a running boot.
type VM struct {
	// Proc is the QEMU process.
	Proc *qemu.Process

	run context.Context // ends when QEMU exits, with the reason
	wg  sync.WaitGroup  // the console and watcher goroutines

	mu       sync.Mutex
	agent    *agentclient.Client
	expected bool
}

// Start starts QEMU and the goroutines that read its console and notice
// its end; Connect then reaches the agent. The VM's run context ends when
// QEMU exits, or when ctx does.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	proc, err := qemu.Start(ctx, cfg.QEMU)
	if err != nil {
		return nil, err
	}
	run, stop := context.WithCancelCause(ctx)
	v := &VM{Proc: proc, run: run}
	consoleDone := make(chan struct{})
	v.wg.Add(2)
	go func() {
		defer v.wg.Done()
		cfg.Console.Consume(proc.Console)
		close(consoleDone)
	}()
	go func() {
		defer v.wg.Done()
		<-proc.Done()
		select {
		case <-consoleDone:
		case <-time.After(consoleDrain):
		}
		v.mu.Lock()
		expected, agent := v.expected, v.agent
		v.mu.Unlock()
		if expected {
			stop(cfg.Stopped)
		} else {
			stop(cfg.Died(proc))
		}
		if agent != nil {
			agent.Close()
		}
		if cfg.Exited != nil {
			cfg.Exited()
		}
	}()
	return v, nil
}

// Connect waits for the agent, within ctx (the boot timeout), and
// connects; a VM started from a saved state first waits for the state
// to load, and its clock is set to the host's. Its error is the reason
// the boot ended, when it did, rather than the broken connection.
func (v *VM) Connect(ctx context.Context, loaded bool) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(v.run, func() { cancel(context.Cause(v.run)) })
	defer stop()
	if loaded {
		if err := v.Proc.QMP.AwaitLoaded(ctx); err != nil {
			return fmt.Errorf("restore: %w\n%s", err, v.Proc.Output())
		}
	}
	if err := v.dial(ctx, loaded); err != nil {
		Settle(ctx)
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	return nil
}

// Settle waits briefly for ctx, bounded by a machine's run, to end after
// its agent connection broke, so that an error can name the machine's
// death rather than the broken pipe: QEMU's exit is noticed a moment
// after the connection drops.
func Settle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(settleTime):
	}
}

// dial connects to the agent, closing the connection there was first
// (QEMU takes one at a time); setClock sets the guest's wall clock to
// the host's.
func (v *VM) dial(ctx context.Context, setClock bool) error {
	v.mu.Lock()
	old := v.agent
	v.agent = nil
	v.mu.Unlock()
	if old != nil {
		old.Close()
	}
	conn, err := v.Proc.DialAgent(ctx)
	if err != nil {
		return err
	}
	c, err := agentclient.Dial(ctx, conn)
	if err == nil && setClock {
		if err = c.SetClock(ctx, time.Now()); err != nil {
			c.Close()
		}
	}
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.agent = c
	v.mu.Unlock()
	return nil
}

// Reconnect drops the agent connection and connects anew.
func (v *VM) Reconnect(ctx context.Context) error { return v.dial(ctx, false) }

// Agent is the connection to the agent; nil before Connect and while
// paused.
func (v *VM) Agent() *agentclient.Client {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.agent
}

// Run ends when the boot does; its cause says why.
func (v *VM) Run() context.Context { return v.run }

// Running reports whether QEMU still runs.
func (v *VM) Running() bool { return !v.Proc.Exited() }

// Expect marks the end in progress as asked for (a shutdown, a reboot,
// a kill): the run's cause is then Config.Stopped.
func (v *VM) Expect() {
	v.mu.Lock()
	v.expected = true
	v.mu.Unlock()
}

// Kill stops QEMU at once and waits for the goroutines.
func (v *VM) Kill() {
	v.Expect()
	v.Proc.Kill()
	v.wg.Wait()
}

// Wait waits until QEMU has exited by itself, within ctx, and its
// goroutines have ended.
func (v *VM) Wait(ctx context.Context) error {
	if err := v.Proc.Wait(ctx); err != nil {
		return err
	}
	v.wg.Wait()
	return nil
}

// Pause ends the agent session, so that the guest's agent goes back to
// waiting for a host, and stops the vCPUs.
func (v *VM) Pause(ctx context.Context) error {
	v.mu.Lock()
	agent := v.agent
	v.agent = nil
	v.mu.Unlock()
	if agent != nil {
		// The agent notices that the host went away, closes its port and
		// opens it again for the next host; QEMU reports the opening. A
		// state saved before it would hold the dead session, which would
		// swallow the next host's first hello.
		events, unsubscribe := v.Proc.QMP.Subscribe()
		agent.Close()
		qemu.AwaitPortOpen(ctx, events, reopenWait)
		unsubscribe()
	}
	if err := v.Proc.QMP.Stop(ctx); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	return nil
}

// Resume runs a paused VM, reconnects and sets its clock to the host's.
func (v *VM) Resume(ctx context.Context) error {
	if err := v.Proc.QMP.Cont(ctx); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := v.dial(ctx, true); err != nil {
		return fmt.Errorf("resume: agent: %w", err)
	}
	return nil
}

// SaveState saves a paused VM's RAM and devices to path.
func (v *VM) SaveState(ctx context.Context, path string) error {
	if v.Agent() != nil {
		return errors.New("save state: the machine is not paused")
	}
	return v.Proc.QMP.SaveState(ctx, path)
}

// Screenshot saves the display as a PNG at path: QEMU dumps it as PPM
// next to it, which is converted and removed.
func (v *VM) Screenshot(ctx context.Context, path string) error {
	ppm := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".ppm")
	if err := v.Proc.QMP.Screendump(ctx, ppm); err != nil {
		return err
	}
	defer os.Remove(ppm)
	return qemu.PPMToPNG(ppm, path)
}
