package scenario

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/shakedown-dev/shakedown"
)

// verbFunc unpacks a verb's arguments (timeout= already taken out) and
// returns the step's title and what the step does. Unpacking runs in the
// load pass too, so that wrong arguments to a top-level step fail before
// anything boots.
type verbFunc func(c *verbCall) (title string, do func(m *shakedown.Machine) (starlark.Value, error), err error)

// verbCall is one call of a verb from Starlark.
type verbCall struct {
	r       *runner
	name    string // the builtin's name, "web.succeed"
	machine string
	args    starlark.Tuple
	kwargs  []starlark.Tuple
	timeout time.Duration // timeout=, 0 when not given
	// wrap, if set, is how the front end runs a shell command
	// (driverShell for Python scripts).
	wrap func(cmd string) string
}

// shell is cmd as the front end runs it.
func (c *verbCall) shell(cmd string) string {
	if c.wrap == nil {
		return cmd
	}
	return c.wrap(cmd)
}

func (c *verbCall) unpack(pairs ...any) error {
	return starlark.UnpackArgs(c.name, c.args, c.kwargs, pairs...)
}

// title names a step in the log as the NixOS driver does: "web: succeed
// "cmd"", with long arguments cut.
func (c *verbCall) title(verb string, arg ...any) string {
	t := c.machine + ": " + verb
	for _, a := range arg {
		s := fmt.Sprint(a)
		if _, ok := a.(string); ok {
			s = fmt.Sprintf("%q", a)
		}
		if len(s) > maxTitleArg {
			s = s[:maxTitleArg] + "…"
		}
		t += " " + s
	}
	return t
}

// maxTitleArg keeps a step's log line on one screen line.
const maxTitleArg = 100

// verbs are the machine verbs by their Starlark (NixOS driver) names. Each
// also takes timeout=, which bounds its waits and commands
// (Machine.WithTimeout).
var verbs = map[string]verbFunc{
	"start":             power("start", (*shakedown.Machine).StartE),
	"shutdown":          power("shutdown", (*shakedown.Machine).ShutdownE),
	"crash":             power("crash", func(m *shakedown.Machine) error { m.Crash(); return nil }),
	"reboot":            power("reboot", (*shakedown.Machine).RebootE),
	"wait_for_shutdown": power("wait_for_shutdown", (*shakedown.Machine).WaitForShutdownE),

	"execute": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var cmd string
		if err := c.unpack("cmd", &cmd); err != nil {
			return "", nil, err
		}
		return c.title("execute", cmd), func(m *shakedown.Machine) (starlark.Value, error) {
			status, out, err := m.ExecuteE(c.shell(cmd))
			if err != nil {
				return nil, err
			}
			return starlark.Tuple{starlark.MakeInt(status), starlark.String(out)}, nil
		}, nil
	},
	"exec":                execVerb,
	"succeed":             commands("succeed", (*shakedown.Machine).SucceedE),
	"fail":                commands("fail", (*shakedown.Machine).FailE),
	"wait_until_succeeds": command("wait_until_succeeds", (*shakedown.Machine).WaitUntilSucceedsE),
	"wait_until_fails":    command("wait_until_fails", (*shakedown.Machine).WaitUntilFailsE),

	"wait_for_file": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var p string
		if err := c.unpack("path", &p); err != nil {
			return "", nil, err
		}
		return c.title("wait_for_file", p), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.None, m.WaitForFileE(p)
		}, nil
	},
	"wait_for_open_port":   port("wait_for_open_port", (*shakedown.Machine).WaitForOpenPortE),
	"wait_for_closed_port": port("wait_for_closed_port", (*shakedown.Machine).WaitForClosedPortE),
	"wait_for_open_unix_socket": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var p string
		if err := c.unpack("path", &p); err != nil {
			return "", nil, err
		}
		return c.title("wait_for_open_unix_socket", p), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.None, m.WaitForOpenUnixSocketE(p)
		}, nil
	},
	"wait_for_console_text": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var pattern string
		if err := c.unpack("regex", &pattern); err != nil {
			return "", nil, err
		}
		if _, err := regexp.Compile(pattern); err != nil {
			return "", nil, fmt.Errorf("%s: %w", c.name, err)
		}
		return c.title("wait_for_console_text", pattern), func(m *shakedown.Machine) (starlark.Value, error) {
			match, err := m.WaitForConsoleTextE(pattern)
			return starlark.String(match), err
		}, nil
	},

	"copy_from_host": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var src, dst string
		if err := c.unpack("src", &src, "dst", &dst); err != nil {
			return "", nil, err
		}
		if !path.IsAbs(dst) {
			return "", nil, fmt.Errorf("%s: dst %q: want an absolute guest path", c.name, dst)
		}
		host := c.r.sc.hostPath(src)
		return c.title("copy_from_host", src, dst), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.None, m.CopyToE(host, dst)
		}, nil
	},
	"copy_from_vm": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var src, dst string
		if err := c.unpack("src", &src, "dst?", &dst); err != nil {
			return "", nil, err
		}
		if dst != "" && !filepath.IsLocal(dst) {
			return "", nil, fmt.Errorf("%s: dst %q: want a directory inside the artifacts directory", c.name, dst)
		}
		// As in the NixOS driver, dst is a directory under the run's
		// output; the copy keeps the guest file's name.
		rel := filepath.Join(dst, path.Base(src))
		keep := c.r.opts.KeepDir
		return c.title("copy_from_vm", src), func(m *shakedown.Machine) (starlark.Value, error) {
			host := rel
			if keep != "" {
				host = filepath.Join(keep, rel)
			}
			p, err := m.CopyFromE(src, host)
			return starlark.String(p), err
		}, nil
	},
	"wait_for_unit":      waitForUnit,
	"systemctl":          systemctl,
	"unit_state":         unitState,
	"require_unit_state": requireUnitState,

	"block":   blockVerb("block", (*shakedown.Machine).BlockE),
	"unblock": blockVerb("unblock", (*shakedown.Machine).UnblockE),
	"forward_port": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var p int
		if err := c.unpack("port", &p); err != nil {
			return "", nil, err
		}
		if p < 1 || p > 65535 {
			return "", nil, fmt.Errorf("%s: port %d: want 1 to 65535", c.name, p)
		}
		return c.title("forward_port", p), func(m *shakedown.Machine) (starlark.Value, error) {
			addr, err := m.ForwardPortE(p)
			return starlark.String(addr), err
		}, nil
	},
	"pid": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		if err := c.unpack(); err != nil {
			return "", nil, err
		}
		return c.title("pid"), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.MakeInt(m.PID()), nil
		}, nil
	},
	"screenshot": func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var name string
		if err := c.unpack("name", &name); err != nil {
			return "", nil, err
		}
		keep := c.r.opts.KeepDir
		return c.title("screenshot", name), func(m *shakedown.Machine) (starlark.Value, error) {
			p, err := m.ScreenshotE(name)
			if err != nil || keep == "" {
				return starlark.String(p), err
			}
			kept, err := keepCopy(p, keep)
			if err != nil {
				return nil, fmt.Errorf("keep screenshot: %w", err)
			}
			return starlark.String(kept), nil
		}, nil
	},
}

