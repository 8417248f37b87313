package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/suggest"
)

// machineValue is what machine() returns: a declared machine, whose
// attributes are the verbs. Its Go handle is bound when the testbed is made,
// at the scenario's first step.
type machineValue struct {
	r    *runner
	decl Declaration
	m    *shakedown.Machine
}

var _ starlark.HasAttrs = (*machineValue)(nil)

func (mv *machineValue) String() string        { return fmt.Sprintf("<machine %s>", mv.decl.Name) }
func (mv *machineValue) Type() string          { return "machine" }
func (mv *machineValue) Freeze()               {}
func (mv *machineValue) Truth() starlark.Bool  { return starlark.True }
func (mv *machineValue) Hash() (uint32, error) { return starlark.String(mv.decl.Name).Hash() }

// machineFields are the attributes of a machine that are values, not
// verbs.
var machineFields = []string{"name", "addr", "addr6"}

// Attr returns the verb called name, the machine's name for .name, or its
// address on its first network for .addr and .addr6 (None without one).
// An unknown name gives Starlark's own "has no .x field or method" error,
// with a spelling suggestion from AttrNames.
func (mv *machineValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(mv.decl.Name), nil
	case "addr", "addr6":
		// As in Go, asking fixes the numbering: the testbed is made.
		if _, err := mv.r.bind(); err != nil {
			return nil, err
		}
		a := mv.m.Addr()
		if name == "addr6" {
			a = mv.m.Addr6()
		}
		return addrValue(a), nil
	}
	v, ok := verbs[name]
	if !ok {
		return nil, nil
	}
	return starlark.NewBuiltin(mv.decl.Name+"."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return mv.r.verb(thread, mv, b.Name(), v, args, kwargs)
	}), nil
}

