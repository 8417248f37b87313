package qemu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestChooseAccel(t *testing.T) {
	usable := func() (bool, string) { return true, "" }
	missing := func() (bool, string) { return false, "/dev/kvm: no such file" }
	tests := []struct {
		name       string
		requireKVM bool
		force      string
		detect     func() (bool, string)
		want       Accel
		wantErr    error  // nil for success
		wantMsg    string // substring of the log sentence or error
	}{
		{"kvm usable", false, "", usable, AccelKVM, nil, "kvm: /dev/kvm is usable"},
		{"kvm missing falls back", false, "", missing, AccelTCG, nil, "accelerator tcg (software emulation, much slower than working KVM): KVM not usable: /dev/kvm: no such file"},
		{"kvm required and usable", true, "", usable, AccelKVM, nil, "kvm"},
		{"kvm required and missing", true, "", missing, "", ErrNoKVM, "kvm required: kvm not usable: /dev/kvm: no such file"},
		{"force tcg with kvm usable", false, "tcg", usable, AccelTCG, nil, "forced by SHAKEDOWN_ACCEL=tcg"},
		{"force tcg beats requireKVM", true, "tcg", missing, AccelTCG, nil, "forced"},
		{"force kvm usable", false, "kvm", usable, AccelKVM, nil, "kvm"},
		{"force kvm missing", false, "kvm", missing, "", ErrNoKVM, "forced by SHAKEDOWN_ACCEL=kvm"},
		{"force is case and space tolerant", false, " TCG\n", usable, AccelTCG, nil, "forced"},
		{"unknown force", false, "hvf", usable, "", nil, `unknown forced accelerator "hvf"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg, err := chooseAccel(tt.requireKVM, tt.force, tt.detect)
			if got != tt.want {
				t.Errorf("got accel %q, want %q", got, tt.want)
			}
			text := msg
			if err != nil {
				text = err.Error()
			}
			if !strings.Contains(text, tt.wantMsg) {
				t.Errorf("got %q, want it to contain %q", text, tt.wantMsg)
			}
			wantFail := tt.wantErr != nil || tt.want == ""
			if (err != nil) != wantFail {
				t.Fatalf("got error %v, want error: %v", err, wantFail)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want it to wrap %v", err, tt.wantErr)
			}
		})
	}
}

func TestDetectKVMNotKVM(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		device  string
		wantMsg string
	}{
		{"missing", filepath.Join(dir, "kvm"), "no such file (no KVM on this host"},
		{"regular file", plain, "KVM_GET_API_VERSION"},
		{"other device", "/dev/null", "KVM_GET_API_VERSION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(old string) { kvmDevice = old }(kvmDevice)
			kvmDevice = tt.device
			ok, reason := DetectKVM()
			if ok {
				t.Fatalf("DetectKVM on %s: got ok, want not ok", tt.device)
			}
			if !strings.Contains(reason, tt.wantMsg) {
				t.Errorf("got reason %q, want it to contain %q", reason, tt.wantMsg)
			}
		})
	}
}

func TestOpenReason(t *testing.T) {
	tests := []struct {
		err     error
		wantMsg string
	}{
		{unix.ENOENT, "no such file"},
		{unix.EACCES, "permission denied: add your user to group kvm"},
		{unix.EPERM, "permission denied"},
		{unix.ENXIO, "kvm module not loaded"},
		{unix.EBUSY, "open: device or resource busy"},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			if got := openReason(tt.err); !strings.Contains(got, tt.wantMsg) {
				t.Errorf("got %q, want it to contain %q", got, tt.wantMsg)
			}
		})
	}
}

// TestDetectKVMHost runs the real probe. Where /dev/kvm is absent it can
// only check that the answer is "no"; elsewhere it logs the verdict, which
// is what a person debugging a slow CI wants to see.
func TestDetectKVMHost(t *testing.T) {
	ok, reason := DetectKVM()
	t.Logf("DetectKVM: ok=%v reason=%q", ok, reason)
	if _, err := os.Stat("/dev/kvm"); errors.Is(err, os.ErrNotExist) && ok {
		t.Errorf("DetectKVM without /dev/kvm: got ok, want not ok")
	}
	if ok == (reason != "") {
		t.Errorf("got ok=%v with reason %q, want a reason exactly when not ok", ok, reason)
	}
}

// TestDetectKVMProbe checks that the probe tells a vCPU that runs at
// speed from one that faults or is too slow to halt in time (a spinning
// guest stands in for an emulated one), and that the slow one is
// interrupted instead of hanging the probe. It needs a /dev/kvm that can
// at least run a guest that halts at once.
func TestDetectKVMProbe(t *testing.T) {
	defer func(code []byte) { probeCode = code }(probeCode)
	probeCode = []byte{0xf4}
	if ok, reason := DetectKVM(); !ok {
		t.Skipf("needs a KVM that runs a HLT guest: %s", reason)
	}
	tests := []struct {
		name    string
		code    []byte
		wantOK  bool
		wantMsg string
	}{
		{"halts", []byte{0xf4}, true, ""},
		// "add [bx+si], al" touches unmapped guest memory: an MMIO exit.
		{"faults", []byte{0x00, 0x00}, false, "guest exited with reason 6, want 5"},
		// "jmp $" spins until the budget's signal interrupts KVM_RUN.
		{"spins", []byte{0xeb, 0xfe}, false, "guests run, but emulated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probeCode = tt.code
			start := time.Now()
			ok, reason := DetectKVM()
			if ok != tt.wantOK || !strings.Contains(reason, tt.wantMsg) {
				t.Errorf("got ok=%v reason %q, want ok=%v reason containing %q", ok, reason, tt.wantOK, tt.wantMsg)
			}
			// All attempts, each cut off at the budget, plus slack for a
			// loaded host.
			if limit := kvmProbeAttempts*kvmProbeBudget + time.Second; time.Since(start) > limit {
				t.Errorf("DetectKVM took %v, want under %v", time.Since(start), limit)
			}
		})
	}
}

func TestNoHardwareHint(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		pvm     string
		cpuinfo string
		wantMsg string
	}{
		{"kvm_pvm loaded", dir, "", "kvm_pvm is loaded"},
		{"intel", "", write("intel", "processor\t: 0\nflags\t\t: fpu vme vmx ept\n"), "the CPU has vmx"},
		{"amd", "", write("amd", "flags\t\t: fpu svm npt\n"), "the CPU has svm"},
		{"no virtualization flag", "", write("none", "model name\t: AMD EPYC\nflags\t\t: fpu x2apic hypervisor\n"), "no vmx or svm flag"},
		{"no flags line", "", write("empty", "processor\t: 0\n"), "nested virtualization"},
		{"unreadable", "", filepath.Join(dir, "absent"), "nested virtualization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(pvm, cpuinfo string) { pvmModule, procCPUInfo = pvm, cpuinfo }(pvmModule, procCPUInfo)
			pvmModule, procCPUInfo = filepath.Join(dir, "no-such-module"), tt.cpuinfo
			if tt.pvm != "" {
				pvmModule = tt.pvm
			}
			if got := noHardwareHint(); !strings.Contains(got, tt.wantMsg) {
				t.Errorf("got %q, want it to contain %q", got, tt.wantMsg)
			}
		})
	}
}

// TestRealQEMUAccel checks that DetectKVM's verdict holds for QEMU itself:
// under each accelerator this host offers, a guest must really execute,
// shown by SeaBIOS writing its banner to the debug console port. A KVM
// that creates VMs but never runs their vCPUs would fail here.
func TestRealQEMUAccel(t *testing.T) {
	accels := []Accel{AccelTCG}
	if ok, reason := DetectKVM(); ok {
		accels = append(accels, AccelKVM)
	} else {
		t.Logf("KVM not usable, testing only TCG: %s", reason)
	}
	for _, accel := range accels {
		t.Run(string(accel), func(t *testing.T) {
			debugLog := filepath.Join(t.TempDir(), "debugcon.log")
			c, _ := startQEMU(t, accel,
				"-debugcon", "file:"+debugLog, "-global", "isa-debugcon.iobase=0x402")
			ctx := testContext(t)
			var kvm struct{ Enabled, Present bool }
			if err := c.Execute(ctx, "query-kvm", nil, &kvm); err != nil {
				t.Fatalf("query-kvm: %v", err)
			}
			if got, want := kvm.Enabled, accel == AccelKVM; got != want {
				t.Errorf("query-kvm enabled: got %v, want %v", got, want)
			}
			if err := c.Cont(ctx); err != nil {
				t.Fatalf("Cont: %v", err)
			}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				b, _ := os.ReadFile(debugLog)
				if strings.Contains(string(b), "SeaBIOS") {
					break
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					t.Fatalf("no SeaBIOS banner on the debug console within %v under %s: the guest does not run (got %q)", testTimeout, accel, b)
				}
			}
			if err := c.Quit(ctx); err != nil {
				t.Errorf("Quit: %v", err)
			}
		})
	}
}
