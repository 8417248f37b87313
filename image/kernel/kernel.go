// Package kernel owns the Linux kernels that machines boot: Debian's
// linux-image-amd64 resolved, fetched, unpacked and cached, or one the user
// brings; it imports image/cache, image/deb and image/decompress.
package kernel

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"pault.ag/go/debian/dependency"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
)

// MetaPackage is the Debian package that always depends on the current
// amd64 kernel package.
const MetaPackage = "linux-image-amd64"

// CacheKind is the cache kind of unpacked kernels, keyed by the SHA-256 of
// the kernel .deb.
const CacheKind = "kernel"

// vmlinuxName is the file name of the extracted ELF kernel in a cache entry.
const vmlinuxName = "vmlinux"

// Kernel is an unpacked kernel: the image to boot and its modules.
type Kernel struct {
	// Version is the kernel release, e.g. "6.1.0-56-amd64": the name of
	// the lib/modules directory and what `uname -r` prints in the guest.
	Version string
	// BzImage is the path of the bootable compressed kernel
	// (boot/vmlinuz-VERSION).
	BzImage string
	// Vmlinux is the path of the uncompressed ELF kernel extracted from
	// BzImage, which QEMU boots directly through its PVH entry point (much
	// faster under TCG); "" if there is none (no PVH note, or an unknown
	// compression): boot BzImage then.
	Vmlinux string
	// ModulesDir is the path of lib/modules/VERSION, with modules.dep; ""
	// if the kernel has no modules.
	ModulesDir string
	// Package is the Debian package the kernel came from; zero for a
	// kernel from FromDir.
	Package deb.Package
}

// Debian returns Debian's current amd64 kernel: it resolves MetaPackage
// through src to the versioned package it depends on (e.g.
// linux-image-6.1.0-56-amd64 (= 6.1.192-2)), and on a cache miss fetches it
// with deb.FetchPackage, unpacks boot/vmlinuz-*, boot/config-* and
// lib/modules/**, writes modules.dep (see Depmod) and extracts the vmlinux,
// all into the cache entry (kind "kernel", key the .deb's SHA-256). A cache
// hit costs the two resolves and a few stats.
func Debian(ctx context.Context, c *cache.Cache, src deb.Source) (*Kernel, error) {
	meta, err := src.Resolve(ctx, MetaPackage)
	if err != nil {
		return nil, fmt.Errorf("debian kernel: %w", err)
	}
	name, err := versionedDep(meta)
	if err != nil {
		return nil, fmt.Errorf("debian kernel: %w", err)
	}
	p, err := src.Resolve(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("debian kernel: %w", err)
	}
	dir, err := c.Dir(CacheKind, p.SHA256, func(tmp string) error {
		debPath, err := deb.FetchPackage(ctx, c, src, p)
		if err != nil {
			return err
		}
		return unpack(debPath, tmp)
	})
	if err != nil {
		return nil, fmt.Errorf("debian kernel %s: %w", p, err)
	}
	k, err := load(dir)
	if err != nil {
		return nil, fmt.Errorf("debian kernel %s: cache entry %s: %w (remove it to unpack again)", p, dir, err)
	}
	k.Package = p
	return k, nil
}

// versionedDep returns "name=version" (or "name") of the linux-image-*
// package that the meta package depends on.
func versionedDep(meta deb.Package) (string, error) {
	d, err := dependency.Parse(meta.Depends)
	if err != nil {
		return "", fmt.Errorf("%s: parse Depends %q: %w", meta, meta.Depends, err)
	}
	for _, rel := range d.Relations {
		for _, pos := range rel.Possibilities {
			if !strings.HasPrefix(pos.Name, "linux-image-") || pos.Name == meta.Name {
				continue
			}
			if pos.Version != nil && pos.Version.Operator == "=" {
				return pos.Name + "=" + pos.Version.Number, nil
			}
			return pos.Name, nil
		}
	}
	return "", fmt.Errorf("%s depends on no linux-image-* package (Depends: %q): is it the kernel meta package?", meta, meta.Depends)
}

