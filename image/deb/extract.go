package deb

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Extract unpacks into dstDir the files of the .deb's data archive whose
// path (cleaned, without a leading "./", e.g. "bin/busybox") keep accepts; a
// nil keep accepts all. It preserves directories, symlinks, hard links,
// permission bits and modification times, not owners. dstDir is created if
// needed. Entries that would land outside dstDir, directly or through a
// symlink, are an error: a .deb is data, not a trusted script.
func Extract(debPath, dstDir string, keep func(path string) bool) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	tr, closeData, err := dataTar(f, fi.Size())
	if err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	defer closeData()
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	root, err := os.OpenRoot(dstDir)
	if err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	defer root.Close()
	if err := extractTar(tr, root, keep); err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	return nil
}

// extractTar writes the kept entries of tr below root.
func extractTar(tr *tar.Reader, root *os.Root, keep func(string) bool) error {
	type dirMode struct {
		name string
		hdr  *tar.Header
	}
	// Directory modes are applied last, deepest first, so that a read-only
	// directory does not stop its own contents from being written.
	var dirs []dirMode
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read data archive: %w", err)
		}
		name, err := cleanPath(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" || keep != nil && !keep(name) {
			continue
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", name, err)
			}
			dirs = append(dirs, dirMode{name, hdr})
		case tar.TypeReg:
			if err := writeFile(root, name, tr, hdr); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := replace(root, name); err != nil {
				return err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeLink:
			target, err := cleanPath(hdr.Linkname)
			if err != nil {
				return err
			}
			if keep != nil && !keep(target) {
				return fmt.Errorf("%s: hard link to %s, which keep rejects: keep both paths", name, target)
			}
			if err := replace(root, name); err != nil {
				return err
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		default:
			// Devices and fifos cannot be made without root and Debian
			// packages do not ship them; skip rather than fail.
		}
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := root.Chmod(d.name, mode(d.hdr)); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		if err := root.Chtimes(d.name, d.hdr.ModTime, d.hdr.ModTime); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
	}
	return nil
}

func writeFile(root *os.Root, name string, r io.Reader, hdr *tar.Header) error {
	if err := replace(root, name); err != nil {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	// Chmod through the open file: a path-based chmod could be redirected
	// by a symlink swapped in meanwhile.
	if err := f.Chmod(mode(hdr)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

// replace removes a non-directory at name, as tar does when an archive
// overwrites a path, so that writing never follows an old symlink.
func replace(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s: a directory is in the way of a file", name)
	}
	if err := root.Remove(name); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// mode returns the permission and special bits of a tar entry.
func mode(hdr *tar.Header) fs.FileMode {
	return hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// cleanPath turns an archive name like "./usr/bin/x" into "usr/bin/x" and
// rejects names that climb out of the archive's root.
func cleanPath(name string) (string, error) {
	p := path.Clean("/" + strings.TrimPrefix(name, "./"))
	if strings.Contains(name, "..") {
		// path.Clean("/" + ...) already pins ".." at the root; refuse such
		// names anyway instead of silently writing somewhere else.
		for _, part := range strings.Split(name, "/") {
			if part == ".." {
				return "", fmt.Errorf("%s: path leaves the archive root", name)
			}
		}
	}
	return strings.TrimPrefix(p, "/"), nil
}
