// Package qemu runs QEMU: its command line, accelerator choice, and a QMP
// client. Of shakedown's other layers it imports only internal/agentproto,
// for the name of the agent's port, so that host and guest agree on it.
package qemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Accel is a QEMU accelerator, as passed to -machine accel=.
type Accel string

// The accelerators shakedown uses.
const (
	// AccelKVM runs guests on the host CPU through /dev/kvm.
	AccelKVM Accel = "kvm"
	// AccelTCG emulates the guest CPU in software: it works everywhere but
	// is roughly ten to fifty times slower, which makes boot-heavy tests
	// crawl and timeouts tuned under KVM fire.
	AccelTCG Accel = "tcg"
)

// EnvAccel names the environment variable whose value ("kvm" or "tcg")
// callers pass to ChooseAccel as force. The package never reads it itself,
// so that tests and the Go API stay free of hidden global state.
const EnvAccel = "SHAKEDOWN_ACCEL"

// ErrNoKVM is returned (wrapped, with the reason) by ChooseAccel when KVM
// is required but not usable.
var ErrNoKVM = errors.New("kvm not usable")

// Paths DetectKVM reads; variables so that tests can point them elsewhere.
var (
	kvmDevice   = "/dev/kvm"
	procCPUInfo = "/proc/cpuinfo"
	pvmModule   = "/sys/module/kvm_pvm" // present when kvm_pvm is loaded
)

// KVM ioctl numbers from <linux/kvm.h>; KVMIO is 0xAE.
const (
	kvmGetAPIVersion       = 0xAE00     // _IO(KVMIO, 0x00)
	kvmCreateVM            = 0xAE01     // _IO(KVMIO, 0x01)
	kvmGetVCPUMmapSize     = 0xAE04     // _IO(KVMIO, 0x04)
	kvmCreateVCPU          = 0xAE41     // _IO(KVMIO, 0x41)
	kvmSetUserMemoryRegion = 0x4020AE46 // _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
	kvmSetTSSAddr          = 0xAE47     // _IO(KVMIO, 0x47)
	kvmRun                 = 0xAE80     // _IO(KVMIO, 0x80)

	// kvmAPIVersion is the only KVM API version Linux has shipped since
	// 2.6.22; anything else is not a KVM we understand.
	kvmAPIVersion = 12

	kvmExitHLT = 5 // KVM_EXIT_HLT
)

// The speed probe: the guest counts a register down from
// kvmProbeIterations and halts. With hardware virtualization the loop runs
// at native speed, about half a millisecond; TCG needs a few milliseconds.
// A KVM that emulates guest instructions in the kernel instead (kvm_pvm in
// some cloud sandboxes, which only runs specially built guest kernels at
// speed) needs most of a second, and makes every ordinary guest far slower
// than TCG would. kvmProbeBudget sits between the two with a wide margin
// each way; kvmProbeAttempts absorbs a host too loaded to schedule us.
const (
	kvmProbeIterations = 1 << 20
	kvmProbeBudget     = 25 * time.Millisecond
	kvmProbeAttempts   = 3

	// kvmInterruptTimeout bounds waiting for KVM_RUN to return after the
	// probe's budget ran out and the thread was signalled.
	kvmInterruptTimeout = 2 * time.Second
)

// probeCode is the probe guest's code, placed at the x86 reset vector
// (physical 0xfffffff0), where a fresh vCPU starts in real mode without
// any register setup. The rest of its page is HLT. A variable only so that
// tests can make the guest halt at once, spin or fault.
var probeCode = slices.Concat(
	[]byte{0x66, 0xb9}, // mov ecx, kvmProbeIterations
	binary.LittleEndian.AppendUint32(nil, kvmProbeIterations),
	[]byte{0x66, 0x49}, // loop: dec ecx
	[]byte{0x75, 0xfc}, // jnz loop
	[]byte{0xf4},       // hlt
)

// errProbeSlow means the probe guest did not halt within kvmProbeBudget.
var errProbeSlow = errors.New("probe guest too slow")