// AttrNames lists the verbs and fields.
func (mv *machineValue) AttrNames() []string {
	names := append([]string(nil), machineFields...)
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func hasAttr(name string) bool {
	_, ok := verbs[name]
	return ok || contains(machineFields, name)
}

// addrValue is an address as Starlark sees it: a string, or None for the
// zero address (a machine without networks, or with manual addresses).
func addrValue(a netip.Addr) starlark.Value {
	if !a.IsValid() {
		return starlark.None
	}
	return starlark.String(a.String())
}

func unknownVerb(machine, name string) string {
	msg := fmt.Sprintf("machine %s has no verb .%s", machine, name)
	if s := closest(name, (&machineValue{}).AttrNames()); s != "" {
		msg += fmt.Sprintf(" (did you mean .%s?)", s)
	}
	return msg
}

// closest returns the candidate nearest to name by edit distance, if it is
// near enough to be a typo.
func closest(name string, candidates []string) string {
	best, bestD := "", len(name)/2+1
	for _, c := range candidates {
		if d := suggest.Distance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// machineBuiltin is machine(name, memory=, cpus=, files=, packages=,
// lock_file=, modules=, kernel_args=, kernel=, modules_dir=, initrd=,
// boot_timeout=, networks=, manual_addresses=, qemu_args=, services=,
// disks=, debian=): the fields of shakedown.MachineConfig, in snake_case
// (memory and cpus for MemoryMiB and CPUs), and trust=[ca(), ...], the CAs
// whose files (trustFiles) join files=. Host paths are from the
// scenario's directory.
func (r *runner) machineBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name                     string
		memory, bootTimeout      starlark.Value = starlark.None, starlark.None
		cpus                     int
		files                    *starlark.Dict
		modules, kargs, qemuArgs starlark.Iterable
		networks                 starlark.Iterable
		manual                   bool
		packages                 starlark.Iterable
		lockFile                 string
		kernel, modulesDir       string
		initrd                   string
		services, disks          starlark.Iterable
		debian                   starlark.Value = starlark.None
		trust                    starlark.Iterable
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "memory?", &memory, "cpus?", &cpus, "files?", &files,
		"modules?", &modules, "kernel_args?", &kargs, "boot_timeout?", &bootTimeout,
		"networks?", &networks, "manual_addresses?", &manual,
		"packages?", &packages, "lock_file?", &lockFile,
		"kernel?", &kernel, "modules_dir?", &modulesDir, "initrd?", &initrd,
		"qemu_args?", &qemuArgs, "services?", &services, "disks?", &disks, "debian?", &debian,
		"trust?", &trust); err != nil {
		return nil, err
	}
	if err := shakedown.CheckName("machine", name); err != nil {
		return nil, err
	}
	if prev, dup := r.byName[name]; dup {
		return nil, fmt.Errorf("machine %s declared twice (first at %s)", name, prev.decl.Pos)
	}
	if hv, clash := r.hostByName[name]; clash {
		return nil, fmt.Errorf("machine %s: host %s has that name (declared at %s); names go in /etc/hosts, so they must differ", name, name, hv.pos)
	}
	var cfg shakedown.MachineConfig
	var err error
	if cfg.MemoryMiB, err = parseMemory(memory); err != nil {
		return nil, fmt.Errorf("machine %s: memory: %w", name, err)
	}
	if cpus < 0 || cpus > 64 {
		return nil, fmt.Errorf("machine %s: cpus=%d: want 1 to 64", name, cpus)
	}
	cfg.CPUs = cpus
	if cfg.Files, err = r.parseFiles(files); err != nil {
		return nil, fmt.Errorf("machine %s: files: %w", name, err)
	}
	if cfg.Modules, err = stringList(modules); err != nil {
		return nil, fmt.Errorf("machine %s: modules: %w", name, err)
	}
	if cfg.KernelArgs, err = stringList(kargs); err != nil {
		return nil, fmt.Errorf("machine %s: kernel_args: %w", name, err)
	}
	if cfg.QEMUArgs, err = stringList(qemuArgs); err != nil {
		return nil, fmt.Errorf("machine %s: qemu_args: %w", name, err)
	}
	if cfg.BootTimeout, err = parseDuration(bootTimeout); err != nil {
		return nil, fmt.Errorf("machine %s: boot_timeout: %w", name, err)
	}
	if cfg.Networks, err = r.networkNames("machine "+name+": networks", iterValues(networks)); err != nil {
		return nil, err
	}
	if cfg.Packages, err = stringList(packages); err != nil {
		return nil, fmt.Errorf("machine %s: packages: %w", name, err)
	}
	for _, p := range []struct {
		kw        string
		src       string
		dst       *string
		mayBeMiss bool
	}{{"lock_file", lockFile, &cfg.LockFile, true}, {"kernel", kernel, &cfg.Kernel, false},
		{"modules_dir", modulesDir, &cfg.ModulesDir, false}, {"initrd", initrd, &cfg.Initrd, false}} {
		if p.src == "" {
			continue
		}
		// Beside the scenario, like its files, so that they are
		// committed with it. A lock file need not exist: the first
		// build writes it.
		*p.dst = r.sc.hostPath(p.src)
		if _, err := os.Stat(*p.dst); err != nil && !p.mayBeMiss {
			return nil, fmt.Errorf("machine %s: %s: %w", name, p.kw, err)
		}
	}
	if cfg.Services, err = configList[shakedown.Service](services, "service"); err != nil {
		return nil, fmt.Errorf("machine %s: services: %w", name, err)
	}
	if err := checkServices(cfg.Services); err != nil {
		return nil, fmt.Errorf("machine %s: services: %w", name, err)
	}
	if cfg.Disks, err = configList[shakedown.Disk](disks, "disk"); err != nil {
		return nil, fmt.Errorf("machine %s: disks: %w", name, err)
	}
	if debian != starlark.None {
		d, err := configOf[shakedown.DebianSystem](debian, "debian")
		if err != nil {
			return nil, fmt.Errorf("machine %s: debian: %w", name, err)
		}
		cfg.Debian = &d
	}
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("machine %s: %w", name, err)
	}
	tf, err := trustFiles(trust, cfg.Debian != nil)
	if err != nil {
		return nil, fmt.Errorf("machine %s: trust: %w", name, err)
	}
	cfg.Files = append(cfg.Files, tf...)
	cfg.ManualAddresses = manual
	if manual && len(cfg.Networks) == 0 {
		return nil, fmt.Errorf("machine %s: manual_addresses=True without networks", name)
	}
	mv := &machineValue{r: r, decl: Declaration{Name: name, Config: cfg, Pos: thread.CallFrame(1).Pos}}
	if err := r.declare(mv); err != nil {
		return nil, err
	}
	return mv, nil
}

// checkConfig rejects, in the scenario's words, the combinations of
// keywords that the testbed would reject when it declares the machine.
func checkConfig(cfg shakedown.MachineConfig) error {
	switch {
	case cfg.Initrd != "" && cfg.LockFile != "":
		return errors.New("lock_file= pins the packages shakedown installs; a machine with its own initrd= has none: leave out lock_file")
	case cfg.Initrd != "" && len(cfg.Services) > 0:
		return errors.New("services= need shakedown's initramfs, whose agent supervises them; with initrd= set, the image's own init runs them")
	case cfg.Debian == nil:
		return nil
	case cfg.Kernel != "" || cfg.Initrd != "":
		return errors.New("a debian= machine boots Debian's kernel with its own initramfs: leave out kernel= and initrd=")
	case len(cfg.Packages) > 0:
		return errors.New("packages= are the initramfs's: a debian= machine takes them in debian(packages=[...])")
	case len(cfg.Services) > 0:
		return errors.New("a debian= machine runs systemd units: declare them in debian(units={...}), not services=")
	}
	return nil
}

