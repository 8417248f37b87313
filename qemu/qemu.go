package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// DefaultBinary is the QEMU system emulator used when Config.Binary is "".
const DefaultBinary = "qemu-system-x86_64"

// ErrNoQEMU says QEMU is not installed; the message names the package.
var ErrNoQEMU = errors.New("qemu-system-x86_64 not found: install Debian's qemu-system-x86 (apt-get install qemu-system-x86)")

// Config describes one QEMU process. The zero value, given a kernel and an
// accelerator, starts a q35 machine with 512 MiB and one CPU.
type Config struct {
	// Name appears in QEMU's process title and errors.
	Name string
	// Binary is the emulator; "" means DefaultBinary on PATH.
	Binary string
	// Accel is kvm or tcg; "" means tcg.
	Accel Accel
	// MemoryMiB is the guest RAM; 0 means 512.
	MemoryMiB int
	// CPUs is the vCPU count; 0 means 1.
	CPUs int
	// Kernel, Initrd and Append are the direct-boot kernel (a bzImage or an
	// ELF vmlinux with a PVH note), its initramfs and its command line.
	Kernel, Initrd, Append string
	// AgentPort names the agent's virtio-serial port; "" means
	// agentproto.PortName, where the agent looks.
	AgentPort string
	// Display adds a VGA adapter so Screendump has something to show.
	Display bool
	// Extra arguments are appended as they are (disks, NICs, ...).
	Extra []string
	// State, if set, is a state file of Client.SaveState that QEMU loads
	// at start instead of booting the kernel (Client.AwaitLoaded waits
	// for it); the rest of the Config must be the one the state was
	// saved from. QEMU reads it from an fd passed after ExtraFiles.
	State string
	// ExtraFiles are passed to QEMU as fds FirstExtraFD, FirstExtraFD+1,
	// ...; refer to them with fd= options in Extra.
	ExtraFiles []*os.File
}

// Process is a running QEMU. Its owner must call Kill (directly or through
// the testbed's cleanup); QEMU also dies with the process that started it
// (PR_SET_PDEATHSIG), even when that one is killed with SIGKILL.
type Process struct {
	// Args is the full command line, for the log and for reproducing.
	Args []string
	// QMP is the monitor connection.
	QMP *Client
	// Console delivers the serial console's bytes; read it until EOF.
	Console *os.File

	cmd       *exec.Cmd
	agentAddr string
	done      chan struct{}
	err       error
	stderr    *tailBuffer
	killOnce  sync.Once
	startedAt time.Time
}

// FirstExtraFD is the fd number the first of Config.ExtraFiles gets in QEMU:
// fds 3, 4 and 5 carry the monitor, the console and the agent listener.
const FirstExtraFD = 6