// DetectKVM reports whether KVM is usable here and, if not, a sentence
// saying why and what to do about it.
//
// A /dev/kvm that exists and opens is not enough. Inside containers and
// VMs it can open while VM creation or vCPU entry fails, and then QEMU
// refuses to start or leaves a guest that never runs; and in some
// sandboxes it is a KVM without hardware virtualization behind it, where
// ordinary guests run hundreds of times slower than under TCG. So the
// probe runs a guest: it creates a VM with one page of memory holding a
// short counting loop and HLT, creates a vCPU, and times it to the halt.
// That costs about a millisecond where KVM works (up to about a tenth of a
// second where it is slow); callers that start many machines should detect
// once and reuse the answer.
func DetectKVM() (ok bool, reason string) {
	fd, err := unix.Open(kvmDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, openReason(err)
	}
	defer unix.Close(fd)

	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil {
		return false, fmt.Sprintf("%s: KVM_GET_API_VERSION: %v (not a KVM device?)", kvmDevice, err)
	}
	if v != kvmAPIVersion {
		return false, fmt.Sprintf("%s: KVM API version %d, want %d", kvmDevice, v, kvmAPIVersion)
	}
	size, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return false, fmt.Sprintf("%s: KVM_GET_VCPU_MMAP_SIZE: %v", kvmDevice, err)
	}

	for range kvmProbeAttempts {
		vm, err := ioctl(fd, kvmCreateVM, 0)
		if err != nil {
			return false, fmt.Sprintf("%s: KVM_CREATE_VM: %v (KVM is present but cannot create VMs: is another hypervisor holding the CPU's virtualization extensions?)", kvmDevice, err)
		}
		err = runProbe(int(vm), int(size))
		if err == nil {
			return true, ""
		}
		if !errors.Is(err, errProbeSlow) {
			return false, fmt.Sprintf("%s: VMs can be created but a vCPU cannot run: %v (nested virtualization broken or disabled?)", kvmDevice, err)
		}
	}
	return false, fmt.Sprintf("%s: guests run, but emulated: a %d-iteration loop took over %v in %d tries, where hardware virtualization needs about 1ms and TCG a few (%s); TCG is faster here",
		kvmDevice, kvmProbeIterations, kvmProbeBudget, kvmProbeAttempts, noHardwareHint())
}

// noHardwareHint guesses why KVM runs without hardware virtualization,
// for the reason DetectKVM gives.
func noHardwareHint() string {
	if _, err := os.Stat(pvmModule); err == nil {
		return "module kvm_pvm is loaded: a paravirtual KVM for specially built guest kernels, not for ordinary guests"
	}
	b, err := os.ReadFile(procCPUInfo)
	if err != nil {
		return "nested virtualization without hardware support?"
	}
	for line := range strings.Lines(string(b)) {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		for f := range strings.FieldsSeq(flags) {
			if f == "vmx" || f == "svm" {
				return "the CPU has " + f + ", so the host may just be overloaded"
			}
		}
		return "the CPU shows no vmx or svm flag, so this KVM has no hardware virtualization behind it"
	}
	return "nested virtualization without hardware support?"
}

// openReason turns the error from opening /dev/kvm into a sentence with
// the likely cause and fix.
func openReason(err error) string {
	switch {
	case errors.Is(err, unix.ENOENT):
		return kvmDevice + ": no such file (no KVM on this host: the kvm module is not loaded, the CPU lacks virtualization extensions, or this is a VM or container without nested virtualization)"
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return kvmDevice + ": permission denied: add your user to group kvm (sudo usermod -aG kvm $USER, then log in again), or in a container pass the device through"
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return kvmDevice + ": no device behind the node (kvm module not loaded?)"
	default:
		return fmt.Sprintf("%s: open: %v", kvmDevice, err)
	}
}

// runProbe takes ownership of vm, runs the probe guest in it, and closes
// everything. vcpuMmapSize is KVM_GET_VCPU_MMAP_SIZE. It returns
// errProbeSlow (wrapped) if the guest did not halt within kvmProbeBudget.
//
// KVM_RUN blocks in the kernel for as long as the guest runs, so the probe
// runs on its own locked thread; when the budget is spent, a signal to
// that thread makes KVM_RUN return EINTR. SIGURG is the Go runtime's own
// preemption signal, which it already handles and tolerates spuriously.
// The probe goroutine owns every resource it touches, so that even if the
// kernel never lets go of it (then it is abandoned after
// kvmInterruptTimeout, the only goroutine in this package not bounded by a
// Close), nothing is freed under it.
func runProbe(vm, vcpuMmapSize int) error {
	var stop atomic.Bool
	tidc := make(chan int, 1)
	running := make(chan struct{}) // closed just before the first KVM_RUN
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- unix.Gettid()
		done <- probeGuest(vm, vcpuMmapSize, running, &stop)
	}()
	tid := <-tidc

	// Setup is a handful of ioctls, but under nested virtualization they
	// can take milliseconds, which must not count against the run.
	giveUp := time.NewTimer(kvmInterruptTimeout)
	defer giveUp.Stop()
	select {
	case err := <-done:
		return err
	case <-running:
	case <-giveUp.C:
		return fmt.Errorf("probe setup took over %v", kvmInterruptTimeout)
	}
	budget := time.NewTimer(kvmProbeBudget)
	defer budget.Stop()
	select {
	case err := <-done:
		return err
	case <-budget.C:
	}
	stop.Store(true)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	giveUp.Reset(kvmInterruptTimeout)
	for {
		// Repeated because a signal landing just before the thread enters
		// KVM_RUN is lost to it.
		_ = unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
		select {
		case err := <-done:
			return err
		case <-tick.C:
		case <-giveUp.C:
			return fmt.Errorf("KVM_RUN: no exit within %v and not interruptible", kvmProbeBudget+kvmInterruptTimeout)
		}
	}
}

