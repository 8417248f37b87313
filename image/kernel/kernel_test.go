package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
)

func TestVersionedDep(t *testing.T) {
	tests := []struct {
		depends string
		want    string
	}{
		{"linux-image-6.1.0-56-amd64 (= 6.1.192-2)", "linux-image-6.1.0-56-amd64=6.1.192-2"},
		{"linux-image-6.12.48+deb13-amd64 (= 6.12.48-1)", "linux-image-6.12.48+deb13-amd64=6.12.48-1"},
		{"initramfs-tools | linux-initramfs-tool, linux-image-6.1.0-9-amd64", "linux-image-6.1.0-9-amd64"},
	}
	for _, tt := range tests {
		got, err := versionedDep(deb.Package{Name: MetaPackage, Version: "1", Depends: tt.depends})
		if err != nil || got != tt.want {
			t.Errorf("versionedDep(%q): got %q, %v, want %q", tt.depends, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "libc6 (>= 2.36)", "linux-image-amd64"} {
		if got, err := versionedDep(deb.Package{Name: MetaPackage, Version: "1", Depends: bad}); err == nil {
			t.Errorf("versionedDep(%q): got %q, want an error", bad, got)
		}
	}
}

// fakeSource serves a meta package and a synthetic kernel package.
type fakeSource struct {
	pkgs      map[string]deb.Package
	debs      map[string][]byte
	downloads int
}

func (s *fakeSource) Resolve(ctx context.Context, name string) (deb.Package, error) {
	p, ok := s.pkgs[name]
	if !ok {
		return deb.Package{}, fmt.Errorf("resolve %s: %w", name, deb.ErrUnknownPackage)
	}
	return p, nil
}

func (s *fakeSource) Download(ctx context.Context, p deb.Package, dstDir string) (string, error) {
	s.downloads++
	path := filepath.Join(dstDir, p.Name+"_"+p.Version+"_amd64.deb")
	return path, os.WriteFile(path, s.debs[p.Name], 0o644)
}

func newFakeKernelSource(t *testing.T, version string, bz []byte) *fakeSource {
	t.Helper()
	name := "linux-image-" + version
	mdir := "./lib/modules/" + version + "/"
	data := makeDeb(t, []debFile{
		{"./", nil},
		{"./boot/", nil},
		{"./boot/vmlinuz-" + version, bz},
		{"./boot/config-" + version, []byte("CONFIG_PVH=y\n")},
		{"./boot/System.map-" + version, []byte("ffffffff81000000 T _text\n")},
		{mdir, nil},
		{mdir + "kernel/drivers/virtio/virtio.ko", makeKO("name=virtio")},
		{mdir + "kernel/drivers/virtio/virtio_pci.ko", makeKO("name=virtio_pci", "depends=virtio")},
		{mdir + "modules.order", []byte("kernel/drivers/virtio/virtio.ko\n")},
		{"./usr/share/doc/" + name + "/copyright", []byte("GPL-2")},
	})
	sum := sha256.Sum256(data)
	return &fakeSource{
		pkgs: map[string]deb.Package{
			MetaPackage: {Name: MetaPackage, Version: "1", Depends: name + " (= 1)"},
			name + "=1": {Name: name, Version: "1", Architecture: "amd64",
				SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))},
		},
		debs: map[string][]byte{name: data},
	}
}

func TestDebianFakeSource(t *testing.T) {
	const version = "6.1.0-99-amd64"
	tests := []struct {
		name        string
		payload     []byte
		wantVmlinux bool
	}{
		{"pvh", gzipBytes(t, pvhELF()), true},
		{"no pvh", gzipBytes(t, tinyELF("GNU", 3)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			bz := makeBzImage(tt.payload, bzImageOptions{version: version})
			src := newFakeKernelSource(t, version, bz)
			k, err := Debian(context.Background(), c, src)
			if err != nil {
				t.Fatalf("Debian: %v", err)
			}
			if k.Version != version {
				t.Errorf("got version %q, want %q", k.Version, version)
			}
			if b, _ := os.ReadFile(k.BzImage); !bytes.Equal(b, bz) {
				t.Errorf("BzImage %s: got %d bytes, want the %d-byte test image", k.BzImage, len(b), len(bz))
			}
			if (k.Vmlinux != "") != tt.wantVmlinux {
				t.Errorf("got Vmlinux %q, want present=%v", k.Vmlinux, tt.wantVmlinux)
			}
			if dep, _ := os.ReadFile(filepath.Join(k.ModulesDir, "modules.dep")); !strings.Contains(string(dep), "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko") {
				t.Errorf("modules.dep: got %q, want virtio_pci depending on virtio", dep)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(k.BzImage), "..", "usr")); err == nil {
				t.Errorf("got usr/ in the kernel entry, want only boot/, lib/modules/ and vmlinux")
			}
			if k.Package.Name != "linux-image-"+version {
				t.Errorf("got package %+v, want linux-image-%s", k.Package, version)
			}
			k2, err := Debian(context.Background(), c, src)
			if err != nil {
				t.Fatalf("Debian again: %v", err)
			}
			if *k2 != *k || src.downloads != 1 {
				t.Errorf("second call: got %+v after %d downloads, want %+v after 1", k2, src.downloads, k)
			}
		})
	}
}