// execVerb is exec(cmd, env=, dir=, stdin=): Machine.Exec, which runs a
// command with its environment, directory and input and returns what it
// left, as a struct of status, signal, stdout and stderr; a non-zero status
// is not a failure.
func execVerb(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var (
		cmd, dir string
		env      *starlark.Dict
		stdin    starlark.Value = starlark.None
	)
	if err := c.unpack("cmd", &cmd, "env?", &env, "dir?", &dir, "stdin?", &stdin); err != nil {
		return "", nil, err
	}
	command := shakedown.Command{Cmd: cmd, Dir: dir}
	var err error
	if command.Env, err = stringDict(env); err != nil {
		return "", nil, fmt.Errorf("%s: env: %w", c.name, err)
	}
	if dir != "" && !path.IsAbs(dir) {
		return "", nil, fmt.Errorf("%s: dir %q: want an absolute guest path", c.name, dir)
	}
	var input string
	switch v := stdin.(type) {
	case starlark.NoneType:
	case starlark.String:
		input = string(v)
	case starlark.Bytes:
		input = string(v)
	default:
		return "", nil, fmt.Errorf("%s: stdin: got %s, want a string or bytes", c.name, stdin.Type())
	}
	return c.title("exec", cmd), func(m *shakedown.Machine) (starlark.Value, error) {
		if stdin != starlark.None {
			command.Stdin = strings.NewReader(input)
		}
		res, err := m.Exec(command)
		if err != nil {
			return nil, err
		}
		return starlarkstruct.FromStringDict(starlark.String("result"), starlark.StringDict{
			"status": starlark.MakeInt(res.Status),
			"signal": starlark.String(res.Signal),
			"stdout": starlark.String(res.Stdout),
			"stderr": starlark.String(res.Stderr),
		}), nil
	}, nil
}

