//go:build linux

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/addrplan"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// mounts are the file systems an initramfs machine needs before anything
// runs; a full system's init has mounted them already.
var mounts = []struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   os.FileMode
}{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666", 0o755},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
}

// ModulesList is where the image lists the kernel modules to load at boot,
// dependencies first, one absolute path per line.
const ModulesList = "/etc/shakedown/modules"

// InitSystem does PID 1's work in an initramfs machine: file systems,
// kernel modules, hostname, loopback. Failures to mount or load are
// reported on the console and returned together; the agent carries on, as a
// machine with a missing module is still worth a shell to look at it.
func InitSystem() error {
	var errs []error
	for _, m := range mounts {
		os.MkdirAll(m.target, m.mode)
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && err != unix.EBUSY {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.target, err))
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		os.Symlink(l[0], l[1])
	}
	if err := loadModules(ModulesList); err != nil {
		errs = append(errs, err)
	}
	if name := cmdlineParam(agentproto.ParamHostname); name != "" {
		if err := unix.Sethostname([]byte(name)); err != nil {
			errs = append(errs, fmt.Errorf("hostname: %w", err))
		}
		os.WriteFile("/etc/hostname", []byte(name+"\n"), 0o644)
	}
	// localhost resolves on every machine, as on any Linux system; a
	// testbed with networks replaces the file with every machine's names.
	if _, err := os.Stat("/etc/hosts"); errors.Is(err, os.ErrNotExist) {
		os.WriteFile("/etc/hosts", addrplan.HostsFile(nil), 0o644)
	}
	if err := linkUp("lo"); err != nil {
		errs = append(errs, fmt.Errorf("loopback: %w", err))
	}
	if err := ConfigureNetwork(); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	return errors.Join(errs...)
}

func loadModules(list string) error {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		path := strings.TrimSpace(sc.Text())
		if path == "" {
			continue
		}
		if err := loadModule(path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("module %s: %w", path, err)
	}
	return nil
}

// cmdlineParam returns the value of name=value on the kernel command line.
func cmdlineParam(name string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

// linkUp sets IFF_UP on an interface with the classic ioctl, which needs no
// netlink library for the one flag.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// halt stops the machine on the host's request. As PID 1 it stops every
// process, syncs and calls reboot(2); under another init it asks that init.
func (a *Agent) halt(reboot bool) {
	time.Sleep(50 * time.Millisecond) // let the reply reach the host
	if a.sup != nil {
		a.sup.halt()
	}
	if !a.pid1 {
		verb := "poweroff"
		if reboot {
			verb = "reboot"
		}
		a.reaper.start([]string{"systemctl", verb}, &os.ProcAttr{Env: a.baseEnv()})
		return
	}
	unix.Kill(-1, unix.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	logf("%s", map[bool]string{false: "powering off", true: "rebooting"}[reboot])
	unix.Reboot(cmd)
}