// unpack fills a kernel cache entry at dir from the kernel .deb.
func unpack(debPath, dir string) error {
	keep := func(p string) bool {
		// Newer Debian kernels ship their modules under usr/lib/modules.
		return strings.HasPrefix(p, "boot/vmlinuz-") || strings.HasPrefix(p, "boot/config-") ||
			strings.HasPrefix(p, "lib/modules/") || strings.HasPrefix(p, "usr/lib/modules/")
	}
	if err := deb.Extract(debPath, dir, keep); err != nil {
		return err
	}
	// Normalize usr/lib/modules to lib/modules so the entry has one layout.
	usrMods := filepath.Join(dir, "usr/lib/modules")
	if _, err := os.Stat(usrMods); err == nil {
		if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
			return err
		}
		if err := os.Rename(usrMods, filepath.Join(dir, "lib/modules")); err != nil {
			return fmt.Errorf("move usr/lib/modules: %w", err)
		}
		os.RemoveAll(filepath.Join(dir, "usr"))
	}
	version, err := moduleVersion(dir)
	if err != nil {
		return err
	}
	if err := Depmod(filepath.Join(dir, "lib/modules", version)); err != nil {
		return err
	}
	bz, err := os.ReadFile(filepath.Join(dir, "boot", "vmlinuz-"+version))
	if err != nil {
		return fmt.Errorf("package has no kernel image for %s: %w", version, err)
	}
	// Without a usable vmlinux the machine boots the bzImage, slower but
	// correct, so a failed extraction does not fail the kernel.
	if vmlinux, err := ExtractVmlinux(bz); err == nil {
		if err := os.WriteFile(filepath.Join(dir, vmlinuxName), vmlinux, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// moduleVersion returns the name of the one directory in dir/lib/modules.
func moduleVersion(dir string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "lib/modules"))
	if err != nil {
		return "", fmt.Errorf("no lib/modules: %w", err)
	}
	var versions []string
	for _, e := range ents {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 {
		return "", fmt.Errorf("got kernel versions %v in lib/modules, want one", versions)
	}
	return versions[0], nil
}

// load describes the unpacked kernel in a cache entry.
func load(dir string) (*Kernel, error) {
	version, err := moduleVersion(dir)
	if err != nil {
		return nil, err
	}
	k := &Kernel{
		Version:    version,
		BzImage:    filepath.Join(dir, "boot", "vmlinuz-"+version),
		ModulesDir: filepath.Join(dir, "lib/modules", version),
	}
	if _, err := os.Stat(k.BzImage); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.dep")); err != nil {
		return nil, err
	}
	if p := filepath.Join(dir, vmlinuxName); fileExists(p) {
		k.Vmlinux = p
	}
	return k, nil
}

// FromDir describes a kernel the user brings, laid out as a kernel package,
// a root file system, a NixOS kernel output or a kernel build tree: the
// bzImage is dir/bzImage, dir/boot/vmlinuz-*, dir/vmlinuz or
// dir/arch/x86/boot/bzImage, the modules dir/lib/modules/VERSION (optional),
// and dir/vmlinux is used as Vmlinux when it is an ELF with a PVH note.
// Paths are used as they are: nothing is copied, extracted or written, so
// a ModulesDir without modules.dep stays so (run Depmod on a copy).
func FromDir(dir string) (*Kernel, error) {
	bz, err := findBzImage(dir)
	if err != nil {
		return nil, err
	}
	k := &Kernel{BzImage: bz}
	if v, err := moduleVersion(dir); err == nil {
		k.Version = v
		k.ModulesDir = filepath.Join(dir, "lib/modules", v)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("kernel in %s: %w", dir, err)
	}
	if k.Version == "" {
		b, err := os.ReadFile(bz)
		if err != nil {
			return nil, fmt.Errorf("kernel in %s: %w", dir, err)
		}
		k.Version = versionFromBzImage(b)
	}
	if p := filepath.Join(dir, vmlinuxName); fileExists(p) && isPVHELF(p) {
		k.Vmlinux = p
	}
	return k, nil
}

func findBzImage(dir string) (string, error) {
	for _, p := range []string{"bzImage", "vmlinuz", "arch/x86/boot/bzImage"} {
		if p = filepath.Join(dir, p); fileExists(p) {
			return p, nil
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	switch len(m) {
	case 1:
		return m[0], nil
	case 0:
		return "", fmt.Errorf("no kernel in %s: want a bzImage, vmlinuz, boot/vmlinuz-VERSION or arch/x86/boot/bzImage there", dir)
	}
	return "", fmt.Errorf("kernel in %s: several boot/vmlinuz-* (%s): remove all but one, or point at a directory with one", dir, strings.Join(m, ", "))
}

// isPVHELF reports whether the file at path is an ELF with a PVH entry
// note. It reads the headers and notes only, not the whole file.
func isPVHELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return false
	}
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_NOTE || prog.Filesz > 1<<20 {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			continue
		}
		if hasNote(b, ef.ByteOrder, "Xen", xenElfnotePhys32Entry) {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
