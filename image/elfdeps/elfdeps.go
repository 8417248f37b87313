// Package elfdeps finds the shared-library closure of ELF programs in a
// file tree the way the guest's dynamic loader will (DT_NEEDED, DT_RPATH,
// DT_RUNPATH, the multiarch default directories, the program interpreter);
// it imports only the standard library.
package elfdeps

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// Sentinel errors that callers branch on, checked with errors.Is.
var (
	// ErrNotELF means a file is not an ELF object this package analyses.
	ErrNotELF = errors.New("not an x86-64 ELF object")
	// ErrMissingLibrary means a needed library or program interpreter is in
	// none of the directories the loader would search.
	ErrMissingLibrary = errors.New("missing shared library")
)

// DefaultDirs are the directories Debian's x86-64 loader searches after
// DT_RUNPATH when there is no /etc/ld.so.cache, as `ld.so --help` lists
// them; initramfs images have no cache, so these are what counts.
var DefaultDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}

// Info is what the loader reads from one ELF object.
type Info struct {
	Type    elf.Type // ET_EXEC or ET_DYN
	Interp  string   // PT_INTERP, the program interpreter; "" for libraries and static programs
	Needed  []string // DT_NEEDED, in order
	RPath   []string // DT_RPATH entries, unexpanded
	RunPath []string // DT_RUNPATH entries, unexpanded
}

// Dynamic reports whether the object takes part in dynamic linking at all.
func (i *Info) Dynamic() bool { return i.Interp != "" || len(i.Needed) > 0 }

// ReadFile reads the Info of the ELF object at path; files that are not
// x86-64 ELF executables or shared objects (scripts, data, kernel modules,
// other architectures' objects) are ErrNotELF.
func ReadFile(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Read is ReadFile for an open file.
func Read(r io.ReaderAt) (*Info, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, ErrNotELF
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotELF, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, ErrNotELF
	}
	info := &Info{Type: f.Type}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, fmt.Errorf("read PT_INTERP: %w", err)
		}
		info.Interp = strings.TrimRight(string(b), "\x00")
	}
	// Objects without a dynamic section (static programs) have no
	// DT_NEEDED; DynString then fails or returns nothing, both fine.
	if f.Section(".dynamic") == nil && !hasDynamic(f) {
		return info, nil
	}
	if info.Needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("read DT_NEEDED: %w", err)
	}
	rpath, _ := f.DynString(elf.DT_RPATH)
	runpath, _ := f.DynString(elf.DT_RUNPATH)
	info.RPath = splitPath(rpath)
	info.RunPath = splitPath(runpath)
	return info, nil
}

func hasDynamic(f *elf.File) bool {
	return slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_DYNAMIC })
}

