package shakedown_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown"
)

// bundleSize is the airgap-like payload of TestDisks: a sparse file that
// reads as 300 MiB, with markers at both ends.
const bundleSize = 300 << 20

func TestDisks(t *testing.T) {
	tb := newTestbed(t)
	bundle := t.TempDir()
	big := filepath.Join(bundle, "images", "bundle.tar")
	os.MkdirAll(filepath.Dir(big), 0o755)
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("HEAD-MARKER")
	f.WriteAt([]byte("TAIL-MARKER"), bundleSize-11)
	f.Close()
	os.WriteFile(filepath.Join(bundle, "manifest.txt"), []byte("bundle v1\n"), 0o644)

	m := tb.Machine("disks", shakedown.MachineConfig{
		Disks: []shakedown.Disk{
			{Name: "data", SizeMiB: 64},
			{Name: "bundle", Contents: bundle, ReadOnly: true},
		},
	})
	if got := m.Succeed("cat /sys/block/vda/serial; echo; cat /sys/block/vdb/serial; echo"); got != "data\nbundle\n" {
		t.Errorf("got serials %q, want data then bundle", got)
	}
	m.Succeed("mke2fs -q /dev/vda && mkdir -p /data && mount /dev/vda /data && echo persisted > /data/f && umount /data")

	m.Succeed("mkdir -p /bundle && mount -o ro /dev/vdb /bundle")
	if got := m.Succeed("cat /bundle/manifest.txt; stat -c %s /bundle/images/bundle.tar; head -c 11 /bundle/images/bundle.tar; echo; tail -c 11 /bundle/images/bundle.tar"); got != fmt.Sprintf("bundle v1\n%d\nHEAD-MARKER\nTAIL-MARKER", bundleSize) {
		t.Errorf("bundle in the guest: got %q", got)
	}
	if out := m.Fail("touch /bundle/x 2>&1"); !strings.Contains(out, "Read-only") {
		t.Errorf("write to the read-only disk: got %q, want a read-only error", out)
	}

	m.Reboot()
	if got := m.Succeed("mkdir -p /data && mount /dev/vda /data && cat /data/f"); got != "persisted\n" {
		t.Errorf("after Reboot got %q, want the file written before", got)
	}
}
