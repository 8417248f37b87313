// Package deb owns Debian binary packages: resolving names to exact versions,
// downloading, verifying and caching .deb files, and unpacking them; it
// imports image/cache and image/decompress only, and runs the host's apt tools.
package deb

import (
	"context"
	"errors"
)

// Sentinel errors that callers branch on, checked with errors.Is.
var (
	// ErrUnknownPackage means no package list has the requested name or
	// version, or the name is virtual and has no installable candidate.
	ErrUnknownPackage = errors.New("unknown package")
	// ErrHashMismatch means a downloaded or cached .deb does not have the
	// SHA-256 its package index promises.
	ErrHashMismatch = errors.New("sha256 mismatch")
	// ErrNoApt means the host has no apt-cache or apt-get binaries.
	ErrNoApt = errors.New("apt is not installed")
	// ErrNoPackageLists means apt has never downloaded package lists
	// (`apt-get update` was not run), so nothing can be resolved.
	ErrNoPackageLists = errors.New("apt has no package lists")
	// ErrMirrorUnreachable means a download got no answer from the mirror:
	// the connection was refused or timed out, or its name did not
	// resolve. Packages already cached can still be used.
	ErrMirrorUnreachable = errors.New("mirror unreachable")
)

// Package is one exact binary package version as a Debian index publishes it.
type Package struct {
	Name         string // e.g. "busybox-static"
	Version      string // full version with epoch, e.g. "1:1.35.0-4+deb12u1+b1"
	Architecture string // e.g. "amd64" or "all"
	Filename     string // path in the archive, e.g. "pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb"
	SHA256       string // lowercase hex digest of the .deb file
	Size         int64  // size of the .deb file in bytes
	Depends      string // the Depends field as published, unparsed
	PreDepends   string // the Pre-Depends field as published, unparsed
	// Essential is the Essential field: dpkg assumes such packages are
	// always installed, so other packages need not depend on them.
	Essential bool
}

// String returns name=version, the form Resolve accepts for an exact version.
func (p Package) String() string { return p.Name + "=" + p.Version }

// Source resolves package names and downloads package files.
type Source interface {
	// Resolve returns the candidate version of name, or the exact version
	// when name has the form "name=version".
	Resolve(ctx context.Context, name string) (Package, error)
	// Download stores the .deb of p in dstDir and returns its path. It need
	// not verify the hash: Fetch does.
	Download(ctx context.Context, p Package, dstDir string) (path string, err error)
}
