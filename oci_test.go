package shakedown_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/ocitest"
)

// TestOCIContainerd ships an image tarball built by image/oci, holding a
// static Go binary, into a Debian machine with containerd, imports it with
// ctr and runs it: the issue's "an OCI tarball built by shakedown imports
// into containerd in the guest".
func TestOCIContainerd(t *testing.T) {
	needDebian(t)
	const ref = "example.com/shakedown/hello:v1"
	tarPath := ocitest.Hello(t, ref)

	tb := shakedown.New(t, shakedown.Options{})
	m := tb.Machine("ctr", shakedown.MachineConfig{
		MemoryMiB:   1024,
		BootTimeout: 5 * time.Minute,
		// curl and ca-certificates besides: the set of stub/web/webnet's
		// guest test and examples/reference.star's node, one Debian image
		// for the three.
		Debian: &shakedown.DebianSystem{Packages: []string{"containerd", "runc", "curl", "ca-certificates"}},
	})
	began := time.Now()
	m.Start()
	t.Logf("booted to the agent in %v (%s)", time.Since(began).Round(time.Millisecond), tb.Accel())
	m = m.WithTimeout(3 * time.Minute)
	m.WaitForUnit("containerd")
	m.WaitForOpenUnixSocket("/run/containerd/containerd.sock")
	t.Logf("containerd active after %v", time.Since(began).Round(time.Millisecond))

	m.CopyTo(tarPath, "/root/hello.tar")
	m.Succeed("ctr -n test image import /root/hello.tar")
	if ls := m.Succeed("ctr -n test image ls -q"); !strings.Contains(ls, ref) {
		t.Fatalf("ctr image ls: got %q, want %s", ls, ref)
	}
	t.Logf("imported after %v", time.Since(began).Round(time.Millisecond))
	if got := m.Succeed("ctr -n test run --rm " + ref + " c1"); got != ocitest.Greeting+"\n" {
		t.Errorf("ctr run: got %q, want the program's greeting", got)
	}
	t.Logf("ran the container after %v", time.Since(began).Round(time.Millisecond))
}
