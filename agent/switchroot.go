//go:build linux

package agent

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// ParamRoot names the root's block device on the kernel command line (see
// agentproto.ParamRoot); SwitchRoot mounts it.
const ParamRoot = agentproto.ParamRoot

// RootDevice returns the value of ParamRoot on the kernel command line,
// "" when there is none. PID 1 calls it first thing, before anything has
// mounted /proc, so it mounts /proc when /proc/cmdline is missing.
func RootDevice() string {
	if _, err := os.Stat("/proc/cmdline"); err != nil {
		m := mounts[0]
		os.MkdirAll(m.target, m.mode)
		unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
	}
	return cmdlineParam(ParamRoot)
}

// rootWait bounds the wait for the root disk to appear after its driver
// is loaded; virtio_blk probes asynchronously.
const rootWait = 30 * time.Second

// newRoot is where the root file system is mounted before the switch.
const newRoot = "/newroot"

// SwitchRoot does an initramfs's last job as PID 1: it mounts /proc, /sys
// and /dev, loads the modules in ModulesList, mounts dev (ext4, read-write)
// on /newroot, moves /dev, /proc and /sys there, frees the initramfs's
// files, makes /newroot the root (MS_MOVE and chroot, as util-linux's
// switch_root does) and execs /sbin/init, systemd, which finds the pseudo
// file systems already mounted. It returns only on failure, and then the
// machine cannot boot: the caller reports the error and exits, so the
// kernel panics with it on the console.
func SwitchRoot(dev string) error {
	for _, m := range mounts[:3] { // proc, sysfs, devtmpfs
		os.MkdirAll(m.target, m.mode)
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
	}
	if err := loadModules(ModulesList); err != nil {
		return err
	}
	deadline := time.Now().Add(rootWait)
	for {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("root device %s did not appear within %v (is virtio_blk in the initramfs and the disk attached?)", dev, rootWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, newRoot, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount root %s: %w", dev, err)
	}
	for _, dir := range []string{"/dev", "/proc", "/sys"} {
		if err := unix.Mount(dir, newRoot+dir, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to the new root: %w", dir, err)
		}
	}
	freeInitramfs()
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the new root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	logf("switching to %s's /sbin/init", dev)
	err := unix.Exec("/sbin/init", []string{"/sbin/init"}, os.Environ())
	return fmt.Errorf("exec /sbin/init: %w", err)
}

// freeInitramfs removes the initramfs's files (the agent binary, the
// modules), which would otherwise hold RAM for the machine's lifetime. It
// touches nothing unless / is the initramfs's RAM file system, and leaves
// newRoot, where the real root and the moved mounts are.
func freeInitramfs() {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil || (st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC) {
		return
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return
	}
	var errs []error
	for _, e := range entries {
		if "/"+e.Name() == newRoot {
			continue
		}
		if err := os.RemoveAll("/" + e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		logf("freeing the initramfs: %v", err)
	}
}

// InitService does, for an agent that runs as a service of a full system,
// the part of InitSystem that the system's init does not: the hostname
// from the command line (shakedown.hostname) and the NICs' addresses
// (ParamNet). systemd has mounted everything and udev loads the drivers.
func InitService() error {
	var errs []error
	if name := cmdlineParam(agentproto.ParamHostname); name != "" {
		if err := unix.Sethostname([]byte(name)); err != nil {
			errs = append(errs, fmt.Errorf("hostname: %w", err))
		}
	}
	if err := ConfigureNetwork(); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	return errors.Join(errs...)
}
