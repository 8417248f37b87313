package shakedown

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// A machine's LockFile pins its packages for every run and every host, as
// go.sum pins modules: the first build writes it, the test commits it, and
// later builds install exactly what it lists.

// readLockFile reads the lock file at path; nil, nil when there is none.
func readLockFile(path string) (*pkgset.Lock, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	l, err := pkgset.ParseLock(b)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w (delete it to lock afresh)", path, err)
	}
	return l, nil
}

// checkLockRequest fails when lock l (what names it) was made for other
// packages than request: it would pin the old set and miss the new.
func checkLockRequest(what string, l *pkgset.Lock, request []string) error {
	want := slices.Compact(slices.Sorted(slices.Values(request)))
	if slices.Equal(l.Request, want) || len(l.Request) == 0 && len(want) == 0 {
		return nil
	}
	var added, removed []string
	for _, p := range want {
		if !slices.Contains(l.Request, p) {
			added = append(added, p)
		}
	}
	for _, p := range l.Request {
		if !slices.Contains(want, p) {
			removed = append(removed, p)
		}
	}
	var diff []string
	if len(added) > 0 {
		diff = append(diff, "the spec adds "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		diff = append(diff, "the spec no longer has "+strings.Join(removed, ", "))
	}
	return fmt.Errorf("%s is for other packages: %s (delete it, or build without it, to lock afresh)", what, strings.Join(diff, "; "))
}

// writeLockFile writes l to path atomically: a run killed halfway leaves
// no half a lock that the next run would trust.
func writeLockFile(path string, l *pkgset.Lock) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	_, err = f.Write(l.Marshal())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write lock file %s: %w", path, err)
	}
	return nil
}
