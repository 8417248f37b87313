// Package ocitest builds the container image tests run in guests: a
// static Go program that prints a greeting, in an image/oci tarball. It
// imports image/oci and the standard library, and only tests import it.
package ocitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shakedown-dev/shakedown/image/oci"
)

// Greeting is what the image's program prints, with a newline.
const Greeting = "hello from a container"

// Hello builds the image as ref (e.g. "example.com/hello:v1") into a
// tarball in a temporary directory of t's, and returns its path. Its
// entrypoint, /bin/hello, prints Greeting.
func Hello(t testing.TB, ref string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\""+Greeting+"\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static program: %v\n%s", err, out)
	}
	tarPath := filepath.Join(dir, "hello.tar")
	if err := oci.BuildFile(tarPath, oci.Image{Ref: ref, Files: map[string]oci.File{"/bin/hello": {Host: bin}},
		Entrypoint: []string{"/bin/hello"}}); err != nil {
		t.Fatal(err)
	}
	return tarPath
}