func TestFromDir(t *testing.T) {
	bz := makeBzImage(gzipBytes(t, pvhELF()), bzImageOptions{version: "6.6.6-custom"})
	write := func(t *testing.T, dir string, files map[string][]byte) {
		for p, b := range files {
			p = filepath.Join(dir, p)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name                   string
		files                  map[string][]byte
		bzImage, version, mods string
		vmlinux                string
	}{
		{"debian root", map[string][]byte{"boot/vmlinuz-6.1.0-1-amd64": bz, "lib/modules/6.1.0-1-amd64/modules.dep": nil},
			"boot/vmlinuz-6.1.0-1-amd64", "6.1.0-1-amd64", "lib/modules/6.1.0-1-amd64", ""},
		{"nixos kernel", map[string][]byte{"bzImage": bz, "lib/modules/6.6.6/modules.dep": nil},
			"bzImage", "6.6.6", "lib/modules/6.6.6", ""},
		{"build tree", map[string][]byte{"arch/x86/boot/bzImage": bz, "vmlinux": pvhELF()},
			"arch/x86/boot/bzImage", "6.6.6-custom", "", "vmlinux"},
		{"vmlinux without pvh", map[string][]byte{"bzImage": bz, "vmlinux": tinyELF("GNU", 3)},
			"bzImage", "6.6.6-custom", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tt.files)
			k, err := FromDir(dir)
			if err != nil {
				t.Fatalf("FromDir: %v", err)
			}
			join := func(p string) string {
				if p == "" {
					return ""
				}
				return filepath.Join(dir, p)
			}
			want := Kernel{Version: tt.version, BzImage: join(tt.bzImage), ModulesDir: join(tt.mods), Vmlinux: join(tt.vmlinux)}
			if *k != want {
				t.Errorf("got %+v\nwant %+v", *k, want)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := FromDir(dir); err == nil || !strings.Contains(err.Error(), "no kernel in "+dir) {
			t.Errorf("got %v, want an error saying there is no kernel in %s", err, dir)
		}
	})
	t.Run("two kernels", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, map[string][]byte{"boot/vmlinuz-1": bz, "boot/vmlinuz-2": bz})
		if _, err := FromDir(dir); err == nil || !strings.Contains(err.Error(), "several") {
			t.Errorf("got %v, want an error about several kernels", err)
		}
	})
}

// TestDebianIntegration fetches and unpacks Debian's real kernel (~70 MB).
func TestDebianIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads a ~70 MB kernel package; skipped with -short")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not found: this test needs a Debian host")
	}
	ctx := context.Background()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	k, err := Debian(ctx, c, deb.Apt{})
	if err != nil {
		t.Fatalf("Debian: %v", err)
	}
	cold := time.Since(start)
	start = time.Now()
	k2, err := Debian(ctx, c, deb.Apt{})
	if err != nil {
		t.Fatalf("Debian (warm): %v", err)
	}
	warm := time.Since(start)
	t.Logf("kernel %s from %s; cold %v, warm %v", k.Version, k.Package, cold.Round(time.Millisecond), warm.Round(time.Millisecond))
	if *k2 != *k {
		t.Errorf("warm call: got %+v, want %+v", k2, k)
	}
	if k.Vmlinux == "" {
		t.Fatalf("got no Vmlinux, want the ELF extracted from %s", k.BzImage)
	}
	if !isPVHELF(k.Vmlinux) {
		t.Errorf("%s: want an ELF with the PVH note", k.Vmlinux)
	}
	if f, err := elf.Open(k.Vmlinux); err != nil || f.Machine != elf.EM_X86_64 {
		t.Errorf("%s: got %v, want an x86-64 ELF", k.Vmlinux, err)
	}
	dep, err := os.ReadFile(filepath.Join(k.ModulesDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kernel/drivers/virtio/", "kernel/drivers/net/virtio_net.ko"} {
		if !bytes.Contains(dep, []byte(want)) {
			t.Errorf("modules.dep: want an entry for %s", want)
		}
	}
	if fi, err := os.Stat(filepath.Join(k.ModulesDir, "kernel/drivers/virtio")); err != nil || !fi.IsDir() {
		t.Errorf("kernel/drivers/virtio: got %v, want a directory", err)
	}
}
