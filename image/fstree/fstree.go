// Package fstree defines the neutral list that describes files to place in
// a guest's file system: what a package set resolves to, and what image
// builders (the initramfs, a Debian root disk) consume, so that neither side
// imports the other. It imports only the standard library.
package fstree

import "io/fs"

// Entry is one file, symlink or directory at a guest path, with its mode
// kept as given rather than normalized. Exactly one of Host, Symlink and
// Dir is set; consumers reject anything else.
type Entry struct {
	// Guest is the absolute guest path.
	Guest string
	// Host is the host file whose content a regular file gets.
	Host string
	// Symlink, when set, makes the entry a symbolic link to this target.
	Symlink string
	// Dir makes the entry a directory (for directories that would
	// otherwise not exist because nothing is placed in them).
	Dir bool
	// Mode holds permission bits plus setuid, setgid and sticky (as
	// fs.ModeSetuid etc. or Unix 0o4000 etc.); zero means 0644 for a
	// file and 0755 for a directory. Symlinks are always 0777.
	Mode fs.FileMode
	// Origin says where the entry comes from, for error messages (e.g.
	// "package curl").
	Origin string
}
