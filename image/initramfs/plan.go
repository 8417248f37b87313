package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/cpio"
	"github.com/shakedown-dev/shakedown/image/decompress"
	"github.com/shakedown-dev/shakedown/image/fstree"
)

// kind is the type of an archive entry.
type kind int

const (
	kindDir kind = iota
	kindFile
	kindSymlink
	kindCharDev
)

// node is one planned archive entry. Build writes nodes and Key hashes
// them, so both see exactly the same decisions.
type node struct {
	path   string // guest path without the leading "/", clean
	kind   kind
	mode   fs.FileMode       // permission bits plus Unix-style 0o7000 bits
	target string            // symlinks
	major  uint32            // device nodes
	minor  uint32            // device nodes
	data   []byte            // file content held in memory, when host is ""
	host   string            // host file to copy, read at write time
	size   int64             // size of host as measured when planning
	comp   decompress.Format // compression of host's content, undone on write
	origin string            // what asked for the entry, for error messages
	// weak entries (busybox applet links) give way to any other entry at
	// the same path instead of conflicting with it.
	weak bool
}

// Modes of the entries Build creates on its own.
const (
	dirMode     fs.FileMode = 0o755
	execMode    fs.FileMode = 0o755
	regularMode fs.FileMode = 0o644
)

// stdDirs are always present: the mount points the agent needs, and the
// directories busybox's applet links and the modules go to.
var stdDirs = []struct {
	path string
	mode fs.FileMode
}{
	{"bin", dirMode},
	{"dev", dirMode},
	{"etc", dirMode},
	{"lib", dirMode},
	{"lib/modules", dirMode},
	{"proc", dirMode},
	{"root", 0o700}, // root's home, as on Debian
	{"run", dirMode},
	{"sbin", dirMode},
	{"sys", dirMode},
	{"tmp", 0o1777}, // world-writable, sticky
	{"usr", dirMode},
	{"usr/bin", dirMode},
	{"usr/sbin", dirMode},
}

// The guest paths of what Build generates for modules.
const (
	modulesListPath = "etc/shakedown/modules"
	modulesRoot     = "lib/modules"
)

// plan decides every entry of the initramfs for s, reading directory
// listings, file sizes and busybox's applet list but no file contents,
// and returns the entries sorted by path, parents first.
func plan(s Spec) ([]*node, error) {
	p := &planner{nodes: make(map[string]*node)}
	for _, d := range stdDirs {
		if err := p.add(&node{path: d.path, kind: kindDir, mode: d.mode, origin: "standard directory /" + d.path}); err != nil {
			return nil, err
		}
	}
	for _, n := range []*node{
		{path: "dev/console", kind: kindCharDev, mode: 0o600, major: 5, minor: 1, origin: "device node /dev/console"},
		{path: "dev/null", kind: kindCharDev, mode: 0o666, major: 1, minor: 3, origin: "device node /dev/null"},
	} {
		if err := p.add(n); err != nil {
			return nil, err
		}
	}
	if s.Agent != "" {
		if err := p.binary(s.Agent, "init", "agent", ""); err != nil {
			return nil, err
		}
	}
	if s.Busybox != "" {
		if err := p.busybox(s.Busybox); err != nil {
			return nil, err
		}
	}
	if err := p.entries(s.Entries); err != nil {
		return nil, err
	}
	if err := p.modules(s.ModulesDir, s.Modules); err != nil {
		return nil, err
	}
	if err := p.files(s.Files); err != nil {
		return nil, err
	}
	return p.sorted()
}

type planner struct {
	nodes map[string]*node
}

// add places n, refusing a second entry at the same path unless one of
// them is weak or both are directories of the same mode.
func (p *planner) add(n *node) error {
	if old, ok := p.nodes[n.path]; ok {
		switch {
		case old.weak:
		case n.weak:
			return nil
		case old.kind == kindDir && n.kind == kindDir && old.mode == n.mode:
			return nil
		default:
			return fmt.Errorf("guest path /%s: wanted by both %s and %s", n.path, old.origin, n.origin)
		}
	}
	p.nodes[n.path] = n
	return nil
}

