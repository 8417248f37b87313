package shakedown

// HostTool is a program on the host that some machines or disks need,
// beyond QEMU itself.
type HostTool struct {
	// Name is the program; Package is the Debian package that provides it.
	Name, Package string
	// Need says what needs it.
	Need string
}

// HostTools returns the programs beyond QEMU that some machines or disks
// need: initramfs machines without disks need none of them. `shakedown
// doctor` checks each, and scripts/setup-debian.sh installs them.
func HostTools() []HostTool {
	return []HostTool{
		{"qemu-img", "qemu-utils", "disks from existing images, Debian machines"},
		{"mke2fs", "e2fsprogs", "disks from host directories, Debian machines"},
		{"dumpe2fs", "e2fsprogs", "reproducible disks, Debian machines"},
		{"debugfs", "e2fsprogs", "reproducible disks, Debian machines"},
		{"mmdebstrap", "mmdebstrap", "Debian machines"},
		{"depmod", "kmod", "Debian machines"},
		{"tar", "tar", "Debian machines"},
	}
}

// Find returns the path of the program, searching PATH and then /usr/sbin
// and /sbin (a user's PATH may lack them), or an error that names the
// package to install.
func (t HostTool) Find() (string, error) { return findTool(t.Name, t.Package) }