// stringDict reads a dict of strings to strings.
func stringDict(d *starlark.Dict) (map[string]string, error) {
	if d == nil || d.Len() == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, item := range d.Items() {
		k, ok1 := starlark.AsString(item[0])
		v, ok2 := starlark.AsString(item[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("got %s: %s, want strings to strings", item[0].Type(), item[1].Type())
		}
		out[k] = v
	}
	return out, nil
}

// blockVerb makes block(*networks) and unblock(*networks): the machine's
// links to the networks named (values or names), or to all of its
// networks when none is.
func blockVerb(verb string, f func(*shakedown.Machine, ...string) error) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		if len(c.kwargs) > 0 {
			return "", nil, fmt.Errorf("%s: unexpected keyword argument %s", c.name, c.kwargs[0][0])
		}
		nets, err := c.r.networkNames(c.name, c.args)
		if err != nil {
			return "", nil, err
		}
		on := c.r.byName[c.machine].decl.Config.Networks
		if len(on) == 0 {
			return "", nil, fmt.Errorf("%s: machine %s is on no network", c.name, c.machine)
		}
		for _, n := range nets {
			if !contains(on, n) {
				return "", nil, fmt.Errorf("%s: machine %s is not on network %s (it joins %s)", c.name, c.machine, n, strings.Join(on, ", "))
			}
		}
		args := make([]any, len(nets))
		for i, n := range nets {
			args[i] = n
		}
		return c.title(verb, args...), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.None, f(m, nets...)
		}, nil
	}
}

// power makes a verb without arguments.
func power(verb string, f func(*shakedown.Machine) error) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		if err := c.unpack(); err != nil {
			return "", nil, err
		}
		return c.title(verb), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.None, f(m)
		}, nil
	}
}

// command makes a verb of one shell command that returns its output.
func command(verb string, f func(*shakedown.Machine, string) (string, error)) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var cmd string
		if err := c.unpack("cmd", &cmd); err != nil {
			return "", nil, err
		}
		return c.title(verb, cmd), func(m *shakedown.Machine) (starlark.Value, error) {
			out, err := f(m, c.shell(cmd))
			return starlark.String(out), err
		}, nil
	}
}

// commands makes a verb of one or more shell commands, run in turn, that
// returns their outputs joined, as the NixOS driver's succeed(*commands).
func commands(verb string, f func(*shakedown.Machine, string) (string, error)) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		if len(c.kwargs) > 0 {
			return "", nil, fmt.Errorf("%s: unexpected keyword argument %s", c.name, c.kwargs[0][0])
		}
		if len(c.args) == 0 {
			return "", nil, fmt.Errorf("%s: missing argument for cmd", c.name)
		}
		cmds := make([]string, len(c.args))
		for i, a := range c.args {
			s, ok := a.(starlark.String)
			if !ok {
				return "", nil, fmt.Errorf("%s: for parameter %d: got %s, want string", c.name, i+1, a.Type())
			}
			cmds[i] = string(s)
		}
		return c.title(verb, strings.Join(cmds, "; ")), func(m *shakedown.Machine) (starlark.Value, error) {
			var out strings.Builder
			for _, cmd := range cmds {
				o, err := f(m, c.shell(cmd))
				if err != nil {
					return nil, err
				}
				out.WriteString(o)
			}
			return starlark.String(out.String()), nil
		}, nil
	}
}

// port makes a verb of a TCP port and an optional address in the guest.
func port(verb string, f func(*shakedown.Machine, int, ...string) error) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var p int
		var addr starlark.Value = starlark.None
		if err := c.unpack("port", &p, "addr?", &addr); err != nil {
			return "", nil, err
		}
		if p < 1 || p > 65535 {
			return "", nil, fmt.Errorf("%s: port %d: want 1 to 65535", c.name, p)
		}
		var addrs []string
		switch a := addr.(type) {
		case starlark.NoneType:
		case starlark.String:
			addrs = append(addrs, string(a))
		default:
			return "", nil, fmt.Errorf("%s: for parameter addr: got %s, want string or None", c.name, addr.Type())
		}
		args := []any{p}
		for _, a := range addrs {
			args = append(args, a)
		}
		return c.title(verb, args...), func(m *shakedown.Machine) (starlark.Value, error) {
			return starlark.None, f(m, p, addrs...)
		}, nil
	}
}

// takeTimeout removes timeout= from a verb's keyword arguments.
func takeTimeout(kwargs []starlark.Tuple) ([]starlark.Tuple, starlark.Value) {
	for i, kv := range kwargs {
		if k, _ := starlark.AsString(kv[0]); k == "timeout" {
			rest := append(append([]starlark.Tuple(nil), kwargs[:i]...), kwargs[i+1:]...)
			return rest, kv[1]
		}
	}
	return kwargs, starlark.None
}

// keepCopy copies an artifact into dir, where it survives a passing run.
func keepCopy(src, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(src))
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}
