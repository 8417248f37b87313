// Package rundir owns testbed run directories: making one per test under a
// parent, holding it with a flocked lock file while its testbed lives,
// sweeping the directories of processes that were killed, and listing the
// live ones. It imports only the standard library and x/sys.
//
// A process killed outright (SIGKILL, a crash) cannot clean up: its QEMUs
// die with it (PDEATHSIG), but its run directory stays. The lock file is
// how the next testbed tells such a directory from a live one: the kernel
// drops a flock when its holder dies, so a lock file that nobody holds
// marks a directory to remove. A failed test's kept artifacts have no lock
// file and are left alone.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// EnvOutput is the environment variable naming the default parent of run
// directories.
const EnvOutput = "SHAKEDOWN_OUTPUT"

// LockName is the lock file's name in a run directory.
const LockName = ".shakedown.lock"

// maxBase bounds the test-name part of a run directory's name, so that
// socket paths inside it stay short.
const maxBase = 60

// Parent returns dir, or the default parent of run directories:
// $SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown.
func Parent(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv(EnvOutput); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "shakedown")
}

// Dir is a live run directory, locked until Release.
type Dir struct {
	// Path is the directory.
	Path string
	lock *os.File
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Make creates a run directory for the test named name under parent (see
// Parent), locked, after sweeping parent of dead ones.
func Make(parent, name string) (*Dir, error) {
	parent = Parent(parent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("output directory %s: %w (set Options.OutputDir or %s)", parent, err, EnvOutput)
	}
	Sweep(parent)
	base := unsafeChars.ReplaceAllString(name, "_")
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	dir, err := os.MkdirTemp(parent, base+"-")
	if err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	// Lock first, then make the lock visible under its final name, so a
	// sweeper never sees an unlocked lock file of a live testbed.
	f, err := os.CreateTemp(dir, ".lock-*")
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, LockName))
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(dir)
		return nil, fmt.Errorf("output directory lock: %w", err)
	}
	return &Dir{Path: dir, lock: f}, nil
}

// Release unlocks the directory, and removes it when remove is set (a
// passed test's artifacts). A kept directory has no lock file, so no
// sweeper takes it. Releasing twice does nothing.
func (d *Dir) Release(remove bool) {
	if d.lock == nil {
		return
	}
	os.Remove(filepath.Join(d.Path, LockName))
	d.lock.Close()
	d.lock = nil
	if remove {
		os.RemoveAll(d.Path)
	}
}

// Sweep removes the run directories under parent left by processes that
// were killed (their lock file exists but nobody holds it), and returns
// what it removed.
func Sweep(parent string) []string {
	entries, _ := os.ReadDir(parent)
	var removed []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		f, err := os.Open(filepath.Join(dir, LockName))
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(dir)
			removed = append(removed, dir)
		}
		f.Close()
	}
	return removed
}

// Live lists the run directories under parent (see Parent) whose testbed
// is running, in name order.
func Live(parent string) ([]string, error) {
	parent = Parent(parent)
	entries, err := os.ReadDir(parent)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list run directories in %s: %w", parent, err)
	}
	var out []string
	for _, e := range entries {
		if dir := filepath.Join(parent, e.Name()); e.IsDir() && Held(dir) {
			out = append(out, dir)
		}
	}
	return out, nil
}

// Held reports whether a live testbed holds dir's lock.
func Held(dir string) bool {
	f, err := os.Open(filepath.Join(dir, LockName))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
