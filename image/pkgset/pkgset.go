// Package pkgset owns the Debian packages of an image: resolving names and
// their dependencies to exact versions, fetching and unpacking them,
// choosing which of their files go in (with the shared-library closure of
// every ELF program), and the lock file that pins all of it. It resolves
// into a neutral list of entries (fstree.Entry) that any image builder
// consumes, and imports image/cache, image/deb, image/elfdeps and
// image/fstree, never a builder.
//
// What goes in: every package asked for and every package in its Depends
// and Pre-Depends closure contributes all its files and directories except
// documentation (/usr/share/doc, man, info, locale, lintian, bug and
// doc-base), so that data files and dlopen()ed plugins of libraries are
// there (libmagic's magic database, libsasl2's modules). Essential packages
// reached only as dependencies (perl-base, dpkg, ...), which every Debian
// system has and which would otherwise replace busybox's tools, contribute
// only the shared libraries that the closure needs. Then, for every x86-64
// ELF program and library in the image, DT_NEEDED is resolved as Debian's
// loader does (DT_RPATH, DT_RUNPATH, /lib/x86_64-linux-gnu,
// /usr/lib/x86_64-linux-gnu, /lib, /usr/lib) against those files; a
// library found nowhere is an error naming the program and the library.
//
// What does not happen: maintainer scripts do not run, so there are no
// update-alternatives links, no users from adduser, no ld.so.cache (the
// loader searches its default directories instead) and no generated
// configuration. Paths are kept as packages ship them (Debian 12 packages
// still use /lib and /bin as real directories), and a package's file at a
// busybox applet's path replaces the applet.
package pkgset

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"pault.ag/go/debian/dependency"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/elfdeps"
	"github.com/shakedown-dev/shakedown/image/fstree"
)

// TreeKind is the cache kind of unpacked packages, one directory per .deb
// keyed by its SHA-256, without the excluded documentation. Change the
// name when the exclusions change.
const TreeKind = "deb-tree"

// excluded are the directories whose contents no image takes.
var excluded = []string{
	"usr/share/doc", "usr/share/doc-base", "usr/share/man", "usr/share/info",
	"usr/share/locale", "usr/share/lintian", "usr/share/bug",
}

// Scope is how much of a package goes into the image.
type Scope int

const (
	// All files except documentation.
	All Scope = iota
	// Libraries is only the shared libraries the ELF closure needs.
	Libraries
)

func (s Scope) String() string {
	if s == Libraries {
		return "libraries"
	}
	return "all"
}

// Member is one package of a Set.
type Member struct {
	deb.Package
	// Scope is what of the package the image takes.
	Scope Scope
	// Requested is whether the spec named it (rather than a dependency).
	Requested bool
	// Via is the chain of packages that pulled a dependency in, the
	// requested one first; empty for requested packages.
	Via []string
	// Tree is the host directory it is unpacked in (in the cache).
	Tree string
	// Files counts the entries (files and symlinks) it put in the image.
	Files int
}

// Set is the resolved, fetched and unpacked packages of an image, and the
// entries they put in it.
type Set struct {
	// Members are the packages, sorted by name.
	Members []Member
	// Entries are the image entries, sorted by guest path: what an image
	// builder places (initramfs.Spec.Entries).
	Entries []fstree.Entry
	// Programs and Libraries count the x86-64 ELF executables and
	// shared libraries among Entries.
	Programs, Libraries int
}