// binary places the static executable at host as guest with mode 0755.
func (p *planner) binary(host, guest, what, hint string) error {
	fi, err := os.Stat(host)
	if err != nil {
		return hostErr(what, host, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: host path %s is not a regular file", what, host)
	}
	if err := checkStatic(host, what, hint); err != nil {
		return err
	}
	return p.add(&node{
		path: guest, kind: kindFile, mode: execMode, host: host, size: fi.Size(),
		origin: what + " " + host,
	})
}

// busybox places busybox and a weak symlink for each of its applets.
func (p *planner) busybox(host string) error {
	const guest = "bin/busybox"
	if err := p.binary(host, guest, "busybox", " (Debian package busybox-static)"); err != nil {
		return err
	}
	applets, err := busyboxApplets(host)
	if err != nil {
		return err
	}
	for _, a := range applets {
		if a == guest {
			continue
		}
		n := &node{
			path: a, kind: kindSymlink, mode: 0o777, target: "/" + guest,
			origin: "busybox applet /" + a, weak: true,
		}
		if err := p.add(n); err != nil {
			return err
		}
	}
	return nil
}

// modules places the closure of names from dir, decompressed, with the
// load order list and a trimmed modules.dep.
func (p *planner) modules(dir string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if dir == "" {
		return fmt.Errorf("modules %v: no ModulesDir to take them from", names)
	}
	dir = filepath.Clean(dir)
	version := filepath.Base(dir)
	if version == "." || version == ".." || version == string(filepath.Separator) {
		return fmt.Errorf("modules dir %s: want a lib/modules/VERSION directory", dir)
	}
	g, err := readModulesDep(dir)
	if err != nil {
		return fmt.Errorf("modules dir %s: %w", dir, err)
	}
	paths, err := g.closure(dir, names)
	if err != nil {
		return err
	}
	base := modulesRoot + "/" + version
	var list strings.Builder
	for _, mp := range paths {
		host := filepath.Join(dir, mp)
		fi, err := os.Stat(host)
		if err != nil {
			return fmt.Errorf("module %s: listed in %s: %w", moduleName(mp), g.file, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("module %s: %s is not a regular file", moduleName(mp), host)
		}
		guest := base + "/" + filepath.ToSlash(uncompressedPath(mp))
		err = p.add(&node{
			path: guest, kind: kindFile, mode: regularMode, host: host, size: fi.Size(),
			comp: compressionOf(mp), origin: "module " + moduleName(mp),
		})
		if err != nil {
			return err
		}
		list.WriteString("/" + guest + "\n")
	}
	for _, n := range []*node{
		{path: base + "/modules.dep", data: g.trimmedModulesDep(paths), origin: "trimmed modules.dep"},
		{path: modulesListPath, data: []byte(list.String()), origin: "module load order"},
	} {
		n.kind, n.mode = kindFile, regularMode
		if err := p.add(n); err != nil {
			return err
		}
	}
	return nil
}

// entries places prepared entries as weak nodes: they replace applet
// links, which are also weak and came before them, and give way to Files.
func (p *planner) entries(entries []fstree.Entry) error {
	seen := make(map[string]string)
	for i, e := range entries {
		guest, err := guestPath(e.Guest)
		origin := e.Origin
		if origin == "" {
			origin = fmt.Sprintf("Entries[%d]", i)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", origin, err)
		}
		if other, dup := seen[guest]; dup {
			return fmt.Errorf("guest path /%s: wanted by both %s and %s", guest, other, origin)
		}
		seen[guest] = origin
		if e.Mode&fs.ModeType != 0 {
			return fmt.Errorf("%s: guest path /%s: mode %v: want permission bits only", origin, guest, e.Mode)
		}
		n := &node{path: guest, origin: origin, weak: true}
		kinds := 0
		for _, set := range []bool{e.Host != "", e.Symlink != "", e.Dir} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds != 1:
			return fmt.Errorf("%s: guest path /%s: want exactly one of Host, Symlink and Dir", origin, guest)
		case e.Symlink != "":
			n.kind, n.mode, n.target = kindSymlink, 0o777, e.Symlink
		case e.Dir:
			n.kind, n.mode = kindDir, orDefault(e.Mode, dirMode)
		default:
			fi, err := os.Stat(e.Host)
			if err != nil {
				return hostErr(origin+": guest path /"+guest, e.Host, err)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s: guest path /%s: host path %s is not a regular file", origin, guest, e.Host)
			}
			n.kind, n.mode, n.host, n.size = kindFile, orDefault(e.Mode, regularMode), e.Host, fi.Size()
		}
		if err := p.add(n); err != nil {
			return err
		}
	}
	return nil
}

// files places the user's Files.
func (p *planner) files(files []File) error {
	seen := make(map[string]int)
	for i, f := range files {
		guest, err := guestPath(f.Guest)
		if err != nil {
			return fmt.Errorf("file %d: %w", i, err)
		}
		if j, dup := seen[guest]; dup {
			return fmt.Errorf("files %d and %d both place guest path /%s", j, i, guest)
		}
		seen[guest] = i
		if f.Mode&fs.ModeType != 0 {
			return fmt.Errorf("guest path /%s: mode %v: want permission bits only", guest, f.Mode)
		}
		if f.Host != "" && len(f.Data) > 0 {
			return fmt.Errorf("guest path /%s: both Host and Data set", guest)
		}
		if f.Host == "" {
			err = p.add(&node{
				path: guest, kind: kindFile, mode: orDefault(f.Mode, regularMode), data: f.Data,
				origin: fmt.Sprintf("Files[%d]", i),
			})
		} else {
			err = p.hostTree(guest, f.Host, f.Mode, fmt.Sprintf("Files[%d] from host %s", i, f.Host))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hostTree places the host file or directory tree at host as guest.
func (p *planner) hostTree(guest, host string, mode fs.FileMode, origin string) error {
	fi, err := os.Stat(host)
	if err != nil {
		return hostErr("guest path /"+guest, host, err)
	}
	switch {
	case fi.Mode().IsRegular():
		return p.add(&node{
			path: guest, kind: kindFile, mode: orDefault(mode, hostFileMode(fi)),
			host: host, size: fi.Size(), origin: origin,
		})
	case !fi.IsDir():
		return fmt.Errorf("guest path /%s: host path %s is a %v, want a file or directory", guest, host, fi.Mode().Type())
	}
	// Walk the resolved directory: WalkDir does not follow a symlink
	// even when it is the root.
	root, err := filepath.EvalSymlinks(host)
	if err != nil {
		return hostErr("guest path /"+guest, host, err)
	}
	return filepath.WalkDir(root, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return hostErr("guest path /"+guest, hp, err)
		}
		rel, err := filepath.Rel(root, hp)
		if err != nil {
			return err
		}
		gp := path.Join(guest, filepath.ToSlash(rel))
		n := &node{path: gp, origin: origin}
		switch t := d.Type(); {
		case d.IsDir():
			n.kind, n.mode = kindDir, dirMode
			if hp == root {
				n.mode = orDefault(mode, dirMode)
			}
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(hp)
			if err != nil {
				return hostErr("guest path /"+gp, hp, err)
			}
			n.kind, n.mode, n.target = kindSymlink, 0o777, target
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return hostErr("guest path /"+gp, hp, err)
			}
			n.kind, n.mode, n.host, n.size = kindFile, hostFileMode(fi), hp, fi.Size()
		default:
			return fmt.Errorf("guest path /%s: host path %s is a %v, want a file, directory or symlink", gp, hp, t)
		}
		return p.add(n)
	})
}

// sorted creates missing parent directories and returns all nodes sorted
// by path. Plain byte order puts every directory before its children,
// since a path sorts before any longer path it is a prefix of.
func (p *planner) sorted() ([]*node, error) {
	paths := make([]string, 0, len(p.nodes))
	for k := range p.nodes {
		paths = append(paths, k)
	}
	slices.Sort(paths)
	for _, k := range paths {
		for dir := path.Dir(k); dir != "."; dir = path.Dir(dir) {
			parent, ok := p.nodes[dir]
			if ok && parent.kind == kindDir {
				break
			}
			if ok && !parent.weak {
				return nil, fmt.Errorf("guest path /%s (%s): parent /%s is not a directory (%s)", k, p.nodes[k].origin, dir, parent.origin)
			}
			p.nodes[dir] = &node{path: dir, kind: kindDir, mode: dirMode, origin: "parent of /" + k}
		}
	}
	out := make([]*node, 0, len(p.nodes))
	for _, n := range p.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *node) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

// write adds n to the archive, reading host content now.
func (n *node) write(w *cpio.Writer) error {
	switch n.kind {
	case kindDir:
		return w.Dir(n.path, n.mode)
	case kindSymlink:
		return w.Symlink(n.path, n.target)
	case kindCharDev:
		return w.CharDev(n.path, n.mode, n.major, n.minor)
	}
	if n.host == "" {
		return w.File(n.path, n.mode, n.data)
	}
	if n.comp != decompress.None {
		data, err := decompressFile(n.host, n.comp)
		if err != nil {
			return fmt.Errorf("%s: %w", n.origin, err)
		}
		return w.File(n.path, n.mode, data)
	}
	f, err := os.Open(n.host)
	if err != nil {
		return fmt.Errorf("%s: %w", n.origin, err)
	}
	defer f.Close()
	if err := w.FileFrom(n.path, n.mode, n.size, f); err != nil {
		return fmt.Errorf("%s: %w", n.origin, err)
	}
	return nil
}

// guestPath checks a File's guest path and returns it without the leading
// "/". ".." is refused outright: even where it stays inside the image it
// hides what the caller meant.
func guestPath(g string) (string, error) {
	if !strings.HasPrefix(g, "/") {
		return "", fmt.Errorf("guest path %q is not absolute", g)
	}
	if slices.Contains(strings.Split(g, "/"), "..") {
		return "", fmt.Errorf("guest path %q contains \"..\"", g)
	}
	if strings.ContainsRune(g, 0) {
		return "", fmt.Errorf("guest path %q contains NUL", g)
	}
	c := path.Clean(g)
	if c == "/" {
		return "", fmt.Errorf("guest path %q is the root directory", g)
	}
	return c[1:], nil
}

// hostFileMode is the mode a host file gets in the image: only whether it
// is executable survives, since the rest depends on the host's umask.
func hostFileMode(fi fs.FileInfo) fs.FileMode {
	if fi.Mode()&0o111 != 0 {
		return execMode
	}
	return regularMode
}

// orDefault returns m in canonical form (Unix-style special bits), or def
// if m is zero.
func orDefault(m, def fs.FileMode) fs.FileMode {
	if m == 0 {
		return def
	}
	c := m & 0o7777
	if m&fs.ModeSetuid != 0 {
		c |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		c |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		c |= 0o1000
	}
	return c
}

// hostErr reports a failure to read a host path for what asked for it,
// naming both, without the path twice that *fs.PathError would add.
func hostErr(what, host string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: host path %s: %w", what, host, err)
}
