package scenario

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
)

// configValue is a value of the Go API's configuration that machine()
// takes: what service(), readiness(), disk(), debian() and file() return.
// Their keywords are the snake_case of the Go fields.
type configValue[T any] struct {
	kind string
	desc string
	v    T
}

func (c *configValue[T]) String() string        { return fmt.Sprintf("<%s %s>", c.kind, c.desc) }
func (c *configValue[T]) Type() string          { return c.kind }
func (c *configValue[T]) Freeze()               {}
func (c *configValue[T]) Truth() starlark.Bool  { return starlark.True }
func (c *configValue[T]) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: %s", c.kind) }

// restartPolicies are Service.Restart's values.
var restartPolicies = []string{"", "no", "on-failure", "always"}

// serviceBuiltin is service(name, command, env=, after=, restart=,
// ready=): a shakedown.Service for machine(services=[...]).
func serviceBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		s     shakedown.Service
		env   *starlark.Dict
		after starlark.Iterable
		ready starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &s.Name, "command", &s.Command,
		"env?", &env, "after?", &after, "restart?", &s.Restart, "ready?", &ready); err != nil {
		return nil, err
	}
	if s.Name == "" || s.Command == "" {
		return nil, fmt.Errorf("%s: want a name and a command, such as service(\"web\", \"httpd -f -p 80\")", b.Name())
	}
	if strings.ContainsAny(s.Name, " \t\n/") {
		return nil, fmt.Errorf("%s: name %q: want a unit name without spaces or slashes", b.Name(), s.Name)
	}
	var err error
	if s.Env, err = stringDict(env); err != nil {
		return nil, fmt.Errorf("service %s: env: %w", s.Name, err)
	}
	if s.After, err = stringList(after); err != nil {
		return nil, fmt.Errorf("service %s: after: %w (names of services)", s.Name, err)
	}
	if !contains(restartPolicies, s.Restart) {
		return nil, fmt.Errorf("service %s: restart %q: want \"no\", \"on-failure\" or \"always\"", s.Name, s.Restart)
	}
	if ready != starlark.None {
		r, err := configOf[shakedown.Readiness](ready, "readiness")
		if err != nil {
			return nil, fmt.Errorf("service %s: ready: %w", s.Name, err)
		}
		s.Ready = r
	}
	return &configValue[shakedown.Service]{kind: "service", desc: s.Name, v: s}, nil
}

// readinessBuiltin is readiness(port=, file=, command=, timeout=): when a
// service counts as active, for service(ready=).
func readinessBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		r       shakedown.Readiness
		timeout starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "port?", &r.Port, "file?", &r.File,
		"command?", &r.Command, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if r.Port < 0 || r.Port > 65535 {
		return nil, fmt.Errorf("%s: port %d: want 1 to 65535", b.Name(), r.Port)
	}
	var err error
	if r.Timeout, err = parseDuration(timeout); err != nil {
		return nil, fmt.Errorf("%s: timeout: %w", b.Name(), err)
	}
	var desc []string
	for _, c := range []struct {
		set  bool
		what string
	}{{r.Port != 0, fmt.Sprintf("port %d", r.Port)}, {r.File != "", "file " + r.File}, {r.Command != "", "command"}} {
		if c.set {
			desc = append(desc, c.what)
		}
	}
	return &configValue[shakedown.Readiness]{kind: "readiness", desc: strings.Join(desc, ", "), v: r}, nil
}

// diskBuiltin is disk(name=, size_mib=, read_only=, contents=,
// image=): a shakedown.Disk for machine(disks=[...]); contents and image
// are host paths from the scenario's directory.
func (r *runner) diskBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d shakedown.Disk
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name?", &d.Name, "size_mib?", &d.SizeMiB,
		"read_only?", &d.ReadOnly, "contents?", &d.Contents, "image?", &d.Image); err != nil {
		return nil, err
	}
	what := "disk"
	if d.Name != "" {
		what += " " + d.Name
	}
	if d.SizeMiB < 0 {
		return nil, fmt.Errorf("%s: size_mib=%d: want a size in MiB, or 0 for a contents disk", what, d.SizeMiB)
	}
	for _, p := range []struct {
		kw  string
		dst *string
	}{{"contents", &d.Contents}, {"image", &d.Image}} {
		if *p.dst == "" {
			continue
		}
		*p.dst = r.sc.hostPath(*p.dst)
		if _, err := os.Stat(*p.dst); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, p.kw, err)
		}
	}
	switch {
	case d.Contents != "" && d.Image != "":
		return nil, fmt.Errorf("%s: contents= or image=, not both", what)
	case d.Image != "" && d.SizeMiB != 0:
		return nil, fmt.Errorf("%s: an image= disk has the image's size: leave out size_mib", what)
	case d.Contents == "" && d.Image == "" && d.SizeMiB == 0:
		return nil, fmt.Errorf("%s: a blank disk needs size_mib= (or contents= or image=)", what)
	case d.Contents == "" && d.Image == "" && d.ReadOnly:
		return nil, fmt.Errorf("%s: a blank read_only=True disk can hold nothing: give it contents= or image=", what)
	}
	return &configValue[shakedown.Disk]{kind: "disk", desc: d.Name, v: d}, nil
}