func splitPath(vals []string) []string {
	var out []string
	for _, v := range vals {
		for d := range strings.SplitSeq(v, ":") {
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

// Tree is a guest file tree: absolute, clean guest paths of files and
// symlinks mapped to a symlink's target, or "" for a regular file.
// Directories are implied by the paths below them.
type Tree map[string]string

// maxLinks is how many symlinks Resolve follows for one path, as Linux's
// MAXSYMLINKS.
const maxLinks = 40

// Resolve follows symlinks in every component of the guest path p and
// returns the regular file it names and the symlinks passed on the way
// (which the image must contain too, since the loader opens the name).
func (t Tree) Resolve(p string) (file string, links []string, ok bool) {
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for n := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		target, ok := t[next]
		if !ok || target == "" {
			cur = next
			continue
		}
		if n++; n > maxLinks {
			return "", nil, false
		}
		links = append(links, next)
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	target, ok := t[cur]
	if !ok || target != "" {
		return "", nil, false // absent, or a directory
	}
	return cur, links, true
}

// MissingError is a needed library (or a program interpreter) that none of
// the searched directories of the tree has.
type MissingError struct {
	Object   string   // guest path of the object that needs it
	Library  string   // the DT_NEEDED name or PT_INTERP path
	Searched []string // the directories searched, in order
}

func (e *MissingError) Error() string {
	if len(e.Searched) == 0 {
		return fmt.Sprintf("%s needs %s, which is not in the image", e.Object, e.Library)
	}
	return fmt.Sprintf("%s needs %s, found in none of %s", e.Object, e.Library, strings.Join(e.Searched, ":"))
}

func (e *MissingError) Unwrap() error { return ErrMissingLibrary }

// Closure returns the guest paths that the objects roots need at run
// time: their program interpreters and needed libraries, recursively, each
// as the regular file plus any symlinks on the way to it, sorted. read
// returns an object's Info by guest path (ErrNotELF for files to skip);
// roots that are not ELF are ignored. Every library that cannot be found
// is reported as a *MissingError, all of them joined.
func Closure(t Tree, roots []string, read func(guest string) (*Info, error)) ([]string, error) {
	c := &closure{t: t, read: read, need: map[string]bool{}, seen: map[string]bool{}}
	for _, r := range roots {
		c.object(r, nil)
	}
	slices.SortFunc(c.missing, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	if err := errors.Join(c.missing...); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(c.need))
	for p := range c.need {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

type closure struct {
	t       Tree
	read    func(string) (*Info, error)
	need    map[string]bool // guest paths to include
	seen    map[string]bool // objects already analysed
	missing []error
}

// object analyses the object at guest path p (loaded under the name p),
// with the DT_RPATHs inherited from the objects that loaded it.
func (c *closure) object(p string, inherited []string) {
	file, _, ok := c.t.Resolve(p)
	if !ok || c.seen[file] {
		return
	}
	c.seen[file] = true
	info, err := c.read(file)
	if err != nil {
		if !errors.Is(err, ErrNotELF) {
			c.missing = append(c.missing, fmt.Errorf("read %s: %w", file, err))
		}
		return
	}
	if info.Interp != "" {
		if !c.include(info.Interp) {
			c.missing = append(c.missing, &MissingError{Object: p, Library: info.Interp})
		}
		// The interpreter is itself an object (ld.so needs nothing, but
		// look anyway: a foreign loader might).
		c.object(info.Interp, nil)
	}
	origin := path.Dir(p)
	if info.Type == elf.ET_EXEC || info.Interp != "" {
		origin = path.Dir(file) // the kernel gives ld.so the program's real path
	}
	// DT_RPATH is searched (also for what this object's libraries need)
	// only when the object has no DT_RUNPATH.
	var rpath []string
	if len(info.RunPath) == 0 {
		rpath = append(expand(info.RPath, origin), inherited...)
	}
	runpath := expand(info.RunPath, origin)
	for _, lib := range info.Needed {
		if strings.Contains(lib, "/") {
			if !c.include(lib) {
				c.missing = append(c.missing, &MissingError{Object: p, Library: lib})
			}
			c.object(lib, rpath)
			continue
		}
		dirs := slices.Concat(rpath, runpath, DefaultDirs)
		found := ""
		for _, d := range dirs {
			if cand := path.Join(d, lib); c.include(cand) {
				found = cand
				break
			}
		}
		if found == "" {
			c.missing = append(c.missing, &MissingError{Object: p, Library: lib, Searched: slices.Compact(dirs)})
			continue
		}
		c.object(found, rpath)
	}
}

// include marks guest path p and the symlinks leading to it as needed,
// reporting whether it names a regular file.
func (c *closure) include(p string) bool {
	file, links, ok := c.t.Resolve(p)
	if !ok {
		return false
	}
	c.need[file] = true
	for _, l := range links {
		c.need[l] = true
	}
	return true
}

// expand substitutes the loader's dynamic string tokens in search dirs.
// Relative entries (which the loader takes relative to the working
// directory) are dropped: nothing in an image can rely on them.
func expand(dirs []string, origin string) []string {
	var out []string
	for _, d := range dirs {
		for _, tok := range []struct{ name, val string }{
			{"ORIGIN", origin}, {"LIB", "lib/x86_64-linux-gnu"}, {"PLATFORM", "x86_64"},
		} {
			d = strings.ReplaceAll(d, "${"+tok.name+"}", tok.val)
			d = strings.ReplaceAll(d, "$"+tok.name, tok.val)
		}
		if path.IsAbs(d) {
			out = append(out, path.Clean(d))
		}
	}
	return out
}