// probeGuest is the body of runProbe's thread. It maps one page at the
// top of the 32-bit address space, HLT everywhere and probeCode at the
// reset vector, creates a vCPU, closes running, and runs the vCPU, which
// must end with KVM_EXIT_HLT. Running a guest exercises VM entry, which is what fails
// when nested virtualization is half there, and timing it shows whether
// the guest really runs on the CPU.
func probeGuest(vm, vcpuMmapSize int, running chan<- struct{}, stop *atomic.Bool) error {
	defer unix.Close(vm)
	const (
		pageSize    = 4096
		guestPage   = 0xfffff000 // the page holding the reset vector
		resetVector = 0xff0      // its offset in that page
	)
	mem, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap guest memory: %w", err)
	}
	defer unix.Munmap(mem)
	for i := range mem {
		mem[i] = 0xf4 // HLT
	}
	copy(mem[resetVector:], probeCode)

	// struct kvm_userspace_memory_region.
	region := struct {
		slot          uint32
		flags         uint32
		guestPhysAddr uint64
		memorySize    uint64
		userspaceAddr uint64
	}{
		guestPhysAddr: guestPage,
		memorySize:    pageSize,
		userspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
	}
	if _, err := ioctl(vm, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	// Intel CPUs without unrestricted guest need a TSS for real mode; QEMU
	// sets this address too. Elsewhere it is harmless, so its error is
	// ignored: a real problem shows up in KVM_RUN.
	_, _ = ioctl(vm, kvmSetTSSAddr, 0xfffbd000)

	vcpu, err := ioctl(vm, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	defer unix.Close(int(vcpu))
	run, err := unix.Mmap(int(vcpu), 0, vcpuMmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer unix.Munmap(run)

	close(running)
	for {
		_, err := ioctl(int(vcpu), kvmRun, 0)
		if errors.Is(err, unix.EINTR) {
			if stop.Load() {
				return fmt.Errorf("KVM_RUN: no halt within %v: %w", kvmProbeBudget, errProbeSlow)
			}
			continue // a stray signal; run on
		}
		if err != nil {
			return fmt.Errorf("KVM_RUN: %w", err)
		}
		// struct kvm_run: two u8 flags, six bytes of padding, u32 exit_reason.
		exit := *(*uint32)(unsafe.Pointer(&run[8]))
		if exit != kvmExitHLT {
			return fmt.Errorf("KVM_RUN: guest exited with reason %d, want %d (KVM_EXIT_HLT)", exit, kvmExitHLT)
		}
		return nil
	}
}

// ioctl issues an argument-carrying ioctl and returns its result.
func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// ChooseAccel picks the accelerator and returns it with a sentence for the
// log, so that a slow TCG run is explained once instead of discovered.
//
// force overrides detection (callers usually pass os.Getenv(EnvAccel)):
// "tcg" always gives TCG, for reproducing emulation-only bugs or comparing
// timings; "kvm" behaves like requireKVM. An empty force detects. With
// KVM unusable, the result is TCG, or with requireKVM an error wrapping
// ErrNoKVM that carries the reason.
func ChooseAccel(requireKVM bool, force string) (Accel, string, error) {
	return chooseAccel(requireKVM, force, DetectKVM)
}

// chooseAccel is ChooseAccel with the detector passed in, for tests.
func chooseAccel(requireKVM bool, force string, detect func() (bool, string)) (Accel, string, error) {
	switch force = strings.ToLower(strings.TrimSpace(force)); force {
	case "":
	case string(AccelTCG):
		return AccelTCG, fmt.Sprintf("accelerator tcg (software emulation, much slower than working KVM): forced by %s=tcg", EnvAccel), nil
	case string(AccelKVM):
		requireKVM = true
	default:
		return "", "", fmt.Errorf("choose accelerator: unknown forced accelerator %q (want %q or %q)", force, AccelKVM, AccelTCG)
	}
	ok, reason := detect()
	if ok {
		return AccelKVM, "accelerator kvm: /dev/kvm is usable", nil
	}
	if requireKVM {
		why := "required"
		if force != "" {
			why = fmt.Sprintf("forced by %s=kvm", EnvAccel)
		}
		return "", "", fmt.Errorf("choose accelerator: kvm %s: %w: %s", why, ErrNoKVM, reason)
	}
	return AccelTCG, fmt.Sprintf("accelerator tcg (software emulation, much slower than working KVM): KVM not usable: %s", reason), nil
}
