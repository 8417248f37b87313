package shakedown

import (
	"github.com/shakedown-dev/shakedown/image/bootfiles"
	"github.com/shakedown-dev/shakedown/internal/record"
)

// Event is one report on the slow work before a machine answers: building
// its image and booting it (see bootfiles.Event for its fields).
// Options.Progress and ImageOptions.Progress receive them, for a live
// display such as the CLI's status line. A boot ends with StepUp, which is
// reported once, done, when the machine answers.
type Event = bootfiles.Event

// Steps reported in Event.Step, in the order a cold boot goes through them.
const (
	// StepKernel resolves Debian's kernel package and, on a cache miss,
	// downloads and unpacks it.
	StepKernel = bootfiles.StepKernel
	// StepAgent builds the guest agent (once per process).
	StepAgent = bootfiles.StepAgent
	// StepBusybox resolves and fetches busybox-static.
	StepBusybox = bootfiles.StepBusybox
	// StepPackages resolves, fetches and unpacks MachineConfig.Packages
	// and their dependencies; only reported when there are some.
	StepPackages = bootfiles.StepPackages
	// StepInitramfs hashes the image's contents and, on a cache miss,
	// writes the initramfs.
	StepInitramfs = bootfiles.StepInitramfs
	// StepRootfs builds a Debian system's root file system with
	// mmdebstrap, on a cache miss (with a lock, after fetching its .debs).
	StepRootfs = bootfiles.StepRootfs
	// StepDisk makes a Debian system's root disk image, on a cache miss.
	StepDisk = bootfiles.StepDisk
	// StepBoot runs from QEMU's start until the agent answers.
	StepBoot = record.StepBoot
	// StepUp is the last event of a boot: the machine answers commands.
	StepUp = record.StepUp
)

// DownloadStepPrefix begins the Step of a package download, followed by
// the package's name.
const DownloadStepPrefix = bootfiles.DownloadStepPrefix
