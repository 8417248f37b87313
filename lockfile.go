package shakedown

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// A machine's LockFile pins its packages for every run and every host, as
// go.sum pins modules: the first build writes it, the test commits it, and
// later builds install exactly what it lists.

// pinnedLock returns the lock in the file at path, checked against the
// packages the spec asks for; nil when there is no file yet.
func pinnedLock(path string, request []string) (*pkgset.Lock, error) {
	l, err := pkgset.ReadLock(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w (delete it to lock afresh)", err)
	}
	if err := checkLockRequest("lock file "+path, l, request); err != nil {
		return nil, err
	}
	return l, nil
}

// keepLock writes the lock a build of machine used to path, which had
// none, for the test to commit.
func (tb *Testbed) keepLock(machine, path string, l *pkgset.Lock) error {
	if err := pkgset.WriteLock(path, l); err != nil {
		return err
	}
	tb.logf("shakedown: %s: wrote lock file %s (commit it to pin these packages)", machine, path)
	return nil
}

// checkLockRequest fails when lock l (what names it) was made for other
// packages than request: it would pin the old set and miss the new.
func checkLockRequest(what string, l *pkgset.Lock, request []string) error {
	want := slices.Compact(slices.Sorted(slices.Values(request)))
	if slices.Equal(l.Request, want) {
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
