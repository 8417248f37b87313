package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// qemuBinary is the program name QEMU runs as in /proc/PID/cmdline.
const qemuBinary = "qemu-system-x86_64"

// qemuRSSKiB returns the resident memory (VmRSS) of the QEMU that runs the
// machine name. The root package does not say which process that is, so
// this finds it in /proc: a child of this process whose command line is
// QEMU's and names the machine with `-name NAME,...`, as the qemu package
// writes it.
func qemuRSSKiB(name string) (int64, error) {
	pid, err := qemuPID(name)
	if err != nil {
		return 0, err
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("qemu of %s: %w", name, err)
	}
	kib, err := parseVmRSS(status)
	if err != nil {
		return 0, fmt.Errorf("qemu of %s (pid %d): %w", name, pid, err)
	}
	return kib, nil
}

// qemuPID returns the pid of this process's QEMU child for machine name.
func qemuPID(name string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find qemu of %s: %w", name, err)
	}
	self := os.Getpid()
	var found []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// A process may end between ReadDir and these reads; it is then
		// not the one sought, which is running.
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !isQEMUFor(cmdline, name) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if ppid, err := parsePPID(stat); err == nil && ppid == self {
			found = append(found, pid)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("find qemu of %s: no %s child of pid %d with -name %s,...", name, qemuBinary, self, name)
	default:
		return 0, fmt.Errorf("find qemu of %s: %d children match (pids %v), want one", name, len(found), found)
	}
}

// isQEMUFor reports whether a NUL-separated /proc/PID/cmdline is QEMU's
// with `-name NAME,...`. The comma keeps boot1 from matching boot10.
func isQEMUFor(cmdline []byte, name string) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if filepath.Base(args[0]) != qemuBinary {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "-name" && strings.HasPrefix(args[i+1], name+",") {
			return true
		}
	}
	return false
}

// parsePPID returns the parent pid from /proc/PID/stat. The command name
// in parentheses may hold spaces and parentheses itself, so the fields are
// counted from the last ')': state, then ppid.
func parsePPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 2", len(f))
	}
	return strconv.Atoi(f[1])
}

// selfCPU returns the CPU time, user and system, this process has used.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the CPU time, user and system, process pid has used.
func procCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return parseCPU(stat)
}

// parseCPU returns utime plus stime from /proc/PID/stat: fields 14 and 15,
// the 12th and 13th after the command name.
func parseCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: cpu time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseVmRSS returns the VmRSS line of /proc/PID/status in KiB.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: VmRSS line %q, want \"VmRSS: N kB\"", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("status: no VmRSS line (a kernel thread, or a zombie?)")
}

func TestIsQEMUFor(t *testing.T) {
	argv := func(args ...string) []byte { return []byte(strings.Join(args, "\x00") + "\x00") }
	tests := []struct {
		name    string
		cmdline []byte
		machine string
		want    bool
	}{
		{"match", argv("/usr/bin/qemu-system-x86_64", "-name", "boot1,debug-threads=on", "-m", "512"), "boot1", true},
		{"prefix of another name", argv("/usr/bin/qemu-system-x86_64", "-name", "boot10,debug-threads=on"), "boot1", false},
		{"other machine", argv("/usr/bin/qemu-system-x86_64", "-name", "rtt,debug-threads=on"), "boot1", false},
		{"not qemu", argv("/bin/sh", "-name", "boot1,debug-threads=on"), "boot1", false},
		{"-name last", argv("/usr/bin/qemu-system-x86_64", "-name"), "boot1", false},
		{"empty", nil, "boot1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isQEMUFor(tt.cmdline, tt.machine); got != tt.want {
				t.Errorf("isQEMUFor(%q, %q) = %v, want %v", tt.cmdline, tt.machine, got, tt.want)
			}
		})
	}
}

func TestParsePPID(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    int
		wantErr bool
	}{
		{"plain", "1234 (qemu-system-x86) S 99 1234 1234 0 -1", 99, false},
		{"name with ') '", "1234 (a) b (c) S 42 1 1", 42, false},
		{"truncated", "1234 (qemu) S", 0, true},
		{"no name", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePPID([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parsePPID(%q) = %d, %v; want %d, error %v", tt.stat, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\tqemu\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nThreads:\t4\n"))
	if err != nil || got != 123456 {
		t.Errorf("parseVmRSS = %d, %v; want 123456, nil", got, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Errorf("parseVmRSS without VmRSS: got no error, want one")
	}
}

// TestQEMUPIDSelf checks the /proc scan against this process's own
// entries: nothing here runs QEMU, so the scan must come back empty-handed
// with a message naming what it looked for.
func TestQEMUPIDSelf(t *testing.T) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if ppid, err := parsePPID(stat); err != nil || ppid != os.Getppid() {
		t.Errorf("parsePPID(/proc/self/stat) = %d, %v; want %d", ppid, err, os.Getppid())
	}
	if _, err := qemuPID("no-such-machine"); err == nil || !strings.Contains(err.Error(), "-name no-such-machine,") {
		t.Errorf("qemuPID(no-such-machine) error = %v, want one naming -name no-such-machine,", err)
	}
}

func TestParseCPU(t *testing.T) {
	// A real line, with a command name holding a space and a parenthesis.
	stat := []byte("4242 (vde sw) itch) S 1 4242 4242 0 -1 4194560 120 0 0 0 250 125 0 0 20 0 1 0 100 2000 300\n")
	got, err := parseCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3750 * time.Millisecond; got != want {
		t.Errorf("parseCPU = %v, want %v", got, want)
	}
	if _, err := parseCPU([]byte("4242 (x) S 1")); err == nil {
		t.Error("parseCPU of a short line: no error")
	}
	// This process's own stat parses, and its time is not negative.
	if d, err := procCPU(os.Getpid()); err != nil || d < 0 {
		t.Errorf("procCPU(self) = %v, %v", d, err)
	}
}
