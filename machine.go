package shakedown

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/agentclient"
	"github.com/shakedown-dev/shakedown/image/bootfiles"
	"github.com/shakedown-dev/shakedown/image/disk"
	"github.com/shakedown-dev/shakedown/internal/eventlog"
	"github.com/shakedown-dev/shakedown/internal/vm"
	"github.com/shakedown-dev/shakedown/qemu"
)

// MachineConfig describes a machine. The zero value is a machine with
// 512 MiB, one CPU, Debian's kernel and a minimal initramfs: the agent,
// busybox and the virtio drivers.
type MachineConfig struct {
	// MemoryMiB is the guest RAM; 0 means 512.
	MemoryMiB int
	// CPUs is the number of vCPUs; 0 means 1.
	CPUs int
	// Files are host files, directories or bytes placed in the image.
	Files []File
	// Packages are Debian packages (names, or name=version) whose files
	// go into the initramfs with their dependencies and the shared
	// libraries of every program among them, fetched through the host's
	// apt and verified by SHA-256 (see package image/pkgset for what
	// exactly goes in). The versions used are recorded in a lock file
	// next to the cached image; BuildImage builds from a lock.
	Packages []string
	// LockFile pins the machine's Debian packages, as go.sum pins
	// modules: those of Packages (with the kernel and busybox), or of
	// Debian. When the file exists the build installs exactly the
	// versions and SHA-256 it lists, whatever the mirror has today; when
	// it does not, the build writes there the lock it used, for the test
	// to commit. A lock made for other packages fails the build: delete
	// the file to lock afresh. A relative path is from the test's
	// working directory (its package's, under go test).
	LockFile string
	// Modules are kernel modules to load at boot besides the virtio
	// drivers, with their dependencies (e.g. "overlay").
	Modules []string
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// Kernel, if set, is the user's kernel (a bzImage, or an ELF vmlinux
	// with a PVH note) instead of Debian's. ModulesDir is its
	// lib/modules/VERSION directory, needed when Modules are wanted.
	Kernel     string
	ModulesDir string
	// Initrd, if set, is the user's initramfs, used as it is: it must
	// start the agent itself (see cmd/shakedown-agent).
	Initrd string
	// BootTimeout bounds each boot; 0 means DefaultBootTimeout.
	BootTimeout time.Duration
	// Networks are the networks the machine joins, declared before with
	// Testbed.Network; the guest sees them as eth0, eth1, ... in this
	// order, with addresses by the numbering scheme.
	Networks []string
	// ManualAddresses leaves the interfaces without addresses (up, but
	// unconfigured), for routers and DHCP clients that set their own.
	ManualAddresses bool
	// QEMUArgs are appended to QEMU's command line. Advanced: for what the
	// configuration has no field for (e.g. a NIC on another switch,
	// -netdev vde), at the risk of clashing with shakedown's own devices.
	QEMUArgs []string
	// Services are supervised by the agent of an initramfs machine (see
	// Service; WaitForUnit, UnitState, Systemctl).
	Services []Service
	// Disks are extra virtio disks, /dev/vda, /dev/vdb, ... in this order
	// (see Disk; /dev/vdb, ... on a Debian system, whose root is vda);
	// their contents survive Reboot.
	Disks []Disk
	// Debian, if set, makes the machine a full Debian system with
	// systemd, booted from a root disk (see DebianSystem), instead of an
	// initramfs machine. Files go into its root file system.
	Debian *DebianSystem
}

// File places content in a machine's image at an absolute guest path:
// a host file or directory (Host), or bytes (Data). Mode 0 keeps the host
// file's permission bits, or 0644 for Data.
type File struct {
	Guest string
	Host  string
	Data  []byte
	Mode  fs.FileMode
}

// Machine is a handle on a declared machine and carries the verbs. Handles
// from WithTimeout share the machine and differ only in their deadline.
type Machine struct {
	*machine
	timeout time.Duration
	tt      T
}

