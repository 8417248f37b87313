// Package lockfile owns the checks of the lock files that pin a machine's
// packages for every run and every host, as go.sum pins modules; it
// imports image/pkgset and the standard library.
//
// The first build writes the lock, the test commits it, and later builds
// install exactly what it lists, as long as it was made for the packages
// the spec asks for now.
package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// Read returns the lock in the file at path, checked against the packages
// the spec asks for (see CheckRequest); nil, and no error, when there is
// no file yet.
func Read(path string, request []string) (*pkgset.Lock, error) {
	l, err := pkgset.ReadLock(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w (delete it to lock afresh)", err)
	}
	if err := CheckRequest("lock file "+path, l, request); err != nil {
		return nil, err
	}
	return l, nil
}

// CheckRequest fails when lock l (what names it, in the error) was made
// for other packages than request: it would pin the old set and miss the
// new.
func CheckRequest(what string, l *pkgset.Lock, request []string) error {
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
