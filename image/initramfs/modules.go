package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/decompress"
	"github.com/shakedown-dev/shakedown/internal/suggest"
)

// ErrUnknownModule is wrapped by ModuleClosure's error for a name that is
// neither in modules.dep nor built into the kernel, so callers can tell a
// typo in a module list from a broken modules directory.
var ErrUnknownModule = errors.New("unknown module")

// moduleSuffixes are the file endings of kernel modules, compressed ones
// first so that trimming ".ko.xz" does not stop at ".ko".
var moduleSuffixes = []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"}

// depGraph is a parsed modules.dep.
type depGraph struct {
	file   string              // path of modules.dep, for messages
	order  []string            // module paths in file order
	deps   map[string][]string // module path -> dependency paths, as listed
	byName map[string]string   // normalized module name -> path
}

// readModulesDep parses dir/modules.dep: one line per module,
// "path: dep dep ...", paths relative to dir.
func readModulesDep(dir string) (*depGraph, error) {
	file := filepath.Join(dir, "modules.dep")
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Debian's linux-image packages ship no modules.dep: their
			// postinst runs depmod, so an unpacked .deb lacks it.
			return nil, fmt.Errorf("read modules.dep: %w (generate it with depmod -b ROOT VERSION, Debian package kmod)", err)
		}
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	defer f.Close()
	g := &depGraph{file: file, deps: make(map[string][]string), byName: make(map[string]string)}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024) // a line lists a module's whole closure
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" {
			return nil, fmt.Errorf("%s:%d: want \"module: deps\", got %q", file, n, line)
		}
		if err := checkModulePath(mod); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		deps := strings.Fields(rest)
		for _, d := range deps {
			if err := checkModulePath(d); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, n, err)
			}
		}
		if _, dup := g.deps[mod]; dup {
			continue
		}
		g.order = append(g.order, mod)
		g.deps[mod] = deps
		// The first file of a name wins, as with modprobe, which reads
		// the same file top down (depmod puts overrides first).
		name := moduleName(mod)
		if _, dup := g.byName[name]; !dup {
			g.byName[name] = mod
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return g, nil
}

// checkModulePath rejects module paths that would escape the modules
// directory, in the host read or in the image.
func checkModulePath(p string) error {
	if !filepathIsLocal(p) {
		return fmt.Errorf("module path %q is not a relative path inside the modules directory", p)
	}
	if stripModuleSuffix(p) == p {
		return fmt.Errorf("module path %q does not end in .ko, .ko.xz, .ko.zst or .ko.gz", p)
	}
	return nil
}

