package debian

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is content placed in the root file system at an absolute guest
// path without "..": a host file or directory (Host), or bytes (Data).
// Mode 0 means 0644 for Data, and for a host file 0755 if any execute bit
// is set on the host, else 0644, so that the host's umask does not leak
// into the image. A host directory is copied with those modes (0755 for
// its directories) whatever Mode says.
type File struct {
	Guest string
	Host  string
	Data  []byte
	Mode  fs.FileMode
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	os.Remove(path)
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

// copyTree copies a host tree (files, directories, symlinks) to dst,
// leaving out the paths (relative to src) that skip says.
func copyTree(src, dst string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if skip != nil && skip(rel) {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(target, normMode(info.Mode(), 0o755))
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			os.Remove(target)
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(path, target, normMode(info.Mode(), 0o644))
		}
		return nil
	})
}

// normMode is 0755 for anything executable or a directory, else 0644, as
// in the initramfs: the host's umask does not leak into the image.
func normMode(m, def fs.FileMode) fs.FileMode {
	if m.IsDir() || m&0o111 != 0 {
		return 0o755
	}
	return def
}

// placeFile puts a File into the root tree.
func placeFile(root string, f File) error {
	if !filepath.IsAbs(f.Guest) || strings.Contains(f.Guest, "..") {
		return fmt.Errorf("file %s: want an absolute guest path without ..", f.Guest)
	}
	dst := filepath.Join(root, f.Guest)
	if f.Host == "" {
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		return writeFile(dst, f.Data, mode)
	}
	fi, err := os.Stat(f.Host)
	if err != nil {
		return fmt.Errorf("file for %s: %w", f.Guest, err)
	}
	if fi.IsDir() {
		return copyTree(f.Host, dst, nil)
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = normMode(fi.Mode(), 0o644)
	}
	return copyFile(f.Host, dst, mode)
}

// hashFile writes what and the SHA-256 of the file at path to h.
func hashFile(h io.Writer, what, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(h, "%s %x\n", what, fh.Sum(nil))
	return nil
}

// hashGuestFile hashes a File's guest path, mode and content (a host
// tree's names, modes, link targets and contents).
func hashGuestFile(h io.Writer, f File) error {
	fmt.Fprintf(h, "file %q %o\n", f.Guest, f.Mode)
	if f.Host == "" {
		fmt.Fprintf(h, "data %x\n", sha256.Sum256(f.Data))
		return nil
	}
	return filepath.WalkDir(f.Host, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("file for %s: %w", f.Guest, err)
		}
		rel, _ := filepath.Rel(f.Host, path)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "entry %q %v\n", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			link, _ := os.Readlink(path)
			fmt.Fprintf(h, "link %q\n", link)
		case info.Mode().IsRegular():
			return hashFile(h, "content", path)
		}
		return nil
	})
}
