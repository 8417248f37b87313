package shakedown

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/shakedown-dev/shakedown/image/busybox"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/initramfs"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
)

// baseModules are what every initramfs machine loads: PCI virtio, the
// serial port the agent speaks on, and the entropy source.
var baseModules = []string{"virtio_pci", "virtio_console", "virtio_rng"}

// bootFiles are what QEMU boots: a kernel and an initramfs.
type bootFiles struct {
	kernel, initrd string
}

// The kernel, busybox and agent are the same for every machine of a
// process; resolving them costs apt look-ups and a go build, so once per
// process and cache is enough.
var shared struct {
	mu      sync.Mutex
	kernels map[string]*kernel.Kernel
	busybox map[string]string
}

func (tb *Testbed) debianKernel(ctx context.Context) (*kernel.Kernel, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if k := shared.kernels[tb.cache.Root]; k != nil {
		return k, nil
	}
	k, err := kernel.Debian(ctx, tb.cache, deb.Apt{})
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if shared.kernels == nil {
		shared.kernels = map[string]*kernel.Kernel{}
	}
	shared.kernels[tb.cache.Root] = k
	return k, nil
}

func (tb *Testbed) busybox(ctx context.Context) (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if p := shared.busybox[tb.cache.Root]; p != "" {
		return p, nil
	}
	p, err := busybox.Fetch(ctx, tb.cache, deb.Apt{})
	if err != nil {
		return "", err
	}
	if shared.busybox == nil {
		shared.busybox = map[string]string{}
	}
	shared.busybox[tb.cache.Root] = p
	return p, nil
}

// bootFiles resolves and builds (or finds in the cache) what cfg boots.
func (tb *Testbed) bootFiles(ctx context.Context, cfg MachineConfig) (bootFiles, error) {
	var bf bootFiles
	modulesDir := cfg.ModulesDir
	if cfg.Kernel != "" {
		if _, err := os.Stat(cfg.Kernel); err != nil {
			return bf, fmt.Errorf("kernel: %w", err)
		}
		bf.kernel = cfg.Kernel
	} else {
		k, err := tb.debianKernel(ctx)
		if err != nil {
			return bf, err
		}
		bf.kernel = k.Vmlinux
		if bf.kernel == "" {
			bf.kernel = k.BzImage
		}
		modulesDir = k.ModulesDir
	}
	if cfg.Initrd != "" {
		if _, err := os.Stat(cfg.Initrd); err != nil {
			return bf, fmt.Errorf("initrd: %w", err)
		}
		bf.initrd = cfg.Initrd
		return bf, nil
	}
	agent, err := agentbuild.Path(ctx, filepath.Join(tb.cache.Root, "agent-build"))
	if err != nil {
		return bf, err
	}
	bb, err := tb.busybox(ctx)
	if err != nil {
		return bf, err
	}
	spec := initramfs.Spec{Agent: agent, Busybox: bb}
	if modulesDir != "" {
		spec.ModulesDir = modulesDir
		spec.Modules = append(append([]string(nil), baseModules...), cfg.Modules...)
		if len(cfg.Networks) > 0 {
			spec.Modules = append(spec.Modules, "virtio_net")
		}
	} else if len(cfg.Modules) > 0 {
		return bf, fmt.Errorf("modules %v wanted but the kernel has no modules directory: set MachineConfig.ModulesDir", cfg.Modules)
	}
	for _, f := range cfg.Files {
		spec.Files = append(spec.Files, initramfs.File{Guest: f.Guest, Host: f.Host, Data: f.Data, Mode: f.Mode})
	}
	key, err := initramfs.Key(spec)
	if err != nil {
		return bf, fmt.Errorf("initramfs: %w", err)
	}
	bf.initrd, err = tb.cache.File("initramfs", key, func(f *os.File) error {
		return initramfs.Build(f, spec)
	})
	if err != nil {
		return bf, fmt.Errorf("initramfs: %w", err)
	}
	return bf, nil
}
