package shakedown_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/oci"
)

// TestOCIContainerd ships an image tarball built by image/oci, holding a
// static Go binary, into a Debian machine with containerd, imports it with
// ctr and runs it: the issue's "an OCI tarball built by shakedown imports
// into containerd in the guest".
func TestOCIContainerd(t *testing.T) {
	needDebian(t)
	dir := t.TempDir()

	// A tiny static program for the image.
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from a container\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static program: %v\n%s", err, out)
	}
	const ref = "example.com/shakedown/hello:v1"
	tarPath := filepath.Join(dir, "hello.tar")
	if err := oci.BuildFile(tarPath, oci.Image{
		Ref:        ref,
		Files:      map[string]oci.File{"/bin/hello": {Host: bin}},
		Entrypoint: []string{"/bin/hello"},
	}); err != nil {
		t.Fatal(err)
	}

	tb := shakedown.New(t, shakedown.Options{})
	m := tb.Machine("ctr", shakedown.MachineConfig{
		MemoryMiB:   1024,
		BootTimeout: 5 * time.Minute,
		Debian:      &shakedown.DebianSystem{Packages: []string{"containerd", "runc"}},
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
	if got := m.Succeed("ctr -n test run --rm " + ref + " c1"); got != "hello from a container\n" {
		t.Errorf("ctr run: got %q, want the program's greeting", got)
	}
	t.Logf("ran the container after %v", time.Since(began).Round(time.Millisecond))
}