func filepathIsLocal(p string) bool {
	return filepath.IsLocal(p) && filepath.Clean(p) == p && !strings.Contains(p, `\`)
}

// readBuiltin returns the normalized names in dir/modules.builtin, which
// lists modules compiled into the kernel. A missing file means none.
func readBuiltin(dir string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read modules.builtin: %w", err)
	}
	names := make(map[string]bool)
	for _, line := range strings.Fields(string(b)) {
		names[moduleName(line)] = true
	}
	return names, nil
}

// moduleName turns a module path or a user's name into the form modprobe
// compares: base name without .ko suffix, '-' as '_'.
func moduleName(s string) string {
	s = stripModuleSuffix(filepath.Base(s))
	return strings.ReplaceAll(s, "-", "_")
}

// stripModuleSuffix drops a module file ending (.ko, .ko.xz, ...), and
// leaves other strings alone.
func stripModuleSuffix(s string) string {
	for _, suf := range moduleSuffixes {
		if t, ok := strings.CutSuffix(s, suf); ok {
			return t
		}
	}
	return s
}

// uncompressedPath is where a module lands in the image: its path with any
// compression suffix removed, because Build decompresses it.
func uncompressedPath(p string) string {
	return stripModuleSuffix(p) + ".ko"
}

// ModuleClosure resolves names against modulesDir/modules.dep and returns
// the paths (relative to modulesDir, as modules.dep spells them) of those
// modules and everything they depend on, in load order: each module after
// its dependencies, and each only once. Names match as with modprobe:
// "virtio-pci" and "virtio_pci" are the same module.
//
// Names built into the kernel (listed in modulesDir/modules.builtin) are
// skipped, since there is nothing to load. Any other unknown name is an
// error wrapping ErrUnknownModule that names the modules.dep file and
// suggests close names; all unknown names are reported at once.
func ModuleClosure(modulesDir string, names []string) ([]string, error) {
	g, err := readModulesDep(modulesDir)
	if err != nil {
		return nil, err
	}
	return g.closure(modulesDir, names)
}

func (g *depGraph) closure(modulesDir string, names []string) ([]string, error) {
	builtin, err := readBuiltin(modulesDir)
	if err != nil {
		return nil, err
	}
	var (
		out   []string
		state = make(map[string]int) // 0 unseen, 1 on the stack, 2 done
		errs  []error
	)
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		switch state[p] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("%s: dependency cycle: %s -> %s", g.file, strings.Join(chain, " -> "), p)
		}
		state[p] = 1
		deps := g.deps[p]
		// modules.dep lists the whole closure with the deepest
		// dependency last, and modprobe loads the list back to front;
		// walking it in the same direction keeps modprobe's order, and
		// the recursion keeps it correct for files that list only
		// direct dependencies.
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], append(chain, p)); err != nil {
				return err
			}
		}
		state[p] = 2
		out = append(out, p)
		return nil
	}
	for _, name := range names {
		trimmed := strings.TrimSpace(name)
		n := moduleName(trimmed)
		if trimmed == "" || strings.ContainsAny(trimmed, "/\\") {
			errs = append(errs, fmt.Errorf("module name %q: %w", name, ErrUnknownModule))
			continue
		}
		p, ok := g.byName[n]
		if !ok {
			if builtin[n] {
				continue
			}
			errs = append(errs, g.unknown(name, n))
			continue
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// unknown builds the error for a name not in modules.dep, with the closest
// names as a hint since most misses are typos or a '-' for a '_'.
func (g *depGraph) unknown(name, norm string) error {
	type cand struct {
		name string
		dist int
	}
	var cands []cand
	limit := max(2, len(norm)/3)
	for n := range g.byName {
		d := suggest.Distance(norm, n)
		if d <= limit || (len(norm) >= 3 && strings.Contains(n, norm)) {
			cands = append(cands, cand{n, d})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.name, b.name)
	})
	hint := ""
	if len(cands) > 0 {
		var s []string
		for _, c := range cands[:min(len(cands), 5)] {
			s = append(s, c.name)
		}
		hint = " (did you mean " + strings.Join(s, ", ") + "?)"
	}
	return fmt.Errorf("module %q: %w in %s%s", name, ErrUnknownModule, g.file, hint)
}

// trimmedModulesDep renders a modules.dep for just the modules in paths,
// in the original file's order, with the paths as placed in the image.
// It lets modprobe in the guest (busybox's included) resolve them.
func (g *depGraph) trimmedModulesDep(paths []string) []byte {
	in := make(map[string]bool, len(paths))
	for _, p := range paths {
		in[p] = true
	}
	var b bytes.Buffer
	for _, p := range g.order {
		if !in[p] {
			continue
		}
		b.WriteString(uncompressedPath(p))
		b.WriteByte(':')
		for _, d := range g.deps[p] {
			b.WriteByte(' ')
			b.WriteString(uncompressedPath(d))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// compressionOf tells from a module path's suffix how it is compressed.
// The kernel could decompress modules itself only if built with
// CONFIG_MODULE_DECOMPRESS, which shakedown does not want to depend on, so
// Build stores every module uncompressed.
func compressionOf(p string) decompress.Format {
	for _, f := range []decompress.Format{decompress.XZ, decompress.Zstd, decompress.Gzip} {
		if strings.HasSuffix(p, ".ko"+f.Ext()) {
			return f
		}
	}
	return decompress.None
}

// decompressFile returns the decompressed content of the host file path.
func decompressFile(path string, f decompress.Format) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	defer file.Close()
	r, err := decompress.NewReader(file, f)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %s: %w", path, f, err)
	}
	return out, nil
}
