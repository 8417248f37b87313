// Package oci builds container image tarballs from files and static
// binaries, so that a test can ship images into an airgapped machine
// (`ctr image import`, `docker load`, k0s's airgap bundles). The tarballs
// are reproducible: the same image gives the same bytes. It imports nothing
// of shakedown's.
package oci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one file of an image: bytes, or a host file such as a static
// binary, read when the image is built.
type File struct {
	Data []byte
	Host string
	// Mode 0 means 0755 for a host file with any execute bit and 0644
	// otherwise.
	Mode fs.FileMode
}

// Image describes a single-layer image for linux/amd64.
type Image struct {
	// Ref names the image in the tarball, e.g. "example.com/app:v1"; a
	// name without a tag gets ":latest".
	Ref string
	// Files are keyed by absolute path in the image; parent directories
	// are added.
	Files map[string]File
	// Entrypoint and Cmd are the image's defaults; Env holds NAME=value.
	Entrypoint, Cmd, Env []string
	// WorkingDir is the default working directory; "" means /.
	WorkingDir string
}

// epoch is the timestamp of every file and of the image: reproducible,
// and ctr accepts it.
var epoch = time.Unix(0, 0).UTC()

// Build writes img as a docker-archive tarball (the format of `docker
// save`, which `ctr image import` and `docker load` read) to w.
func Build(w io.Writer, img Image) error {
	tag, err := name.NewTag(img.Ref)
	if err != nil {
		return fmt.Errorf("oci image %q: %w", img.Ref, err)
	}
	layerTar, err := layer(img.Files)
	if err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("oci image %s: layer: %w", img.Ref, err)
	}
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			Env:        img.Env,
			WorkingDir: img.WorkingDir,
		},
	})
	if err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	out, err := mutate.Append(base, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "shakedown image/oci"}})
	if err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	if err := tarball.Write(tag, out, w); err != nil {
		return fmt.Errorf("oci image %s: write: %w", img.Ref, err)
	}
	return nil
}

// BuildFile writes img's tarball to path, through a temporary name so that
// a failed build leaves nothing behind.
func BuildFile(path string, img Image) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = Build(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// layer builds the uncompressed tar of files, sorted, with parent
// directories, root-owned, at epoch.
func layer(files map[string]File) ([]byte, error) {
	dirs := map[string]bool{}
	var paths []string
	for p := range files {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("file %q: want a clean absolute path", p)
		}
		paths = append(paths, p)
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for p := range files {
		if dirs[p] {
			return nil, fmt.Errorf("file %s: also a parent directory of another file", p)
		}
	}
	var all []string
	for d := range dirs {
		all = append(all, d)
	}
	all = append(all, paths...)
	slices.Sort(all)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range all {
		rel := strings.TrimPrefix(p, "/")
		if dirs[p] {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
			continue
		}
		f := files[p]
		data, mode := f.Data, f.Mode
		if f.Host != "" {
			b, err := os.ReadFile(f.Host)
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", p, err)
			}
			data = b
			if mode == 0 {
				mode = 0o644
				if st, err := os.Stat(f.Host); err == nil && st.Mode()&0o111 != 0 {
					mode = 0o755
				}
			}
		}
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