// Resolve resolves names ("curl" or "curl=7.88.1-10+deb12u5") and their
// Depends and Pre-Depends, recursively, to exact packages through src. Of
// alternatives ("a | b") it takes a pinned one if src is a *deb.Pinned
// that has one, else the first one src resolves. Version constraints are
// not checked: what apt offers as candidates is taken to be consistent, as
// apt-get install would. Errors name the package and, for a dependency,
// the chain that pulled it in.
func Resolve(ctx context.Context, src deb.Source, names []string) ([]Member, error) {
	pinned, _ := src.(*deb.Pinned)
	byName := map[string]*Member{}
	type want struct {
		name string   // what to resolve, possibly name=version
		alts []string // alternatives, for dependencies
		via  []string
	}
	var queue []want
	for _, n := range names {
		queue = append(queue, want{name: n})
	}
	for len(queue) > 0 {
		// Resolve one breadth-first level at a time, prefetching its names
		// in one apt run.
		if pf, ok := src.(deb.Prefetcher); ok {
			var batch []string
			for _, w := range queue {
				if len(w.alts) > 0 {
					batch = append(batch, w.alts[0])
				} else {
					batch = append(batch, w.name)
				}
			}
			pf.Prefetch(ctx, batch)
		}
		level := queue
		queue = nil
		for _, w := range level {
			var p deb.Package
			var err error
			if len(w.alts) == 0 {
				if p, err = src.Resolve(ctx, w.name); err != nil {
					return nil, fmt.Errorf("package %s: %w", w.name, err)
				}
			} else {
				if p, err = resolveAlternatives(ctx, src, pinned, w.alts, byName); err != nil {
					return nil, fmt.Errorf("package %s (dependency of %s): %w", strings.Join(w.alts, " | "), strings.Join(w.via, " → "), err)
				}
			}
			if m, ok := byName[p.Name]; ok {
				if len(w.alts) == 0 {
					m.Requested, m.Scope, m.Via = true, All, nil
				}
				continue
			}
			m := &Member{Package: p, Requested: len(w.alts) == 0, Via: w.via}
			if !m.Requested && p.Essential {
				m.Scope = Libraries
			}
			byName[p.Name] = m
			deps, err := dependencies(p)
			if err != nil {
				return nil, err
			}
			via := append(slices.Clone(w.via), p.Name)
			for _, alts := range deps {
				queue = append(queue, want{alts: alts, via: via})
			}
		}
	}
	out := make([]Member, 0, len(byName))
	for _, m := range byName {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// resolveAlternatives picks one of alts: one already in the set, else a
// pinned one, else the first that src resolves.
func resolveAlternatives(ctx context.Context, src deb.Source, pinned *deb.Pinned, alts []string, have map[string]*Member) (deb.Package, error) {
	for _, a := range alts {
		if m, ok := have[a]; ok {
			return m.Package, nil
		}
	}
	if pinned != nil {
		for _, a := range alts {
			if _, ok := pinned.Pin(a); ok {
				return src.Resolve(ctx, a)
			}
		}
	}
	var errs []error
	var virtuals []*deb.VirtualError
	for _, a := range alts {
		p, err := src.Resolve(ctx, a)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, deb.ErrUnknownPackage) {
			return deb.Package{}, err
		}
		var v *deb.VirtualError
		if errors.As(err, &v) {
			virtuals = append(virtuals, v)
		}
		errs = append(errs, err)
	}
	// A virtual package (python3-acme-abi-2, say) is met, as apt meets it,
	// by a provider the set has already, or else by its only provider.
	// Several providers and none chosen stay an error naming them: which
	// to take is the caller's choice, made by naming one.
	for _, v := range virtuals {
		for _, p := range v.Providers {
			if m, ok := have[p]; ok {
				return m.Package, nil
			}
		}
	}
	for _, v := range virtuals {
		if len(v.Providers) == 1 {
			return src.Resolve(ctx, v.Providers[0])
		}
	}
	return deb.Package{}, errors.Join(errs...)
}

// dependencies returns p's Pre-Depends and Depends as lists of
// alternatives, architecture qualifiers (":any") dropped.
func dependencies(p deb.Package) ([][]string, error) {
	var out [][]string
	for _, field := range []string{p.PreDepends, p.Depends} {
		if strings.TrimSpace(field) == "" {
			continue
		}
		d, err := dependency.Parse(field)
		if err != nil {
			return nil, fmt.Errorf("package %s: parse dependencies %q: %w", p, field, err)
		}
		for _, rel := range d.Relations {
			var alts []string
			for _, pos := range rel.Possibilities {
				if !slices.Contains(alts, pos.Name) {
					alts = append(alts, pos.Name)
				}
			}
			if len(alts) > 0 {
				out = append(out, alts)
			}
		}
	}
	return out, nil
}

// Build resolves names through src (see Resolve), fetches the packages
// into c (verified by SHA-256), unpacks them (cached too), and computes
// the image entries and the ELF closure (see the package doc).
func Build(ctx context.Context, c *cache.Cache, src deb.Source, names []string) (*Set, error) {
	if len(names) == 0 {
		return &Set{}, nil
	}
	members, err := Resolve(ctx, src, names)
	if err != nil {
		return nil, err
	}
	for i := range members {
		m := &members[i]
		if m.Tree, err = unpack(ctx, c, src, m.Package); err != nil {
			return nil, fmt.Errorf("package %s: %w", m.Package, err)
		}
	}
	return assemble(members)
}

// unpack returns the cached unpacked tree of p, fetching and unpacking it
// on a miss.
func unpack(ctx context.Context, c *cache.Cache, src deb.Source, p deb.Package) (string, error) {
	if dir, ok := c.Lookup(TreeKind, p.SHA256); ok {
		return dir, nil
	}
	debPath, err := deb.FetchPackage(ctx, c, src, p)
	if err != nil {
		return "", err
	}
	return c.Dir(TreeKind, p.SHA256, func(tmp string) error {
		return deb.Extract(debPath, tmp, keep)
	})
}

// keep reports whether a package path goes into its unpacked tree.
func keep(p string) bool {
	for _, ex := range excluded {
		if p == ex || strings.HasPrefix(p, ex+"/") {
			return false
		}
	}
	return true
}

// file is one non-directory of a member's tree.
type file struct {
	host    string
	symlink string
	mode    fs.FileMode
	member  int
}

// assemble walks the unpacked trees of members and computes the entries.
func assemble(members []Member) (*Set, error) {
	files := map[string]*file{}      // guest path -> file
	dirs := map[string]fs.FileMode{} // guest dirs of All members
	// All members first, so that their files win over the libraries of
	// essential packages at the same path.
	order := make([]int, 0, len(members))
	for i, m := range members {
		if m.Scope == All {
			order = append(order, i)
		}
	}
	for i, m := range members {
		if m.Scope != All {
			order = append(order, i)
		}
	}
	for _, i := range order {
		m := &members[i]
		err := filepath.WalkDir(m.Tree, func(hp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(m.Tree, hp)
			if err != nil || rel == "." {
				return err
			}
			guest := "/" + filepath.ToSlash(rel)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			f := &file{member: i, mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
			switch {
			case d.IsDir():
				if m.Scope == All {
					dirs[guest] = f.mode
				}
				return nil
			case d.Type()&fs.ModeSymlink != 0:
				if f.symlink, err = os.Readlink(hp); err != nil {
					return err
				}
			case d.Type().IsRegular():
				f.host = hp
			default:
				return nil
			}
			if old, ok := files[guest]; ok {
				if members[old.member].Scope == All && m.Scope == All {
					return fmt.Errorf("guest path %s is in both package %s and package %s", guest, members[old.member].Name, m.Name)
				}
				return nil
			}
			files[guest] = f
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("package %s: unpacked tree %s: %w", m.Package, m.Tree, err)
		}
	}

	tree := elfdeps.Tree{}
	var roots []string
	for g, f := range files {
		tree[g] = f.symlink
		if f.host != "" && members[f.member].Scope == All {
			roots = append(roots, g)
		}
	}
	slices.Sort(roots)
	infos := map[string]*elfdeps.Info{}
	read := func(guest string) (*elfdeps.Info, error) {
		f, ok := files[guest]
		if !ok || f.host == "" {
			return nil, elfdeps.ErrNotELF
		}
		info, err := elfdeps.ReadFile(f.host)
		if err == nil {
			infos[guest] = info
		}
		return info, err
	}
	needed, err := elfdeps.Closure(tree, roots, read)
	if err != nil {
		return nil, fmt.Errorf("shared-library closure: %w (add the package that provides it)", describeMissing(err, tree, files, members))
	}

	in := map[string]bool{}
	for g, f := range files {
		if members[f.member].Scope == All {
			in[g] = true
		}
	}
	for _, g := range needed {
		in[g] = true
	}
	s := &Set{}
	for g := range in {
		f := files[g]
		members[f.member].Files++
		e := fstree.Entry{Guest: g, Host: f.host, Symlink: f.symlink, Mode: f.mode, Origin: "package " + members[f.member].Name}
		if f.symlink != "" {
			e.Mode = 0
		}
		s.Entries = append(s.Entries, e)
		if info := infos[g]; info != nil {
			// libc.so.6 has a PT_INTERP too (it runs): go by the name.
			if info.Type == elf.ET_EXEC || info.Interp != "" && !strings.Contains(filepath.Base(g), ".so") {
				s.Programs++
			} else {
				s.Libraries++
			}
		}
	}
	for g, mode := range dirs {
		if !in[g] {
			s.Entries = append(s.Entries, fstree.Entry{Guest: g, Dir: true, Mode: mode, Origin: "package directory"})
		}
	}
	slices.SortFunc(s.Entries, func(a, b fstree.Entry) int { return strings.Compare(a.Guest, b.Guest) })
	s.Members = members
	return s, nil
}

// describeMissing adds to each missing-library error which package the
// needing object comes from.
func describeMissing(err error, tree elfdeps.Tree, files map[string]*file, members []Member) error {
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	var out []error
	for _, e := range parts {
		var me *elfdeps.MissingError
		if errors.As(e, &me) {
			if f, _, ok := tree.Resolve(me.Object); ok {
				e = fmt.Errorf("package %s: %w", members[files[f].member].Name, e)
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// Summary is "curl=7.88.1-10+deb12u5 (+31 dependencies)": the members
// asked for, and how many came as their dependencies.
func Summary(ms []Member) string {
	var names []string
	deps := 0
	for _, m := range ms {
		if m.Requested {
			names = append(names, m.Package.String())
		} else {
			deps++
		}
	}
	return fmt.Sprintf("%s (+%d dependencies)", strings.Join(names, ", "), deps)
}