type machine struct {
	tb      *Testbed
	name    string
	cfg     MachineConfig
	console *qemu.Console
	logFile *os.File

	// bootMu serialises Start, Shutdown, Crash and Reboot.
	bootMu sync.Mutex

	mu      sync.Mutex
	vm      *vm.VM // the running or last boot; nil before the first
	boots   int
	nics    []nic           // the running boot's network interfaces
	blocked map[string]bool // networks whose link Block cut
}

func newMachine(tb *Testbed, name string, cfg MachineConfig) (*machine, error) {
	if err := checkConfig(tb, cfg); err != nil {
		return nil, fmt.Errorf("machine %s: %w: %w", name, ErrInvalid, err)
	}
	lf, err := os.Create(filepath.Join(tb.dir, name+".console.log"))
	if err != nil {
		return nil, fmt.Errorf("machine %s: console log: %w", name, err)
	}
	m := &machine{tb: tb, name: name, cfg: cfg, logFile: lf}
	m.console = qemu.NewConsole(lf, func(line string) {
		tb.rec.Console(name, line)
		if !tb.opts.QuietConsole {
			tb.logf("%s # %s", name, line)
		}
	})
	return m, nil
}

// checkConfig rejects, when the machine is declared, what cannot boot.
func checkConfig(tb *Testbed, cfg MachineConfig) error {
	seen := map[string]bool{}
	for _, n := range cfg.Networks {
		if tb.networks[n] == nil {
			return fmt.Errorf("network %q is not declared: call tb.Network(%q, ...) before the machine", n, n)
		}
		if seen[n] {
			return fmt.Errorf("network %q listed twice", n)
		}
		seen[n] = true
	}
	for _, f := range cfg.Files {
		if f.Host != "" {
			if _, err := os.Stat(f.Host); err != nil {
				return fmt.Errorf("file for %s: %w", f.Guest, err)
			}
		}
	}
	if cfg.LockFile != "" && cfg.Initrd != "" {
		return errors.New("LockFile pins the packages shakedown installs; a machine with its own Initrd has none (leave LockFile empty)")
	}
	return errors.Join(checkServices(cfg), disk.Check(cfg.Disks), bootfiles.CheckDebian(bootSpec("", cfg)))
}

// Name returns the machine's name, which is also its hostname.
func (m *Machine) Name() string { return m.name }

// WithTimeout returns a handle on the same machine whose waits and
// commands are bounded by d instead of DefaultWait.
func (m *Machine) WithTimeout(d time.Duration) *Machine {
	return &Machine{machine: m.machine, timeout: d, tt: m.tt}
}

// WithT returns a handle on the same machine whose verbs report failures
// to t instead of the testbed's test: use it inside t.Run, whose t must
// be the one that fails.
func (m *Machine) WithT(t T) *Machine {
	return &Machine{machine: m.machine, timeout: m.timeout, tt: t}
}

// t is where this handle reports failures.
func (m *Machine) t() T {
	if m.tt != nil {
		return m.tt
	}
	return m.tb.t
}

func (m *Machine) wait() time.Duration {
	if m.timeout > 0 {
		return m.timeout
	}
	return DefaultWait
}

// Start boots the machine and waits until its agent answers. Starting a
// running machine does nothing. Verbs start a stopped machine themselves,
// as in the NixOS driver.
func (m *Machine) Start() {
	m.t().Helper()
	m.must(m.StartE())
}

// StartE is Start returning its error.
func (m *Machine) StartE() error { return m.wrap(m.start()) }

func (m *machine) start() error {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	if m.running() {
		return nil
	}
	return m.boot("")
}

func (m *machine) running() bool {
	v := m.current()
	return v != nil && v.Running()
}

// current is the machine's current or last boot, nil before the first.
func (m *machine) current() *vm.VM {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vm
}