// debianBuiltin is debian(suite=, mirror=, packages=, units=, size_mib=):
// a shakedown.DebianSystem for machine(debian=), which makes the machine a
// full Debian system with systemd. Its packages are locked by machine's
// lock_file=, as DebianSystem.Lock is filled from MachineConfig.LockFile.
func debianBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		d        shakedown.DebianSystem
		packages starlark.Iterable
		units    *starlark.Dict
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "suite?", &d.Suite, "mirror?", &d.Mirror,
		"packages?", &packages, "units?", &units, "size_mib?", &d.SizeMiB); err != nil {
		return nil, err
	}
	var err error
	if d.Packages, err = stringList(packages); err != nil {
		return nil, fmt.Errorf("%s: packages: %w", b.Name(), err)
	}
	if d.Units, err = stringDict(units); err != nil {
		return nil, fmt.Errorf("%s: units: %w (unit file names to their text)", b.Name(), err)
	}
	// The image's own rules: unit file names, the size.
	if err := d.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	desc := d.Suite
	if desc == "" {
		desc = "(host's suite)"
	}
	return &configValue[shakedown.DebianSystem]{kind: "debian", desc: desc, v: d}, nil
}

// fileBuiltin is file(host=, data=, mode=): a value of files= that
// sets the guest file's mode (0 keeps the host file's, or 0644 for data).
func (r *runner) fileBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		f    shakedown.File
		data starlark.Value = starlark.None
		mode int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "host?", &f.Host, "data?", &data, "mode?", &mode); err != nil {
		return nil, err
	}
	switch v := data.(type) {
	case starlark.NoneType:
	case starlark.String:
		f.Data = []byte(v)
	case starlark.Bytes:
		f.Data = []byte(v)
	default:
		return nil, fmt.Errorf("%s: data: got %s, want bytes or a string", b.Name(), data.Type())
	}
	if (f.Host == "") == (data == starlark.None) {
		return nil, fmt.Errorf("%s: want host= (a host path) or data= (the content), one of them", b.Name())
	}
	if mode < 0 || mode > 0o7777 {
		return nil, fmt.Errorf("%s: mode %#o: want permission bits such as 0o755", b.Name(), mode)
	}
	f.Mode = os.FileMode(mode)
	if f.Host != "" {
		f.Host = r.sc.hostPath(f.Host)
		if _, err := os.Stat(f.Host); err != nil {
			return nil, fmt.Errorf("%s: host: %w", b.Name(), err)
		}
	}
	return &configValue[shakedown.File]{kind: "file", desc: f.Host, v: f}, nil
}

// configOf reads one configValue; want names the builtin that makes it.
func configOf[T any](v starlark.Value, want string) (T, error) {
	c, ok := v.(*configValue[T])
	if !ok {
		var zero T
		return zero, fmt.Errorf("got %s, want %s(...)", v.Type(), want)
	}
	return c.v, nil
}

// configList reads a list of one kind of configValue, as machine()'s
// services= and disks= take them; want names the builtin that makes them.
func configList[T any](it starlark.Iterable, want string) ([]T, error) {
	var out []T
	for _, v := range iterValues(it) {
		c, err := configOf[T](v, want)
		if err != nil {
			return nil, fmt.Errorf("%w in the list", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// checkServices checks what machine() can of its services before anything
// boots: names given once, and After naming services of the machine.
// The agent's own rules (cycles among them) are checked when the testbed
// declares the machine.
func checkServices(svcs []shakedown.Service) error {
	names := map[string]bool{}
	for _, s := range svcs {
		if names[s.Name] {
			return fmt.Errorf("service %s given twice", s.Name)
		}
		names[s.Name] = true
	}
	for _, s := range svcs {
		for _, a := range s.After {
			if !names[a] {
				known := make([]string, 0, len(names))
				for n := range names {
					known = append(known, n)
				}
				sort.Strings(known)
				return fmt.Errorf("service %s: after %q: no such service on this machine (it has %s)", s.Name, a, strings.Join(known, ", "))
			}
		}
	}
	return nil
}
