package debian

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/disk"
	"github.com/shakedown-dev/shakedown/internal/hosttools"
)

// agentUnit runs the agent as early as systemd can: without default
// dependencies it starts before basic.target, stays up until the final
// kill at shutdown (so that it can answer the poweroff request), and
// restarts at once whatever happens to it.
const agentUnit = `[Unit]
Description=shakedown agent (SSH on the virtio-serial port org.shakedown.agent.0)
DefaultDependencies=no

[Service]
ExecStart=/usr/local/bin/shakedown-agent
Restart=always
RestartSec=200ms
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=sysinit.target
`

// skippedModules are the kernel's module directories a test machine does
// not need: real hardware it never has. Leaving them out halves the image.
var skippedModules = []string{
	"kernel/sound", "kernel/drivers/gpu", "kernel/drivers/media", "kernel/drivers/infiniband",
	"kernel/drivers/net/wireless", "kernel/drivers/net/ethernet", "kernel/drivers/net/usb",
	"kernel/drivers/staging", "kernel/drivers/iio", "kernel/drivers/comedi", "kernel/drivers/usb",
	"kernel/drivers/bluetooth", "kernel/drivers/isdn", "kernel/net/bluetooth",
	"kernel/net/mac80211", "kernel/net/wireless",
}

const mib = 1 << 20

// makeDisk unpacks the tarball into a scratch directory next to out, adds
// shakedown's files and the machine's, and makes out an ext4 image of it;
// seed (the image's key) makes the file system's UUID and hash seed.
func makeDisk(ctx context.Context, out, tarball string, spec Spec, seed string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	tarBin, err := hosttools.Find("tar")
	if err != nil {
		return err
	}
	if b, err := exec.CommandContext(ctx, tarBin, "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-f", tarball, "-C", root).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %v: %s", tarball, err, tailLines(string(b), 5))
	}
	// The agent and its unit.
	if err := copyFile(spec.Agent, filepath.Join(root, "usr/local/bin/shakedown-agent"), 0o755); err != nil {
		return err
	}
	units := map[string]string{"shakedown-agent.service": agentUnit}
	wants := map[string]string{"shakedown-agent.service": "sysinit.target.wants"}
	for n, text := range spec.System.Units {
		units[n] = text
		wants[n] = "multi-user.target.wants"
	}
	for n, text := range units {
		if err := writeFile(filepath.Join(root, "etc/systemd/system", n), []byte(text), 0o644); err != nil {
			return err
		}
		dir := filepath.Join(root, "etc/systemd/system", wants[n])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Symlink("../"+n, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	// The root is mounted read-write by the initramfs; no fsck.
	if err := writeFile(filepath.Join(root, "etc/fstab"), []byte("/dev/vda / ext4 rw,errors=remount-ro 0 0\n"), 0o644); err != nil {
		return err
	}
	if len(spec.Modules) > 0 {
		if err := writeFile(filepath.Join(root, "etc/modules-load.d/shakedown.conf"), []byte(strings.Join(spec.Modules, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	// A machine's own hostname comes from the command line.
	os.Remove(filepath.Join(root, "etc/hostname"))
	if err := passwordlessRoot(filepath.Join(root, "etc/shadow")); err != nil {
		return err
	}
	// The kernel's modules, as the kernel package would install them.
	modulesDir := spec.Kernel.ModulesDir
	mdst := filepath.Join(root, "lib/modules", filepath.Base(modulesDir))
	if err := copyTree(modulesDir, mdst, func(rel string) bool {
		return slices.Contains(skippedModules, rel)
	}); err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	// udev loads drivers through kmod, which reads only the binary
	// indexes (modules.alias.bin, ...) that depmod writes.
	depmod, err := hosttools.Find("depmod")
	if err != nil {
		return err
	}
	if b, err := exec.CommandContext(ctx, depmod, "-b", root, filepath.Base(modulesDir)).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod: %v: %s", err, tailLines(string(b), 5))
	}
	// The machine's files.
	for _, f := range spec.Files {
		if err := placeFile(root, f); err != nil {
			return err
		}
	}
	size := spec.System.SizeMiB
	need, _, err := disk.ContentsSize(root)
	if err != nil {
		return err
	}
	if size == 0 {
		size = disk.AutoSizeMiB(need) + 1024
	} else if int64(size)*mib < need {
		return fmt.Errorf("%w: the root file system needs about %d MiB, DebianSystem.SizeMiB is %d", disk.ErrTooSmall, (need+mib-1)/mib, size)
	}
	// mke2fs -d keeps owners, modes, xattrs (file capabilities) and
	// hard links of the tree; the seed fixes what it would make random,
	// and every inode's times.
	return disk.Ext4{Contents: root, Label: "root", SizeMiB: size, Seed: seed, Epoch: epoch}.Build(out)
}

// passwordlessRoot lets root log in on the serial console without a
// password, for people debugging a machine.
func passwordlessRoot(shadow string) error {
	b, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[0] == "root" {
			lines[i] = "root::" + f[2]
		}
	}
	return os.WriteFile(shadow, []byte(strings.Join(lines, "\n")), 0o640)
}
