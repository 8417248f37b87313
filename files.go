package shakedown

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
)

// CopyTo copies a host file or directory (recursively) to guestPath,
// creating parent directories; modes are kept.
func (m *Machine) CopyTo(hostPath, guestPath string) {
	m.t().Helper()
	m.must(m.CopyToE(hostPath, guestPath))
}

// CopyToE is CopyTo returning its error.
func (m *Machine) CopyToE(hostPath, guestPath string) error {
	agent, _, err := m.session()
	if err == nil {
		err = agent.CopyTo(hostPath, guestPath)
	}
	if err != nil {
		return m.wrap(fmt.Errorf("copy %s to %s: %w", hostPath, guestPath, err))
	}
	return nil
}

// CopyFrom copies a guest file or directory (recursively) to hostPath; a
// relative hostPath is taken inside the test's artifacts directory, so the
// copy is kept with the logs when the test fails. It returns the host path.
func (m *Machine) CopyFrom(guestPath, hostPath string) string {
	m.t().Helper()
	p, err := m.CopyFromE(guestPath, hostPath)
	m.must(err)
	return p
}

// CopyFromE is CopyFrom returning its error.
func (m *Machine) CopyFromE(guestPath, hostPath string) (string, error) {
	if !filepath.IsAbs(hostPath) {
		hostPath = filepath.Join(m.tb.dir, hostPath)
	}
	agent, _, err := m.session()
	if err == nil {
		err = agent.CopyFrom(guestPath, hostPath)
	}
	if err != nil {
		return "", m.wrap(fmt.Errorf("copy %s from the guest to %s: %w", guestPath, hostPath, err))
	}
	return hostPath, nil
}

var screenshotName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Screenshot saves the machine's display as a PNG named name (".png" is
// added) in the artifacts directory and returns its path.
func (m *Machine) Screenshot(name string) string {
	m.t().Helper()
	p, err := m.ScreenshotE(name)
	m.must(err)
	return p
}

// ScreenshotE is Screenshot returning its error.
func (m *Machine) ScreenshotE(name string) (string, error) {
	p, err := m.screenshot(name)
	if err != nil {
		return "", m.wrap(fmt.Errorf("screenshot %s: %w", name, err))
	}
	return p, nil
}

func (m *Machine) screenshot(name string) (string, error) {
	if !screenshotName.MatchString(name) {
		return "", fmt.Errorf("%w: name %q: use letters, digits, dot, dash and underscore", ErrInvalid, name)
	}
	_, run, err := m.session()
	if err != nil {
		return "", err
	}
	png := filepath.Join(m.tb.dir, m.name+"-"+name+".png")
	ctx, cancel := context.WithTimeout(run, m.wait())
	defer cancel()
	return png, m.current().Screenshot(ctx, png)
}
