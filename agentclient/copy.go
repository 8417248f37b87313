package agentclient

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/pkg/sftp"
)

// CopyTo copies a host file or directory (recursively) to guestPath over
// SFTP, creating parent directories; modes and symlinks are kept.
func (c *Client) CopyTo(hostPath, guestPath string) error {
	sc, err := c.SFTP()
	if err != nil {
		return err
	}
	if err := sc.MkdirAll(path.Dir(guestPath)); err != nil {
		return err
	}
	return filepath.Walk(hostPath, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(hostPath, p)
		dst := path.Join(guestPath, filepath.ToSlash(rel))
		switch {
		case fi.IsDir():
			if err := sc.MkdirAll(dst); err != nil {
				return err
			}
			return sc.Chmod(dst, fi.Mode().Perm())
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			sc.Remove(dst)
			return sc.Symlink(target, dst)
		case fi.Mode().IsRegular():
			return putFile(sc, p, dst, fi.Mode().Perm())
		}
		return fmt.Errorf("%s: not a regular file, directory or symlink", p)
	})
}

func putFile(sc *sftp.Client, src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := sc.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return sc.Chmod(dst, mode)
}

// CopyFrom copies a guest file or directory (recursively) to hostPath
// over SFTP, creating its parent directory; modes and symlinks are kept.
func (c *Client) CopyFrom(guestPath, hostPath string) error {
	sc, err := c.SFTP()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(hostPath), 0o755); err != nil {
		return err
	}
	w := sc.Walk(guestPath)
	for w.Step() {
		if err := w.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(guestPath, w.Path())
		dst := filepath.Join(hostPath, rel)
		fi := w.Stat()
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(dst, fi.Mode().Perm()|0o700); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := sc.ReadLink(w.Path())
			if err != nil {
				return err
			}
			os.Remove(dst)
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := getFile(sc, w.Path(), dst, fi.Mode().Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}

func getFile(sc *sftp.Client, src, dst string, mode os.FileMode) error {
	in, err := sc.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// WriteFile writes data to a guest file, replacing it.
func (c *Client) WriteFile(guestPath string, data []byte) error {
	sc, err := c.SFTP()
	if err != nil {
		return err
	}
	f, err := sc.Create(guestPath)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
