package shakedown

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"

	"github.com/pkg/sftp"

	"github.com/shakedown-dev/shakedown/qemu"
)

// CopyTo copies a host file or directory (recursively) to guestPath,
// creating parent directories; modes are kept.
func (m *Machine) CopyTo(hostPath, guestPath string) {
	m.t().Helper()
	if err := m.copyTo(hostPath, guestPath); err != nil {
		m.fatal(fmt.Errorf("copy %s to %s: %w", hostPath, guestPath, err))
	}
}

func (m *Machine) copyTo(hostPath, guestPath string) error {
	agent, _, err := m.session()
	if err != nil {
		return err
	}
	sc, err := agent.SFTP()
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

// CopyFrom copies a guest file or directory (recursively) to hostPath; a
// relative hostPath is taken inside the test's artifacts directory, so the
// copy is kept with the logs when the test fails. It returns the host path.
func (m *Machine) CopyFrom(guestPath, hostPath string) string {
	m.t().Helper()
	if !filepath.IsAbs(hostPath) {
		hostPath = filepath.Join(m.tb.dir, hostPath)
	}
	if err := m.copyFrom(guestPath, hostPath); err != nil {
		m.fatal(fmt.Errorf("copy %s from the guest to %s: %w", guestPath, hostPath, err))
	}
	return hostPath
}

func (m *Machine) copyFrom(guestPath, hostPath string) error {
	agent, _, err := m.session()
	if err != nil {
		return err
	}
	sc, err := agent.SFTP()
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

var screenshotName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Screenshot saves the machine's display as a PNG named name (".png" is
// added) in the artifacts directory and returns its path.
func (m *Machine) Screenshot(name string) string {
	m.t().Helper()
	p, err := m.screenshot(name)
	if err != nil {
		m.fatal(fmt.Errorf("screenshot %s: %w", name, err))
	}
	return p
}

func (m *Machine) screenshot(name string) (string, error) {
	if !screenshotName.MatchString(name) {
		return "", fmt.Errorf("name %q: use letters, digits, dot, dash and underscore", name)
	}
	if _, _, err := m.session(); err != nil {
		return "", err
	}
	m.mu.Lock()
	proc := m.proc
	m.mu.Unlock()
	ppm := filepath.Join(m.tb.dir, "."+m.name+"-"+name+".ppm")
	png := filepath.Join(m.tb.dir, m.name+"-"+name+".png")
	ctx, cancel := context.WithTimeout(m.tb.ctx, m.wait())
	defer cancel()
	if err := proc.QMP.Screendump(ctx, ppm); err != nil {
		return "", err
	}
	defer os.Remove(ppm)
	if err := qemu.PPMToPNG(ppm, png); err != nil {
		return "", err
	}
	return png, nil
}
