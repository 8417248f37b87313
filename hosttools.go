package shakedown

import "github.com/shakedown-dev/shakedown/internal/hosttools"

// HostTool is a program on the host that some machines or disks need,
// beyond QEMU itself: Name is the program, Package the Debian package that
// provides it, and Need says what needs it. Its Find method returns the
// program's path, searching PATH and then /usr/sbin and /sbin, or an error
// that names the package to install.
type HostTool = hosttools.Tool

// HostTools returns the programs beyond QEMU that some machines or disks
// need: initramfs machines without disks need none of them. `shakedown
// doctor` checks each, and scripts/setup-debian.sh installs them.
func HostTools() []HostTool { return hosttools.All() }
