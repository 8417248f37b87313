package pkgset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/deb"
)

// LockVersion is the format version of lock files this package writes.
const LockVersion = 1

// Lock records the exact Debian packages an image was built from: with the
// same spec and lock, a build fetches the same .debs (checked by SHA-256)
// and writes a byte-identical image. It is plain JSON, sorted, so that it
// diffs well in review.
type Lock struct {
	// Version is LockVersion.
	Version int `json:"version"`
	// Request is the package names the spec asked for, sorted.
	Request []string `json:"request,omitempty"`
	// Packages is every package resolved for the image, sorted by name:
	// those asked for, their dependencies, and the kernel and busybox.
	Packages []Locked `json:"packages"`
}

// Locked is one package of a Lock. Depends and Pre-Depends are kept so that
// a locked build resolves the same dependencies without apt.
type Locked struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	SHA256       string `json:"sha256"`
	Size         int64  `json:"size"`
	Filename     string `json:"filename,omitempty"`
	Depends      string `json:"depends,omitempty"`
	PreDepends   string `json:"pre_depends,omitempty"`
	Essential    bool   `json:"essential,omitempty"`
}

// NewLock returns the lock of a build that asked for request and resolved
// used.
func NewLock(request []string, used []deb.Package) *Lock {
	l := &Lock{Version: LockVersion, Request: slices.Sorted(slices.Values(request)), Packages: []Locked{}}
	l.Request = slices.Compact(l.Request)
	for _, p := range used {
		l.Packages = append(l.Packages, Locked{
			Name: p.Name, Version: p.Version, Architecture: p.Architecture, SHA256: p.SHA256,
			Size: p.Size, Filename: p.Filename, Depends: p.Depends, PreDepends: p.PreDepends,
			Essential: p.Essential,
		})
	}
	slices.SortFunc(l.Packages, func(a, b Locked) int { return strings.Compare(a.Name, b.Name) })
	return l
}

// Pins returns the lock's packages as deb.Packages, for deb.NewPinned.
func (l *Lock) Pins() []deb.Package {
	if l == nil {
		return nil
	}
	out := make([]deb.Package, 0, len(l.Packages))
	for _, p := range l.Packages {
		out = append(out, deb.Package{
			Name: p.Name, Version: p.Version, Architecture: p.Architecture, Filename: p.Filename,
			SHA256: p.SHA256, Size: p.Size, Depends: p.Depends, PreDepends: p.PreDepends,
			Essential: p.Essential,
		})
	}
	return out
}

// Find returns the locked package called name.
func (l *Lock) Find(name string) (Locked, bool) {
	if l == nil {
		return Locked{}, false
	}
	i, ok := slices.BinarySearchFunc(l.Packages, name, func(p Locked, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return Locked{}, false
	}
	return l.Packages[i], true
}

// Marshal returns the lock as indented JSON ending in a newline.
func (l *Lock) Marshal() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep "libc6 (>= 2.34)" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(l); err != nil {
		panic(err) // only strings, ints and bools: cannot fail
	}
	return b.Bytes()
}

// ParseLock parses and checks a lock file's content.
func ParseLock(data []byte) (*Lock, error) {
	var l Lock
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("parse lock: %w", err)
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("parse lock: version %d, want %d", l.Version, LockVersion)
	}
	for i, p := range l.Packages {
		if p.Name == "" || p.Version == "" || len(p.SHA256) != 64 {
			return nil, fmt.Errorf("parse lock: package %d (%q): want name, version and a 64-digit sha256", i, p.Name)
		}
		if i > 0 && l.Packages[i-1].Name >= p.Name {
			return nil, fmt.Errorf("parse lock: packages not sorted by name or %s twice", p.Name)
		}
	}
	return &l, nil
}

// WriteLock writes l to path, making its directory if need be, through a
// temporary file renamed into place: a run killed halfway leaves no half a
// lock that the next build would trust.
func WriteLock(path string, l *Lock) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write lock: %w", err)
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
		return fmt.Errorf("write lock %s: %w", path, err)
	}
	return nil
}

// ReadLock reads the lock file at path. A missing file is an error that
// wraps fs.ErrNotExist.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	l, err := ParseLock(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}
