package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestDepmod(t *testing.T) {
	dir := t.TempDir()
	enc, _ := zstd.NewWriter(nil)
	mods := map[string][]byte{
		// failover <- net_failover <- virtio_net -> virtio_ring, virtio
		"kernel/net/core/failover.ko":           makeKO("name=failover", "depends="),
		"kernel/drivers/net/net_failover.ko":    makeKO("name=net_failover", "depends=failover"),
		"kernel/drivers/net/virtio_net.ko":      makeKO("alias=virtio:d00000001v*", "depends=net_failover,virtio_ring,virtio", "name=virtio_net"),
		"kernel/drivers/virtio/virtio_ring.ko":  makeKO("depends=virtio"), // no name=: from the file name
		"kernel/drivers/virtio/virtio.ko.zst":   enc.EncodeAll(makeKO("name=virtio", "depends="), nil),
		"kernel/fs/ext4/ext4.ko.gz":             gzipBytes(t, makeKO("name=ext4", "softdep=pre: crc32c", "depends=jbd2,missing_builtin")),
		"kernel/fs/jbd2/jbd2.ko":                makeKO("name=jbd2"),
		"kernel/drivers/block/virtio-blk.ko":    makeKO("depends=virtio-ring,virtio", "alias=virtio:d00000002v*"),
		"kernel/drivers/block/not-a-module.txt": []byte("ignored"),
	}
	for p, b := range mods {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Depmod(dir); err != nil {
		t.Fatalf("Depmod: %v", err)
	}
	dep := readLines(t, filepath.Join(dir, "modules.dep"))
	wantDep := map[string]string{
		"kernel/drivers/net/virtio_net.ko":     "kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko.zst",
		"kernel/drivers/block/virtio-blk.ko":   "kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko.zst",
		"kernel/fs/ext4/ext4.ko.gz":            "kernel/fs/jbd2/jbd2.ko",
		"kernel/net/core/failover.ko":          "",
		"kernel/drivers/virtio/virtio.ko.zst":  "",
		"kernel/drivers/virtio/virtio_ring.ko": "kernel/drivers/virtio/virtio.ko.zst",
	}
	got := map[string]string{}
	for _, l := range dep {
		mod, deps, _ := strings.Cut(l, ":")
		got[mod] = strings.TrimSpace(deps)
	}
	if len(dep) != 8 {
		t.Errorf("got %d lines in modules.dep, want 8:\n%s", len(dep), strings.Join(dep, "\n"))
	}
	for mod, want := range wantDep {
		if got[mod] != want {
			t.Errorf("modules.dep %s: got deps %q, want %q", mod, got[mod], want)
		}
	}
	alias := strings.Join(readLines(t, filepath.Join(dir, "modules.alias")), "\n")
	for _, want := range []string{"alias virtio:d00000001v* virtio_net", "alias virtio:d00000002v* virtio_blk"} {
		if !strings.Contains(alias, want) {
			t.Errorf("modules.alias: got\n%s\nwant a line %q", alias, want)
		}
	}
	softdep := strings.Join(readLines(t, filepath.Join(dir, "modules.softdep")), "\n")
	if want := "softdep ext4 pre: crc32c"; !strings.Contains(softdep, want) {
		t.Errorf("modules.softdep: got\n%s\nwant a line %q", softdep, want)
	}
}

func TestDepmodBadModule(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.ko"), []byte("not an elf"), 0o644)
	err := Depmod(dir)
	if err == nil || !strings.Contains(err.Error(), "broken.ko") {
		t.Errorf("got %v, want an error naming broken.ko", err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}