// Start launches QEMU. It returns once the monitor answers, so that a
// Process it returns can always be stopped through QMP or Kill.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	bin := cfg.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		if bin == DefaultBinary {
			return nil, ErrNoQEMU
		}
		return nil, fmt.Errorf("qemu binary %s: %w", bin, err)
	}
	qmpHost, qmpGuest, err := socketpair()
	if err != nil {
		return nil, fmt.Errorf("qmp socketpair: %w", err)
	}
	defer qmpGuest.Close()
	conHost, conGuest, err := socketpair()
	if err != nil {
		qmpHost.Close()
		return nil, fmt.Errorf("console socketpair: %w", err)
	}
	defer conGuest.Close()
	agentAddr, agentLn, err := abstractListener()
	if err != nil {
		qmpHost.Close()
		conHost.Close()
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	defer agentLn.Close()

	args := Args(cfg)
	cmd := exec.Command(path, args...)
	cmd.ExtraFiles = append([]*os.File{qmpGuest, conGuest, agentLn}, cfg.ExtraFiles...)
	if cfg.State != "" {
		// Read straight from the file: no pipe, no cat competing for
		// the CPU with the load.
		f, err := openState(cfg.State)
		if err != nil {
			qmpHost.Close()
			conHost.Close()
			return nil, err
		}
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// QEMU must not outlive us, whatever kills us.
		Pdeathsig: syscall.SIGKILL,
		// A Ctrl-C on the terminal goes to us, not straight to QEMU: the
		// testbed stops machines in order and keeps their last words.
		Setpgid: true,
	}
	p := &Process{Args: append([]string{path}, args...), cmd: cmd, agentAddr: agentAddr,
		done: make(chan struct{}), stderr: stderr}
	if err := startOnLockedThread(cmd); err != nil {
		qmpHost.Close()
		conHost.Close()
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	p.startedAt = time.Now()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	p.Console = conHost
	qc, err := fileConn(qmpHost)
	if err == nil {
		p.QMP, err = NewClient(qc)
	}
	if err != nil {
		p.Kill()
		conHost.Close()
		if p.Exited() {
			return nil, fmt.Errorf("qemu exited at start: %w", p.ExitError())
		}
		return nil, fmt.Errorf("qemu monitor: %w", err)
	}
	return p, nil
}

// Args returns QEMU's arguments for cfg, without the binary. The monitor,
// console and agent sockets are fds 3, 4 and 5, as Start passes them.
func Args(cfg Config) []string {
	mem := cfg.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	cpus := cfg.CPUs
	if cpus == 0 {
		cpus = 1
	}
	accel := cfg.Accel
	if accel == "" {
		accel = AccelTCG
	}
	port := cfg.AgentPort
	if port == "" {
		port = agentproto.PortName
	}
	cpu := "max"
	if accel == AccelKVM {
		cpu = "host"
	}
	name := cfg.Name
	if name == "" {
		name = "shakedown"
	}
	a := []string{
		"-name", name + ",debug-threads=on",
		"-machine", "q35,accel=" + string(accel),
		"-cpu", cpu,
		"-m", fmt.Sprint(mem),
		"-smp", fmt.Sprint(cpus),
		// Nothing but what we declare: no default NIC, no floppy, no
		// parallel port, no monitor on stdio, no host config files.
		"-nodefaults", "-no-user-config",
		"-display", "none",
		// A guest reboot ends the process; the machine layer decides
		// whether to start it again (Reboot) or to report it (a panic with
		// panic=-1 reboots at once, so the console tells which).
		"-no-reboot",
		"-chardev", "socket,id=qmp,fd=3",
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=con,fd=4",
		"-serial", "chardev:con",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=agent,fd=5,server=on,wait=off",
		"-device", "virtserialport,bus=vser.0,chardev=agent,name=" + port,
		// Entropy for the guest's SSH keys and everything after it.
		"-device", "virtio-rng-pci",
	}
	if cfg.Display {
		a = append(a, "-device", "VGA")
	}
	if cfg.Kernel != "" {
		a = append(a, "-kernel", cfg.Kernel)
	}
	if cfg.Initrd != "" {
		a = append(a, "-initrd", cfg.Initrd)
	}
	if cfg.Append != "" {
		a = append(a, "-append", cfg.Append)
	}
	if cfg.State != "" {
		a = append(a, "-incoming", fmt.Sprintf("fd:%d", FirstExtraFD+len(cfg.ExtraFiles)))
	}
	return append(a, cfg.Extra...)
}

// DialAgent connects to the agent's port. QEMU accepts one connection at a
// time; a second waits until the first is closed.
func (p *Process) DialAgent(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", p.agentAddr)
}

// Done is closed when QEMU has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether QEMU has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitError returns why QEMU exited, with the end of what it printed; nil
// while it runs or after a clean exit.
func (p *Process) ExitError() error {
	if !p.Exited() {
		return nil
	}
	out := strings.TrimSpace(p.stderr.String())
	if p.err == nil {
		if out != "" {
			return fmt.Errorf("exited: %s", out)
		}
		return nil
	}
	if out != "" {
		return fmt.Errorf("%w: %s", p.err, out)
	}
	return p.err
}

// Output returns the end of what QEMU itself printed (not the guest).
func (p *Process) Output() string { return p.stderr.String() }

// Pid returns QEMU's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Kill stops QEMU at once and waits for it to exit.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	})
	<-p.done
	if p.QMP != nil {
		p.QMP.Close()
	}
}

// Wait waits for QEMU to exit or ctx to end.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CommandLine renders Args for a shell, to reproduce a run by hand.
func (p *Process) CommandLine() string {
	var b strings.Builder
	for i, a := range p.Args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(a, " \"'$\\;&|<>*?()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		b.WriteString(a)
	}
	return b.String()
}

func socketpair() (host, guest *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest"), nil
}

func fileConn(f *os.File) (net.Conn, error) {
	defer f.Close()
	return net.FileConn(f)
}

// abstractListener listens on a fresh abstract Unix socket: it has no file
// to clean up, no path length trouble, and since QEMU gets the listening fd
// itself, a client may connect before QEMU has even started.
func abstractListener() (string, *os.File, error) {
	b := make([]byte, 12)
	rand.Read(b)
	addr := fmt.Sprintf("@shakedown/%d/%s", os.Getpid(), hex.EncodeToString(b))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return "", nil, err
	}
	f, err := ln.File()
	ln.Close()
	return addr, f, err
}

// The Go runtime may end an OS thread, and PR_SET_PDEATHSIG fires when the
// thread that forked the child ends, not the process. So every QEMU is forked
// from one goroutine locked to a thread that lives as long as the process.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func startOnLockedThread(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawnReqs {
				r.err <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReqs <- spawnReq{cmd, errc}
	return <-errc
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = bytes.Clone(t.b[len(t.b)-t.max:])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