// parseMemory takes MiB as an int, or a string with a unit: "512M",
// "512MiB", "2G", "2GiB".
func parseMemory(v starlark.Value) (int, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return 0, nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n < 16 || n > 1<<20 {
			return 0, fmt.Errorf("%v MiB: want 16 to %d", v, 1<<20)
		}
		return int(n), nil
	case starlark.String:
		s := strings.TrimSuffix(strings.TrimSuffix(string(v), "iB"), "B")
		unit := 1
		switch {
		case strings.HasSuffix(s, "G"):
			unit, s = 1024, strings.TrimSuffix(s, "G")
		case strings.HasSuffix(s, "M"):
			s = strings.TrimSuffix(s, "M")
		default:
			return 0, fmt.Errorf("%q: want a size such as \"512M\" or \"2G\", or an int of MiB", string(v))
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q: want a size such as \"512M\" or \"2G\"", string(v))
		}
		return parseMemory(starlark.MakeInt(n * unit))
	}
	return 0, fmt.Errorf("got %s, want an int of MiB or a string such as \"1G\"", v.Type())
}

// parseFiles reads files={guest: host path, bytes or file(...)}. A string
// is a host file or directory, relative to the scenario's directory; bytes
// are the content itself; file() sets the mode too.
func (r *runner) parseFiles(d *starlark.Dict) ([]shakedown.File, error) {
	if d == nil {
		return nil, nil
	}
	var files []shakedown.File
	for _, item := range d.Items() {
		guest, ok := starlark.AsString(item[0])
		if !ok || !path.IsAbs(guest) {
			return nil, fmt.Errorf("key %s: want an absolute guest path", item[0])
		}
		f := shakedown.File{Guest: guest}
		switch v := item[1].(type) {
		case starlark.String:
			f.Host = r.sc.hostPath(string(v))
			if _, err := os.Stat(f.Host); err != nil {
				return nil, fmt.Errorf("%s: host file: %w", guest, err)
			}
		case starlark.Bytes:
			f.Data = []byte(v)
		case *configValue[shakedown.File]:
			f = v.v
			f.Guest = guest
		default:
			return nil, fmt.Errorf("%s: got %s, want a host path (string), content (bytes, b\"...\") or file(...)", guest, v.Type())
		}
		files = append(files, f)
	}
	return files, nil
}

// stringList reads a list or tuple of strings.
func stringList(it starlark.Iterable) ([]string, error) {
	if it == nil {
		return nil, nil
	}
	var out []string
	iter := it.Iterate()
	defer iter.Done()
	var v starlark.Value
	for iter.Next(&v) {
		s, ok := starlark.AsString(v)
		if !ok {
			return nil, fmt.Errorf("got %s in the list, want strings", v.Type())
		}
		out = append(out, s)
	}
	return out, nil
}

// parseDuration takes "30s"-style strings, or numbers of seconds; None is
// zero, which means the default.
func parseDuration(v starlark.Value) (time.Duration, error) {
	var d time.Duration
	switch v := v.(type) {
	case starlark.NoneType:
		return 0, nil
	case starlark.String:
		var err error
		if d, err = time.ParseDuration(string(v)); err != nil {
			return 0, fmt.Errorf("%q: want a duration such as \"30s\" or \"5m\"", string(v))
		}
	case starlark.Int:
		n, ok := v.Int64()
		if !ok {
			return 0, fmt.Errorf("%v seconds: too large", v)
		}
		d = time.Duration(n) * time.Second
	case starlark.Float:
		d = time.Duration(float64(v) * float64(time.Second))
	default:
		return 0, fmt.Errorf("got %s, want a duration such as \"30s\" or a number of seconds", v.Type())
	}
	if d <= 0 {
		return 0, fmt.Errorf("%v: want a positive duration", d)
	}
	return d, nil
}

// Describe summarises the declaration in one line: memory, CPUs, files,
// modules, kernel arguments, Debian, services, disks and networks.
func (d Declaration) Describe() string {
	mem, cpus := d.Config.MemoryMiB, d.Config.CPUs
	if mem == 0 {
		mem = 512
	}
	if cpus == 0 {
		cpus = 1
	}
	s := fmt.Sprintf("%d MiB, %d CPU", mem, cpus)
	if len(d.Config.Files) > 0 {
		s += fmt.Sprintf(", %d file(s)", len(d.Config.Files))
	}
	if len(d.Config.Modules) > 0 {
		s += ", modules " + strings.Join(d.Config.Modules, " ")
	}
	if len(d.Config.KernelArgs) > 0 {
		s += ", kernel args " + strings.Join(d.Config.KernelArgs, " ")
	}
	if d.Config.Debian != nil {
		s += ", Debian"
		if d.Config.Debian.Suite != "" {
			s += " " + d.Config.Debian.Suite
		}
	}
	if len(d.Config.Services) > 0 {
		var names []string
		for _, svc := range d.Config.Services {
			names = append(names, svc.Name)
		}
		s += ", services " + strings.Join(names, " ")
	}
	if len(d.Config.Disks) > 0 {
		s += fmt.Sprintf(", %d disk(s)", len(d.Config.Disks))
	}
	if len(d.Config.Networks) > 0 {
		s += ", networks " + strings.Join(d.Config.Networks, " ")
		if d.Config.ManualAddresses {
			s += " (manual addresses)"
		}
	}
	return s
}
