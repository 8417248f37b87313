package kernel

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/image/decompress"
)

// moduleInfo is what depmod needs from one module's .modinfo section.
type moduleInfo struct {
	path    string   // relative to the modules dir, e.g. "kernel/drivers/virtio/virtio.ko"
	name    string   // e.g. "virtio_pci"
	depends []string // module names
	aliases []string
	softdep []string // e.g. "pre: crc32c"
}

// Depmod writes modules.dep, modules.alias and modules.softdep into
// modulesDir (a lib/modules/VERSION directory) from the .modinfo sections
// of the modules below it, in the text formats of depmod(8). Debian's
// kernel packages leave these files to the postinst script's depmod run, and
// kmod's depmod is not on every host, so this does that part in Go. Modules
// may be .ko or .ko.xz/.ko.zst/.ko.gz. The binary .bin indexes are not
// written; kmod's tools and shakedown's agent read the text files.
func Depmod(modulesDir string) error {
	var mods []*moduleInfo
	err := filepath.WalkDir(modulesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || moduleName(d.Name()) == "" {
			return nil
		}
		rel, _ := filepath.Rel(modulesDir, path)
		m, err := readModinfo(path)
		if err != nil {
			return fmt.Errorf("module %s: %w", rel, err)
		}
		m.path = filepath.ToSlash(rel)
		if m.name == "" {
			m.name = moduleName(d.Name())
		}
		mods = append(mods, m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("depmod %s: %w", modulesDir, err)
	}
	slices.SortFunc(mods, func(a, b *moduleInfo) int { return strings.Compare(a.path, b.path) })
	files := map[string][]byte{
		"modules.dep":     modulesDep(mods),
		"modules.alias":   modulesAlias(mods),
		"modules.softdep": modulesSoftdep(mods),
	}
	for name, content := range files {
		if err := writeAtomic(filepath.Join(modulesDir, name), content); err != nil {
			return fmt.Errorf("depmod %s: %w", modulesDir, err)
		}
	}
	return nil
}

// moduleName returns the module name for a module file name (dashes become
// underscores, as the kernel does), or "" if it is not a module.
func moduleName(file string) string {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if base, ok := strings.CutSuffix(file, ext); ok && base != "" {
			return strings.ReplaceAll(base, "-", "_")
		}
	}
	return ""
}

// readModinfo reads the .modinfo section of the module file at path.
func readModinfo(path string) (*moduleInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.ReaderAt = f
	if ext := filepath.Ext(path); ext != ".ko" {
		// Compressed modules are small (under a few MiB): inflate in memory.
		b, err := decompressModule(ext, f)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("parse ELF: %w", err)
	}
	sec := ef.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section: not a kernel module")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	m := &moduleInfo{}
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.name = v
		case "depends":
			for d := range strings.SplitSeq(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.depends = append(m.depends, strings.ReplaceAll(d, "-", "_"))
				}
			}
		case "alias":
			m.aliases = append(m.aliases, v)
		case "softdep":
			m.softdep = append(m.softdep, v)
		}
	}
	return m, nil
}

// decompressModule returns the content of a module compressed as ext
// says (".xz", ".zst" or ".gz").
func decompressModule(ext string, r io.Reader) ([]byte, error) {
	f, err := decompress.ByExt(ext)
	if err != nil {
		return nil, err
	}
	z, err := decompress.NewReader(r, f)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	return io.ReadAll(io.LimitReader(z, maxVmlinux))
}

// modulesDep renders modules.dep: each module's path, then the paths of all
// modules it needs, directly or not, ordered like depmod's output so that
// loading the list from the end backwards loads every dependency before
// the modules that use it.
func modulesDep(mods []*moduleInfo) []byte {
	byName := make(map[string]*moduleInfo, len(mods))
	for _, m := range mods {
		if _, dup := byName[m.name]; !dup { // first path wins, as in depmod
			byName[m.name] = m
		}
	}
	// Post-order numbering: a module's number is above all its deps'.
	order := map[*moduleInfo]int{}
	next := 0
	var visit func(m *moduleInfo)
	visit = func(m *moduleInfo) {
		if _, seen := order[m]; seen {
			return
		}
		order[m] = -1 // in progress; breaks cycles, which modpost forbids anyway
		for _, d := range m.depends {
			if dm := byName[d]; dm != nil {
				visit(dm)
			}
		}
		order[m] = next
		next++
	}
	for _, m := range mods {
		visit(m)
	}
	var buf bytes.Buffer
	for _, m := range mods {
		closure := map[*moduleInfo]bool{}
		var walk func(m *moduleInfo)
		walk = func(m *moduleInfo) {
			for _, d := range m.depends {
				if dm := byName[d]; dm != nil && !closure[dm] {
					closure[dm] = true
					walk(dm)
				}
			}
		}
		walk(m)
		delete(closure, m)
		deps := make([]*moduleInfo, 0, len(closure))
		for d := range closure {
			deps = append(deps, d)
		}
		slices.SortFunc(deps, func(a, b *moduleInfo) int { return order[b] - order[a] })
		// Numbers are unique, so the order is deterministic.
		buf.WriteString(m.path + ":")
		for _, d := range deps {
			buf.WriteString(" " + d.path)
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func modulesAlias(mods []*moduleInfo) []byte {
	var buf bytes.Buffer
	buf.WriteString("# Aliases extracted from modules themselves.\n")
	for _, m := range mods {
		for _, a := range m.aliases {
			fmt.Fprintf(&buf, "alias %s %s\n", a, m.name)
		}
	}
	return buf.Bytes()
}

func modulesSoftdep(mods []*moduleInfo) []byte {
	var buf bytes.Buffer
	buf.WriteString("# Soft dependencies extracted from modules themselves.\n")
	for _, m := range mods {
		for _, s := range m.softdep {
			fmt.Fprintf(&buf, "softdep %s %s\n", m.name, s)
		}
	}
	return buf.Bytes()
}

// writeAtomic writes content to path through a temp file and a rename, so
// that a reader never sees a partial modules.dep.
func writeAtomic(path string, content []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
