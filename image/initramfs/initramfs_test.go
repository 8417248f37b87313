package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/shakedown-dev/shakedown/image/decompress"
)

// fakeModules is a modules directory whose modules.dep lists three
// compressed modules (.ko.xz, .ko.zst, .ko.gz) while testdata holds them
// uncompressed: modulesDir compresses them into a copy.
const fakeModules = "testdata/modules/6.1.0-test"

// entry is one archive member as the test reader sees it.
type entry struct {
	name         string
	mode         uint32 // st_mode, type bits included
	major, minor uint32
	data         string // content, or symlink target
}

func (e entry) String() string {
	return fmt.Sprintf("%s %o %d:%d %q", e.name, e.mode, e.major, e.minor, e.data)
}

// readArchive parses a newc archive (fields per image/cpio; this reader
// is independent of it) into its entries, without the trailer.
func readArchive(t testing.TB, b []byte) []entry {
	t.Helper()
	var out []entry
	field := func(h []byte, i int) uint32 {
		v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d: %v", i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		h := b[off : off+110]
		namesize, size := int(field(h, 11)), int(field(h, 6))
		name := string(b[off+110 : off+110+namesize-1])
		data := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		out = append(out, entry{
			name: name, mode: field(h, 1), major: field(h, 9), minor: field(h, 10),
			data: string(b[data : data+size]),
		})
		off = align(data + size)
	}
}

// build runs Build and returns the archive.
func build(t testing.TB, s Spec) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Build(&buf, s); err != nil {
		t.Fatalf("Build: %v", err)
	}
	return buf.Bytes()
}

// byName indexes entries by name.
func byName(es []entry) map[string]entry {
	m := make(map[string]entry, len(es))
	for _, e := range es {
		m[e.name] = e
	}
	return m
}