// boot starts QEMU and connects to the agent; bootMu is held. With a
// state file from Snapshot, QEMU loads it instead of booting the kernel,
// and the guest's clock is set to the host's.
func (m *machine) boot(state string) error {
	ctx := m.tb.ctx
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	accel, err := m.tb.hypervisor()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	began := time.Now()
	bf, err := m.tb.bootFiles(ctx, m.name, m.cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	prepared := time.Since(began)
	disks, err := m.prepareDisks()
	if err == nil && bf.Root != "" {
		disks, err = disk.WithRoot(m.disksDir(), bf.Root, disks)
	}
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	nics, netArgs, netFiles, netParam, err := m.plug()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	cmdline := bootfiles.Cmdline(m.name, m.cfg.Debian != nil, m.cfg.KernelArgs)
	if netParam != "" {
		cmdline += " " + netParam
	}
	m.console.Boot()
	rep := bootfiles.Reporter{Machine: m.name, Fn: m.tb.progress}
	endBoot := rep.Begin(StepBoot)
	v, err := vm.Start(ctx, vm.Config{
		QEMU: qemu.Config{
			Name:       m.name,
			Accel:      accel,
			MemoryMiB:  m.cfg.MemoryMiB,
			CPUs:       m.cfg.CPUs,
			Kernel:     bf.Kernel,
			Initrd:     bf.Initrd,
			Append:     cmdline,
			Display:    true,
			State:      state,
			Extra:      append(append(disk.QEMUArgs(disks), netArgs...), m.cfg.QEMUArgs...),
			ExtraFiles: netFiles,
		},
		Console: m.console,
		Stopped: errStopped,
		Died:    m.deathCause,
		Exited:  m.exited,
	})
	// QEMU holds its own copies now; ours would keep a port alive after
	// QEMU exits.
	for _, f := range netFiles {
		f.Close()
	}
	if err != nil {
		endBoot(err)
		for _, c := range nics {
			c.port.Close()
		}
		return fmt.Errorf("start: %w", err)
	}
	m.mu.Lock()
	m.vm, m.nics = v, nics
	m.boots++
	m.mu.Unlock()
	if m.boots == 1 {
		fmt.Fprintf(m.logFile, "# %s\n", v.Proc.CommandLine())
	}

	bootTimeout := m.cfg.BootTimeout
	if bootTimeout == 0 {
		bootTimeout = DefaultBootTimeout
		if m.cfg.Debian != nil {
			bootTimeout = DefaultDebianBootTimeout
		}
	}
	bctx, cancel := context.WithTimeoutCause(ctx, bootTimeout,
		fmt.Errorf("no answer from the agent within the %v boot timeout (MachineConfig.BootTimeout)", bootTimeout))
	defer cancel()
	if err := v.Connect(bctx, state != ""); err != nil {
		m.kill()
		endBoot(err)
		return fmt.Errorf("start: %w", err)
	}
	endBoot(nil)
	if err := m.attach(nics); err != nil {
		m.kill()
		return fmt.Errorf("start: %w", err)
	}
	if len(m.tb.allNetworks()) > 0 {
		if err := v.Agent().WriteFile("/etc/hosts", m.tb.hostsFile()); err != nil {
			m.kill()
			return fmt.Errorf("start: write /etc/hosts: %w", err)
		}
	}
	rep.Report(Event{Step: StepUp, Done: true})
	how := "up"
	if state != "" {
		how = "restored"
	}
	m.tb.logf("%s: %s in %.2fs (%s; image ready in %.2fs)", m.name, how, time.Since(began).Seconds(), accel, prepared.Seconds())
	return nil
}

// errStopped is the cause of a run that ended because it was asked to.
var errStopped = fmt.Errorf("%w: it was stopped", ErrNotRunning)

// deathCause explains an unexpected end of QEMU from the console.
func (m *machine) deathCause(proc *qemu.Process) error {
	if p := m.console.Panic(); p != "" {
		return fmt.Errorf("%w: %w:\n%s", ErrMachineDied, ErrKernelPanic, eventlog.Indent(p, "  "))
	}
	if err := proc.ExitError(); err != nil {
		return fmt.Errorf("%w: qemu: %v", ErrMachineDied, err)
	}
	return fmt.Errorf("%w: the guest powered off or reset", ErrMachineDied)
}

// session returns the connection to a running machine, starting the
// machine first if it is stopped, and the context of this boot.
func (m *machine) session() (*agentclient.Client, context.Context, error) {
	if v := m.current(); v != nil && v.Agent() != nil && v.Run().Err() == nil {
		return v.Agent(), v.Run(), nil
	}
	if err := m.start(); err != nil {
		return nil, nil, err
	}
	v := m.current()
	return v.Agent(), v.Run(), nil
}

// opContext bounds one operation by d and by the machine's run; it says
// what it was for in the cause.
func opContext(run context.Context, d time.Duration, what string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(run, d, fmt.Errorf("%w after %v waiting for %s", ErrTimeout, d, what))
}

// Shutdown powers the machine off cleanly and waits until it is off.
func (m *Machine) Shutdown() {
	m.t().Helper()
	m.must(m.ShutdownE())
}

// ShutdownE is Shutdown returning its error.
func (m *Machine) ShutdownE() error { return m.wrap(m.shutdown()) }

func (m *Machine) shutdown() error {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	v := m.current()
	if v == nil || !v.Running() {
		return nil
	}
	v.Expect()
	ctx, cancel := context.WithTimeout(m.tb.ctx, shutdownTimeout)
	defer cancel()
	if agent := v.Agent(); agent != nil {
		if err := agent.Poweroff(ctx); err != nil {
			m.kill()
			return fmt.Errorf("shutdown: agent: %w (killed QEMU)", err)
		}
	}
	if err := v.Wait(ctx); err != nil {
		m.kill()
		return fmt.Errorf("shutdown: not off after %v (killed QEMU)", shutdownTimeout)
	}
	return nil
}

// Crash stops the machine at once, as if its power were cut: no shutdown,
// no sync. Disks keep what reached them.
func (m *Machine) Crash() {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	m.kill()
	m.tb.rec.Crashed(m.name)
}

// Reboot restarts the machine cleanly and waits until its agent answers
// again. The console's searchable text starts anew with the new boot.
func (m *Machine) Reboot() {
	m.t().Helper()
	m.must(m.RebootE())
}

// RebootE is Reboot returning its error.
func (m *Machine) RebootE() error { return m.wrap(m.reboot()) }

func (m *Machine) reboot() error {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	if v := m.current(); v != nil && v.Running() {
		v.Expect()
		ctx, cancel := context.WithTimeout(m.tb.ctx, shutdownTimeout)
		defer cancel()
		if agent := v.Agent(); agent != nil {
			if err := agent.Reboot(ctx); err != nil {
				return fmt.Errorf("reboot: agent: %w", err)
			}
		}
		// The guest resets; with -no-reboot that ends QEMU, and a fresh
		// QEMU with the same disks is the new boot.
		if err := v.Wait(ctx); err != nil {
			m.kill()
			return fmt.Errorf("reboot: the guest did not reset within %v", shutdownTimeout)
		}
	}
	return m.boot("")
}

// WaitForShutdown waits until the machine has powered off by itself (e.g.
// after `poweroff` in the guest). It fails if the machine panicked instead.
func (m *Machine) WaitForShutdown() {
	m.t().Helper()
	m.must(m.WaitForShutdownE())
}

// WaitForShutdownE is WaitForShutdown returning its error.
func (m *Machine) WaitForShutdownE() error {
	v := m.current()
	if v == nil {
		return nil
	}
	ctx, cancel := opContext(m.tb.ctx, m.wait(), "the machine to shut down")
	defer cancel()
	if err := v.Wait(ctx); err != nil {
		return m.wrap(context.Cause(ctx))
	}
	if p := m.console.Panic(); p != "" {
		return m.wrap(fmt.Errorf("%w: %w instead of shutting down:\n%s", ErrMachineDied, ErrKernelPanic, p))
	}
	return nil
}

// kill stops QEMU if it runs and waits for the boot's goroutines.
func (m *machine) kill() {
	if v := m.current(); v != nil {
		v.Kill()
	}
}

// PID returns the process id of the machine's QEMU, or 0 when it is not
// running: for debugging, and for tests that check what outlives them.
func (m *Machine) PID() int {
	if !m.running() {
		return 0
	}
	return m.current().Proc.Pid()
}

// report writes a failed test's view of the machine into the log.
func (m *machine) report() {
	v := m.current()
	if v == nil {
		return
	}
	proc := v.Proc
	m.tb.t.Logf("%s: qemu command line (fds 3-5 are the monitor, console and agent sockets):\n  %s", m.name, proc.CommandLine())
	m.logFile.Sync()
}
