package oci_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shakedown-dev/shakedown/image/oci"
)

func TestBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	os.WriteFile(bin, []byte("\x7fELF static binary"), 0o755)
	img := oci.Image{
		Ref:        "example.com/hello:v1",
		Files:      map[string]oci.File{"/usr/bin/hello": {Host: bin}, "/etc/hello.conf": {Data: []byte("greeting=hi\n")}},
		Entrypoint: []string{"/usr/bin/hello"},
		Env:        []string{"A=1"},
	}
	var b1, b2 bytes.Buffer
	if err := oci.Build(&b1, img); err != nil {
		t.Fatal(err)
	}
	if err := oci.Build(&b2, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("two builds of the same image differ")
	}
	// The tarball carries manifest.json, as `ctr image import` and
	// `docker load` expect of a docker archive.
	var names []string
	tr := tar.NewReader(bytes.NewReader(b1.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "manifest.json") {
		t.Errorf("got entries %q, want a manifest.json", names)
	}

	tag, _ := name.NewTag("example.com/hello:v1")
	got, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b1.Bytes())), nil }, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !reflect.DeepEqual(cf.Config.Entrypoint, img.Entrypoint) || !reflect.DeepEqual(cf.Config.Env, img.Env) {
		t.Errorf("got config %s/%s entrypoint %q env %q", cf.OS, cf.Architecture, cf.Config.Entrypoint, cf.Config.Env)
	}
	layers, err := got.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("got %d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var entries []string
	tr = tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		entries = append(entries, h.Name+" "+os.FileMode(h.Mode).String())
	}
	want := []string{"etc/ -rwxr-xr-x", "etc/hello.conf -rw-r--r--", "usr/ -rwxr-xr-x", "usr/bin/ -rwxr-xr-x", "usr/bin/hello -rwxr-xr-x"}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("got layer %q, want %q", entries, want)
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		img  oci.Image
		want string
	}{
		{"bad ref", oci.Image{Ref: "UPPER/case"}, "oci image \"UPPER/case\""},
		{"relative path", oci.Image{Ref: "a:b", Files: map[string]oci.File{"bin/x": {}}}, `file "bin/x": want a clean absolute path`},
		{"missing host file", oci.Image{Ref: "a:b", Files: map[string]oci.File{"/x": {Host: "/nonexistent"}}}, "file /x: open /nonexistent"},
		{"file and dir", oci.Image{Ref: "a:b", Files: map[string]oci.File{"/x": {}, "/x/y": {}}}, "file /x: also a parent directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := oci.Build(io.Discard, tt.img)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	dst := filepath.Join(t.TempDir(), "img.tar")
	if err := oci.BuildFile(dst, oci.Image{Ref: "a:b", Files: map[string]oci.File{"/x": {Host: "/nonexistent"}}}); err == nil {
		t.Error("BuildFile with a missing file succeeded")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a failed BuildFile left its file")
	}
}