// modulesDir copies the fake modules directory into a temporary one and
// compresses the modules that modules.dep lists as compressed, each with
// the tool the kernel's build would use.
func modulesDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-test")
	if err := os.CopyFS(dir, os.DirFS(fakeModules)); err != nil {
		t.Fatal(err)
	}
	compress := func(rel, suffix string, enc func(*bytes.Buffer, []byte) error) {
		t.Helper()
		src := filepath.Join(dir, rel)
		plain, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := enc(&buf, plain); err != nil {
			t.Fatalf("compress %s: %v", rel, err)
		}
		if err := os.Remove(src); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src+suffix, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compress("kernel/drivers/virtio/virtio_ring.ko", ".xz", func(b *bytes.Buffer, p []byte) error {
		// No Go library in the module writes xz: the fixture is made by
		// the real tool (see xzFixture).
		b.Write(xzFixture(t, p))
		return nil
	})
	compress("kernel/drivers/char/hw_random/rng-core.ko", ".zst", func(b *bytes.Buffer, p []byte) error {
		w, err := zstd.NewWriter(b, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
		return w.Close()
	})
	compress("kernel/drivers/char/hw_random/virtio-rng.ko", ".gz", func(b *bytes.Buffer, p []byte) error {
		w := gzip.NewWriter(b)
		if _, err := w.Write(p); err != nil {
			return err
		}
		return w.Close()
	})
	return dir
}

var update = flag.Bool("update", false, "rewrite "+xzModule+" with the host's xz")

// xzModule is virtio_ring.ko of the fake modules compressed with xz as the
// kernel's scripts/Makefile.modinst does: xz --check=crc32
// --lzma2=dict=1MiB (no BCJ filter).
const xzModule = "testdata/virtio_ring.ko.xz"

// xzFixture returns xzModule, which must hold plain (checked with the
// package's own decoder), rewriting it first with -update.
func xzFixture(t testing.TB, plain []byte) []byte {
	t.Helper()
	if *update {
		cmd := exec.Command("xz", "--format=xz", "--check=crc32", "--lzma2=dict=1MiB", "--stdout")
		cmd.Stdin = bytes.NewReader(plain)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz: %v", err)
		}
		if err := os.WriteFile(xzModule, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(xzModule)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decompress.NewReader(bytes.NewReader(b), decompress.XZ)
	if err != nil {
		t.Fatalf("%s: %v", xzModule, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("%s: got %q, %v, want %q (run go test -update)", xzModule, got, err, plain)
	}
	return b
}

func TestModuleClosure(t *testing.T) {
	const (
		virtio    = "kernel/drivers/virtio/virtio.ko"
		ring      = "kernel/drivers/virtio/virtio_ring.ko.xz"
		modern    = "kernel/drivers/virtio/virtio_pci_modern_dev.ko"
		legacy    = "kernel/drivers/virtio/virtio_pci_legacy_dev.ko"
		pci       = "kernel/drivers/virtio/virtio_pci.ko"
		console   = "kernel/drivers/char/virtio_console.ko"
		failover  = "kernel/net/core/failover.ko"
		netFail   = "kernel/drivers/net/net_failover.ko"
		net       = "kernel/drivers/net/virtio_net.ko"
		rngCore   = "kernel/drivers/char/hw_random/rng-core.ko.zst"
		virtioRng = "kernel/drivers/char/hw_random/virtio-rng.ko.gz"
	)
	tests := []struct {
		name  string
		names []string
		want  []string
	}{
		{"none", nil, nil},
		{"leaf", []string{"virtio_ring"}, []string{ring}},
		{"pci pulls its closure, deepest first", []string{"virtio_pci"}, []string{ring, virtio, modern, legacy, pci}},
		{"shared deps once", []string{"virtio_console", "virtio_pci"}, []string{ring, virtio, console, modern, legacy, pci}},
		{"chain", []string{"virtio_net"}, []string{ring, virtio, failover, netFail, net}},
		{"dash and underscore alike", []string{"virtio_rng", "rng_core", "virtio-ring"}, []string{ring, virtio, rngCore, virtioRng}},
		{"suffix and spaces tolerated", []string{" virtio.ko "}, []string{ring, virtio}},
		{"builtin skipped", []string{"virtio_mmio", "crc32c", "virtio"}, []string{ring, virtio}},
		{"repeated name", []string{"virtio", "virtio"}, []string{ring, virtio}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ModuleClosure(fakeModules, tt.names)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestModuleClosureErrors(t *testing.T) {
	tests := []struct {
		name    string
		dep     string // modules.dep content; empty: use fakeModules
		names   []string
		unknown bool
		want    []string
	}{
		{
			name: "typo", names: []string{"virtio_pcx"}, unknown: true,
			want: []string{`module "virtio_pcx"`, "unknown module", filepath.Join(fakeModules, "modules.dep"), "did you mean virtio_pci"},
		},
		{
			name: "all unknown names at once", names: []string{"nope1", "virtio", "vrtio_net"}, unknown: true,
			want: []string{`"nope1"`, `"vrtio_net"`, "did you mean virtio_net"},
		},
		{name: "empty name", names: []string{""}, unknown: true, want: []string{`module name ""`}},
		{name: "no modules.dep", dep: "-", names: []string{"x"}, want: []string{"modules.dep", "depmod", "kmod"}},
		{name: "cycle", dep: "a.ko: b.ko\nb.ko: a.ko\n", names: []string{"a"}, want: []string{"dependency cycle", "a.ko -> b.ko -> a.ko"}},
		{name: "escape", dep: "../../x.ko:\n", names: []string{"x"}, want: []string{"not a relative path inside"}},
		{name: "not a module", dep: "kernel/x.o:\n", names: []string{"x"}, want: []string{"does not end in .ko"}},
		{name: "no colon", dep: "kernel/x.ko\n", names: []string{"x"}, want: []string{`want "module: deps"`, ":1:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeModules
			if tt.dep != "" {
				dir = t.TempDir()
				if tt.dep != "-" {
					if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(tt.dep), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := ModuleClosure(dir, tt.names)
			if err == nil {
				t.Fatal("got no error")
			}
			if got := errors.Is(err, ErrUnknownModule); got != tt.unknown {
				t.Errorf("errors.Is(err, ErrUnknownModule): got %v, want %v", got, tt.unknown)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestBuildModules(t *testing.T) {
	dir := modulesDir(t)
	got := byName(readArchive(t, build(t, Spec{
		ModulesDir: dir,
		Modules:    []string{"virtio_rng", "virtio_pci"},
	})))
	const base = "lib/modules/6.1.0-test/"
	wantOrder := []string{
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/char/hw_random/rng-core.ko",
		"kernel/drivers/char/hw_random/virtio-rng.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
	}
	var list strings.Builder
	for _, p := range wantOrder {
		list.WriteString("/" + base + p + "\n")
		e, ok := got[base+p]
		if !ok {
			t.Errorf("module %s missing from the archive", p)
			continue
		}
		// Compressed or not on the host, the guest gets the plain module.
		want := "fake module " + strings.TrimSuffix(filepath.Base(p), ".ko") + "\n"
		if e.data != want || e.mode != 0o100644 {
			t.Errorf("%s: got mode %o content %q, want mode 100644 content %q", p, e.mode, e.data, want)
		}
	}
	if e := got["etc/shakedown/modules"]; e.data != list.String() {
		t.Errorf("etc/shakedown/modules: got\n%s\nwant\n%s", e.data, list.String())
	}
	wantDep := strings.Join([]string{
		"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_ring.ko:",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko:",
		"kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/char/hw_random/rng-core.ko:",
		"kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/char/hw_random/rng-core.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
	}, "\n") + "\n"
	if e := got[base+"modules.dep"]; e.data != wantDep {
		t.Errorf("trimmed modules.dep: got\n%s\nwant\n%s", e.data, wantDep)
	}
	for name := range got {
		if strings.Contains(name, "unused") || strings.Contains(name, "net") {
			t.Errorf("got %s, a module nobody asked for", name)
		}
	}
}

// fakeBusybox writes a shell script that answers --list-full like busybox,
// so the applet logic is tested without a static busybox on the host.
func fakeBusybox(t testing.TB, applets ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "busybox")
	script := "#!/bin/sh\n[ \"$1\" = --list-full ] || exit 1\ncat <<'EOF'\n" + strings.Join(applets, "\n") + "\nEOF\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeFile creates a host file for a test and returns its path.
func writeFile(t testing.TB, dir, name, content string, mode fs.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// fullSpec has one of everything, with host files under a fresh directory.
func fullSpec(t testing.TB) Spec {
	t.Helper()
	host := t.TempDir()
	tree := filepath.Join(host, "tree")
	writeFile(t, tree, "a.conf", "a=1\n", 0o600)
	writeFile(t, tree, "sub/run.sh", "#!/bin/sh\n", 0o700)
	if err := os.Symlink("sub/run.sh", filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Agent:      writeFile(t, host, "agent", "#!/bin/sh\necho agent\n", 0o700),
		Busybox:    fakeBusybox(t, "bin/sh", "bin/busybox", "sbin/ip", "usr/bin/wget", "linuxrc"),
		ModulesDir: modulesDir(t),
		Modules:    []string{"virtio_console"},
		Files: []File{
			{Guest: "/etc/hostname", Data: []byte("node1\n")},
			{Guest: "/etc/secret", Data: []byte("s"), Mode: 0o600},
			{Guest: "/usr/local/bin/tool", Host: writeFile(t, host, "tool", "tool", 0o750)},
			{Guest: "/opt/data.txt", Host: writeFile(t, host, "data.txt", "data", 0o664)},
			{Guest: "/opt/tree", Host: tree},
			{Guest: "/etc/empty"},
		},
	}
}

// TestBuildLayout lists the whole archive of a Spec with one of
// everything: order, types, modes, device numbers, link targets.
func TestBuildLayout(t *testing.T) {
	got := readArchive(t, build(t, fullSpec(t)))
	const mods = "lib/modules/6.1.0-test"
	want := []entry{
		{name: "bin", mode: 0o40755},
		{name: "bin/busybox", mode: 0o100755, data: "#!/bin/sh\n[ \"$1\" = --list-full ] || exit 1\ncat <<'EOF'\nbin/sh\nbin/busybox\nsbin/ip\nusr/bin/wget\nlinuxrc\nEOF\n"},
		{name: "bin/sh", mode: 0o120777, data: "/bin/busybox"},
		{name: "dev", mode: 0o40755},
		{name: "dev/console", mode: 0o20600, major: 5, minor: 1},
		{name: "dev/null", mode: 0o20666, major: 1, minor: 3},
		{name: "etc", mode: 0o40755},
		{name: "etc/empty", mode: 0o100644},
		{name: "etc/hostname", mode: 0o100644, data: "node1\n"},
		{name: "etc/secret", mode: 0o100600, data: "s"},
		{name: "etc/shakedown", mode: 0o40755},
		{name: "etc/shakedown/modules", mode: 0o100644, data: "/" + mods + "/kernel/drivers/virtio/virtio_ring.ko\n/" + mods + "/kernel/drivers/virtio/virtio.ko\n/" + mods + "/kernel/drivers/char/virtio_console.ko\n"},
		{name: "init", mode: 0o100755, data: "#!/bin/sh\necho agent\n"},
		{name: "lib", mode: 0o40755},
		{name: "lib/modules", mode: 0o40755},
		{name: mods, mode: 0o40755},
		{name: mods + "/kernel", mode: 0o40755},
		{name: mods + "/kernel/drivers", mode: 0o40755},
		{name: mods + "/kernel/drivers/char", mode: 0o40755},
		{name: mods + "/kernel/drivers/char/virtio_console.ko", mode: 0o100644, data: "fake module virtio_console\n"},
		{name: mods + "/kernel/drivers/virtio", mode: 0o40755},
		{name: mods + "/kernel/drivers/virtio/virtio.ko", mode: 0o100644, data: "fake module virtio\n"},
		{name: mods + "/kernel/drivers/virtio/virtio_ring.ko", mode: 0o100644, data: "fake module virtio_ring\n"},
		{name: mods + "/modules.dep", mode: 0o100644, data: "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_ring.ko:\nkernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"},
		{name: "linuxrc", mode: 0o120777, data: "/bin/busybox"},
		{name: "opt", mode: 0o40755},
		{name: "opt/data.txt", mode: 0o100644, data: "data"},
		{name: "opt/tree", mode: 0o40755},
		{name: "opt/tree/a.conf", mode: 0o100644, data: "a=1\n"},
		{name: "opt/tree/link", mode: 0o120777, data: "sub/run.sh"},
		{name: "opt/tree/sub", mode: 0o40755},
		{name: "opt/tree/sub/run.sh", mode: 0o100755, data: "#!/bin/sh\n"},
		{name: "proc", mode: 0o40755},
		{name: "root", mode: 0o40700},
		{name: "run", mode: 0o40755},
		{name: "sbin", mode: 0o40755},
		{name: "sbin/ip", mode: 0o120777, data: "/bin/busybox"},
		{name: "sys", mode: 0o40755},
		{name: "tmp", mode: 0o41777},
		{name: "usr", mode: 0o40755},
		{name: "usr/bin", mode: 0o40755},
		{name: "usr/bin/wget", mode: 0o120777, data: "/bin/busybox"},
		{name: "usr/local", mode: 0o40755},
		{name: "usr/local/bin", mode: 0o40755},
		{name: "usr/local/bin/tool", mode: 0o100755, data: "tool"},
		{name: "usr/sbin", mode: 0o40755},
	}
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w entry
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("entry %d: got %v, want %v", i, g, w)
		}
	}
}

func TestEmptySpec(t *testing.T) {
	got := readArchive(t, build(t, Spec{}))
	var names []string
	for _, e := range got {
		names = append(names, e.name)
	}
	want := []string{"bin", "dev", "dev/console", "dev/null", "etc", "lib", "lib/modules", "proc", "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin"}
	if !slices.Equal(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
}

// A File at an applet's path replaces busybox's symlink, and a File below
// an applet's path turns it into a directory.
func TestFileOverridesApplet(t *testing.T) {
	got := byName(readArchive(t, build(t, Spec{
		Busybox: fakeBusybox(t, "bin/sh", "bin/ls", "sbin/ip"),
		Files: []File{
			{Guest: "/bin/sh", Data: []byte("real shell"), Mode: 0o755},
			{Guest: "/sbin/ip/x", Data: []byte("x")},
		},
	})))
	for _, c := range []struct {
		name string
		mode uint32
		data string
	}{
		{"bin/sh", 0o100755, "real shell"},
		{"bin/ls", 0o120777, "/bin/busybox"},
		{"sbin/ip", 0o40755, ""},
		{"sbin/ip/x", 0o100644, "x"},
	} {
		if e := got[c.name]; e.mode != c.mode || e.data != c.data {
			t.Errorf("%s: got mode %o %q, want mode %o %q", c.name, e.mode, e.data, c.mode, c.data)
		}
	}
}

func TestReproducible(t *testing.T) {
	s := fullSpec(t)
	a, b := build(t, s), build(t, s)
	if !bytes.Equal(a, b) {
		t.Fatal("two Builds of the same Spec differ")
	}
	k1, err := Key(s)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Key(s)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 || len(k1) != 64 {
		t.Fatalf("Key twice: got %q and %q, want the same 64 hex digits", k1, k2)
	}

	// The same content under other host paths keeps both bytes and key.
	moved := fullSpec(t)
	if moved.Agent == s.Agent {
		t.Fatal("fullSpec reused a host path")
	}
	if km, err := Key(moved); err != nil || km != k1 {
		t.Errorf("Key after moving host files: got %q (%v), want %q", km, err, k1)
	}
	if !bytes.Equal(build(t, moved), a) {
		t.Errorf("Build after moving host files differs")
	}

	changes := []struct {
		name   string
		change func(t *testing.T, s *Spec)
	}{
		{"data content", func(t *testing.T, s *Spec) { s.Files[0].Data = []byte("node2\n") }},
		{"data mode", func(t *testing.T, s *Spec) { s.Files[0].Mode = 0o640 }},
		{"guest path", func(t *testing.T, s *Spec) { s.Files[0].Guest = "/etc/hostname2" }},
		{"host file content", func(t *testing.T, s *Spec) {
			writeFile(t, filepath.Dir(s.Agent), "agent", "#!/bin/sh\necho agent v2\n", 0o700)
		}},
		{"host file mode", func(t *testing.T, s *Spec) {
			if err := os.Chmod(s.Files[3].Host, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"host tree content", func(t *testing.T, s *Spec) {
			writeFile(t, s.Files[4].Host, "sub/new", "", 0o644)
		}},
		{"module list", func(t *testing.T, s *Spec) { s.Modules = append(s.Modules, "virtio_pci") }},
		{"module content", func(t *testing.T, s *Spec) {
			writeFile(t, s.ModulesDir, "kernel/drivers/char/virtio_console.ko", "fake module v2", 0o644)
		}},
		{"kernel version", func(t *testing.T, s *Spec) {
			v2 := filepath.Join(filepath.Dir(s.ModulesDir), "6.1.0-test2")
			if err := os.Rename(s.ModulesDir, v2); err != nil {
				t.Fatal(err)
			}
			s.ModulesDir = v2
		}},
		{"busybox applets", func(t *testing.T, s *Spec) { s.Busybox = fakeBusybox(t, "bin/sh") }},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			s := fullSpec(t)
			s.Files = slices.Clone(s.Files)
			c.change(t, &s)
			k, err := Key(s)
			if err != nil {
				t.Fatal(err)
			}
			if k == k1 {
				t.Errorf("got key %s unchanged after changing %s", k, c.name)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	host := t.TempDir()
	plain := writeFile(t, host, "plain", "x", 0o644)
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"relative guest", Spec{Files: []File{{Guest: "etc/x"}}}, []string{`guest path "etc/x" is not absolute`}},
		{"dotdot guest", Spec{Files: []File{{Guest: "/etc/../../x"}}}, []string{`contains ".."`}},
		{"root guest", Spec{Files: []File{{Guest: "/"}}}, []string{"root directory"}},
		{"same guest twice", Spec{Files: []File{{Guest: "/a"}, {Guest: "/b"}, {Guest: "//a"}}}, []string{"files 0 and 2 both place guest path /a"}},
		{"missing host", Spec{Files: []File{{Guest: "/etc/x", Host: "/nonexistent/x"}}}, []string{"guest path /etc/x", "host path /nonexistent/x: no such file"}},
		{"host and data", Spec{Files: []File{{Guest: "/x", Host: plain, Data: []byte("y")}}}, []string{"both Host and Data"}},
		{"mode with type", Spec{Files: []File{{Guest: "/x", Mode: fs.ModeDir | 0o755}}}, []string{"permission bits only"}},
		{"standard dir taken", Spec{Files: []File{{Guest: "/tmp", Data: []byte("x")}}}, []string{"guest path /tmp", "standard directory /tmp"}},
		{"init taken", Spec{Agent: plain, Files: []File{{Guest: "/init", Data: []byte("x")}}}, []string{"guest path /init", "agent " + plain}},
		{"parent is a file", Spec{Files: []File{{Guest: "/a", Data: []byte("x")}, {Guest: "/a/b"}}}, []string{"parent /a is not a directory"}},
		{"missing agent", Spec{Agent: "/nonexistent/agent"}, []string{"agent", "host path /nonexistent/agent: no such file"}},
		{"agent is a dir", Spec{Agent: host}, []string{"not a regular file"}},
		{"modules without dir", Spec{Modules: []string{"virtio"}}, []string{"no ModulesDir"}},
		{"unknown module", Spec{ModulesDir: fakeModules, Modules: []string{"virtio_blk"}}, []string{`module "virtio_blk": unknown module`}},
		{"module file missing", Spec{ModulesDir: fakeModules, Modules: []string{"virtio_ring"}}, []string{"module virtio_ring", "no such file"}},
		{"busybox fails", Spec{Busybox: plain}, []string{"busybox", "--list-full"}},
	}
	if ls, err := exec.LookPath("ls"); err == nil && isDynamic(ls) {
		tests = append(tests, struct {
			name string
			spec Spec
			want []string
		}{"dynamic agent", Spec{Agent: ls}, []string{"dynamically linked", "static build"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Build(new(bytes.Buffer), tt.spec)
			if err == nil {
				t.Fatal("Build: got no error")
			}
			_, kerr := Key(tt.spec)
			if kerr == nil {
				t.Error("Key: got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// isDynamic tells whether checkStatic would refuse path.
func isDynamic(path string) bool {
	return errors.Is(checkStatic(path, "test", ""), errDynamic)
}

// TestCpioList checks that GNU cpio lists what Build wrote, symlinks and
// device nodes included.
func TestCpioList(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed (Debian package cpio)")
	}
	cmd := exec.Command(cpio, "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(build(t, fullSpec(t)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	listed := make(map[string]string) // name -> "mode links owner group" [+ " -> target"]
	for _, l := range lines {
		f := strings.Fields(l)
		name := f[len(f)-1]
		extra := ""
		if len(f) > 3 && f[len(f)-2] == "->" {
			name = f[len(f)-3]
			extra = " -> " + f[len(f)-1]
		}
		head := strings.Join(f[:4], " ")
		if f[0][0] == 'c' {
			head += " " + f[4] + " " + f[5]
		}
		listed[name] = head + extra
	}
	for name, want := range map[string]string{
		"init":                  "-rwxr-xr-x 1 root root",
		"bin/busybox":           "-rwxr-xr-x 1 root root",
		"bin/sh":                "lrwxrwxrwx 1 root root -> /bin/busybox",
		"usr/bin/wget":          "lrwxrwxrwx 1 root root -> /bin/busybox",
		"dev/console":           "crw------- 1 root root 5, 1",
		"dev/null":              "crw-rw-rw- 1 root root 1, 3",
		"tmp":                   "drwxrwxrwt 2 root root",
		"root":                  "drwx------ 2 root root",
		"opt/tree/link":         "lrwxrwxrwx 1 root root -> sub/run.sh",
		"etc/shakedown/modules": "-rw-r--r-- 1 root root",
		"lib/modules/6.1.0-test/kernel/drivers/virtio/virtio_ring.ko": "-rw-r--r-- 1 root root",
	} {
		if got := listed[name]; got != want {
			t.Errorf("cpio -itv %s: got %q, want %q", name, got, want)
		}
	}
	if len(lines) != 46 {
		t.Errorf("cpio listed %d entries, want 46", len(lines))
	}
}

// TestRealBusybox builds with the host's busybox when it is static, as
// Debian's busybox-static (and on some hosts busybox) is.
func TestRealBusybox(t *testing.T) {
	bb, err := exec.LookPath("busybox")
	if err != nil || isDynamic(bb) {
		t.Skip("no static busybox on this host (Debian package busybox-static)")
	}
	got := byName(readArchive(t, build(t, Spec{Busybox: bb})))
	for _, name := range []string{"bin/sh", "bin/mount", "sbin/modprobe"} {
		if e, ok := got[name]; !ok || e.data != "/bin/busybox" || e.mode != 0o120777 {
			t.Errorf("%s: got %v (present %v), want a symlink to /bin/busybox", name, e, ok)
		}
	}
	t.Logf("%s: %d entries", bb, len(got))
}

// realModulesDirs finds unpacked kernels: $SHAKEDOWN_TEST_MODULES_DIR,
// then any lib/modules/VERSION with a modules.dep under the shakedown
// cache (where the kernel fetcher keeps them).
func realModulesDirs(t *testing.T) []string {
	t.Helper()
	if d := os.Getenv("SHAKEDOWN_TEST_MODULES_DIR"); d != "" {
		return []string{d}
	}
	var roots []string
	if d := os.Getenv("SHAKEDOWN_CACHE"); d != "" {
		roots = append(roots, d)
	}
	if d, err := os.UserCacheDir(); err == nil {
		roots = append(roots, filepath.Join(d, "shakedown"))
	}
	var dirs []string
	for _, root := range roots {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && d.Name() == "kernel" && filepath.Base(filepath.Dir(filepath.Dir(p))) == "modules" {
				return fs.SkipDir // the module tree itself: thousands of files
			}
			if d.Name() == "modules.dep" {
				dirs = append(dirs, filepath.Dir(p))
			}
			return nil
		})
	}
	return dirs
}

// TestRealKernel resolves the modules a shakedown machine needs against a
// real kernel, when one has been fetched, and reports the load order.
func TestRealKernel(t *testing.T) {
	dirs := realModulesDirs(t)
	if len(dirs) == 0 {
		t.Skip("no kernel with modules.dep under the shakedown cache; set SHAKEDOWN_TEST_MODULES_DIR to one")
	}
	wanted := []string{"virtio_pci", "virtio_console", "virtio_net", "virtio_blk", "virtio_rng"}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			order, err := ModuleClosure(dir, wanted)
			if err != nil {
				t.Fatal(err)
			}
			compressed := 0
			for i, p := range order {
				t.Logf("%2d %s", i+1, p)
				if compressionOf(p) != decompress.None {
					compressed++
				}
			}
			t.Logf("%s: %d modules for %v, %d compressed", dir, len(order), wanted, compressed)
			got := byName(readArchive(t, build(t, Spec{ModulesDir: dir, Modules: wanted})))
			list := got["etc/shakedown/modules"].data
			if n := strings.Count(list, "\n"); n != len(order) {
				t.Errorf("etc/shakedown/modules has %d lines, want %d", n, len(order))
			}
			for _, line := range strings.Fields(list) {
				e, ok := got[strings.TrimPrefix(line, "/")]
				if !ok || !strings.HasPrefix(e.data, "\x7fELF") {
					t.Errorf("%s: not an uncompressed ELF module in the archive", line)
				}
			}
		})
	}
}
