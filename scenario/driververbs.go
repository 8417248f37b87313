package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/screen"
)

// The rest of the NixOS driver's machine verbs: the keyboard and the
// screens (package screen), the serial console, QEMU's monitor and
// events, systemd's unit details and user units, and what cannot apply.
// Starlark scenarios and Python scripts call them alike.
func init() {
	maps.Copy(verbs, map[string]verbFunc{
		"send_key": sendKey,
		"send_chars": stringVerb("send_chars", "chars", func(m *shakedown.Machine, s string) (starlark.Value, error) {
			return starlark.None, screen.SendChars(m, s)
		}),
		"send_console":         stringVerb("send_console", "chars", func(m *shakedown.Machine, s string) (starlark.Value, error) { return starlark.None, m.SendConsoleE(s) }),
		"send_monitor_command": stringVerb("send_monitor_command", "command", monitorCommand),
		"get_screen_text":      noArgs("get_screen_text", func(_ *verbCall, m *shakedown.Machine) (starlark.Value, error) { return stringResult(screen.Text(m)) }),
		"get_console_log": noArgs("get_console_log", func(_ *verbCall, m *shakedown.Machine) (starlark.Value, error) {
			return starlark.String(m.ConsoleLog()), nil
		}),
		"is_up":                  noArgs("is_up", func(_ *verbCall, m *shakedown.Machine) (starlark.Value, error) { return starlark.Bool(m.IsUp()), nil }),
		"ssh_command":            noArgs("ssh_command", sshCommand),
		"shell_interact":         noArgs("shell_interact", shellInteract),
		"wait_for_text":          waitForText,
		"get_tty_text":           ttyVerb("get_tty_text", false),
		"dump_tty_contents":      ttyVerb("dump_tty_contents", false),
		"wait_until_tty_matches": ttyVerb("wait_until_tty_matches", true),
		"sleep":                  sleepVerb,
		"wait_for_qmp_event":     waitForQMPEvent,
		"get_unit_info":          unitInfo,
		"get_unit_property":      unitProperty,
		"start_job":              job("start"),
		"stop_job":               job("stop"),
		"wait_for_x":             notGraphical("wait_for_x", "there is no X server to wait for"),
		"wait_for_window":        notGraphical("wait_for_window", "there is no X server to ask for windows"),
	})
}

// verbTimeout is the bound of a verb's wait: its timeout=, else the
// default of every wait.
func (c *verbCall) context() (context.Context, context.CancelFunc) {
	d := c.timeout
	if d == 0 {
		d = shakedown.DefaultWait
	}
	return context.WithTimeout(c.r.tb.Context(), d)
}

func stringResult(s string, err error) (starlark.Value, error) {
	if err != nil {
		return nil, err
	}
	return starlark.String(s), nil
}

// stringVerb makes a verb of one string argument.
func stringVerb(verb, param string, f func(*shakedown.Machine, string) (starlark.Value, error)) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var s string
		if err := c.unpack(param, &s); err != nil {
			return "", nil, err
		}
		return c.title(verb, s), func(m *shakedown.Machine) (starlark.Value, error) { return f(m, s) }, nil
	}
}

// noArgs makes a verb of no arguments.
func noArgs(verb string, f func(*verbCall, *shakedown.Machine) (starlark.Value, error)) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		if err := c.unpack(); err != nil {
			return "", nil, err
		}
		return c.title(verb), func(m *shakedown.Machine) (starlark.Value, error) { return f(c, m) }, nil
	}
}

// sendKey is send_key(key, ...): QEMU key names, held together when
// joined by "-" ("ctrl-alt-delete"). The driver's delay= and log= are
// accepted and change nothing.
func sendKey(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var keys []string
	for i, a := range c.args {
		s, ok := starlark.AsString(a)
		if !ok {
			return "", nil, fmt.Errorf("%s: for parameter %d: got %s, want string", c.name, i+1, a.Type())
		}
		keys = append(keys, s)
	}
	for _, kv := range c.kwargs {
		if k, _ := starlark.AsString(kv[0]); k != "delay" && k != "log" {
			return "", nil, fmt.Errorf("%s: unexpected keyword argument %s", c.name, k)
		}
	}
	if len(keys) == 0 {
		return "", nil, fmt.Errorf("%s: missing argument for key", c.name)
	}
	return c.title("send_key", strings.Join(keys, " ")), func(m *shakedown.Machine) (starlark.Value, error) {
		return starlark.None, screen.SendKeys(m, keys...)
	}, nil
}

// monitorCommand runs a command of QEMU's human monitor and returns what
// it printed.
func monitorCommand(m *shakedown.Machine, cmd string) (starlark.Value, error) {
	var out string
	err := m.QMPE("human-monitor-command", map[string]string{"command-line": cmd}, &out)
	return stringResult(out, err)
}

// sshCommand is the command that opens a shell in the machine from
// another terminal.
func sshCommand(c *verbCall, m *shakedown.Machine) (starlark.Value, error) {
	return starlark.String(fmt.Sprintf("shakedown ssh %s/%s", filepath.Base(c.r.tb.OutputDir()), m.Name())), nil
}

// shellInteract is the driver's shell_interact: a test cannot hand its
// terminal to a shell, so it says how to open one beside it.
func shellInteract(c *verbCall, m *shakedown.Machine) (starlark.Value, error) {
	cmd, _ := sshCommand(c, m)
	c.r.log.Printf("%s: for a shell in the machine, run in another terminal: %s", m.Name(), string(cmd.(starlark.String)))
	return cmd, nil
}

func waitForText(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var pattern string
	if err := c.unpack("regex", &pattern); err != nil {
		return "", nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return c.title("wait_for_text", pattern), func(m *shakedown.Machine) (starlark.Value, error) {
		ctx, cancel := c.context()
		defer cancel()
		return stringResult(screen.WaitForText(ctx, m, re))
	}, nil
}

// ttyVerb makes get_tty_text(tty), dump_tty_contents(tty) (which logs
// it) and wait_until_tty_matches(tty, regexp). tty is a number, or a
// string of one, as the driver's scripts pass either.
func ttyVerb(verb string, wait bool) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var ttyArg starlark.Value
		var pattern string
		var err error
		if wait {
			err = c.unpack("tty", &ttyArg, "regexp", &pattern)
		} else {
			err = c.unpack("tty", &ttyArg)
		}
		if err != nil {
			return "", nil, err
		}
		s, _ := starlark.AsString(ttyArg)
		if s == "" {
			s = ttyArg.String()
		}
		tty, err := strconv.Atoi(s)
		if err != nil {
			return "", nil, fmt.Errorf("%s: tty %s: want a number such as 1", c.name, ttyArg)
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", c.name, err)
		}
		return c.title(verb, tty), func(m *shakedown.Machine) (starlark.Value, error) {
			if wait {
				ctx, cancel := c.context()
				defer cancel()
				return stringResult(screen.WaitForTTY(ctx, m, tty, re))
			}
			text, err := screen.TTYText(m, tty)
			if err == nil && verb == "dump_tty_contents" {
				c.r.log.Printf("%s: tty%d:\n%s", m.Name(), tty, text)
				return starlark.None, nil
			}
			return stringResult(text, err)
		}, nil
	}
}

// sleepVerb is sleep(secs): wait, but no longer than the testbed lives.
func sleepVerb(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var v starlark.Value
	if err := c.unpack("secs", &v); err != nil {
		return "", nil, err
	}
	d, err := parseDuration(v)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return c.title("sleep", d), func(m *shakedown.Machine) (starlark.Value, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return starlark.None, nil
		case <-c.r.tb.Context().Done():
			return nil, context.Cause(c.r.tb.Context())
		}
	}, nil
}

// waitForQMPEvent is wait_for_qmp_event(filter): the next event of the
// machine's QEMU that filter accepts, as a dict of event, data and
// timestamp. filter is an event name or a function of such a dict that
// returns a bool.
func waitForQMPEvent(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var filter starlark.Value
	if err := c.unpack("event_filter", &filter); err != nil {
		return "", nil, err
	}
	name, isName := starlark.AsString(filter)
	fn, isFn := filter.(starlark.Callable)
	if !isName && !isFn {
		return "", nil, fmt.Errorf("%s: event_filter: got %s, want an event name or a function of the event", c.name, filter.Type())
	}
	return c.title("wait_for_qmp_event", filter), func(m *shakedown.Machine) (starlark.Value, error) {
		events, stop, err := m.QMPEventsE()
		if err != nil {
			return nil, err
		}
		defer stop()
		ctx, cancel := c.context()
		defer cancel()
		for {
			select {
			case e, ok := <-events:
				if !ok {
					return nil, fmt.Errorf("waiting for a QMP event: %w: QEMU exited", shakedown.ErrMachineDied)
				}
				ev, err := eventValue(e)
				if err != nil {
					return nil, err
				}
				if isName && e.Name == name {
					return ev, nil
				}
				if isFn {
					ok, err := starlark.Call(c.r.thread, fn, starlark.Tuple{ev}, nil)
					if err != nil {
						return nil, err
					}
					if ok.Truth() {
						return ev, nil
					}
				}
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: no QMP event matched %s", shakedown.ErrTimeout, filter)
			}
		}
	}, nil
}

// eventMap is a QMP event as the driver's filters see it: "event",
// "data" and "timestamp", as QMP sends them.
func eventMap(e shakedown.QMPEvent) (map[string]any, error) {
	var data any
	if len(e.Data) > 0 {
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return nil, fmt.Errorf("QMP event %s: %w", e.Name, err)
		}
	}
	return map[string]any{"event": e.Name, "data": data, "timestamp": float64(e.Time.UnixMicro()) / 1e6}, nil
}

// eventValue is eventMap as a Starlark dict.
func eventValue(e shakedown.QMPEvent) (starlark.Value, error) {
	m, err := eventMap(e)
	if err != nil {
		return nil, err
	}
	return toStarlark(m)
}

// notGraphical makes a verb of a graphical session that shakedown's
// machines do not have.
func notGraphical(verb, why string) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		return "", nil, fmt.Errorf("%s: %w: no graphical guest is declared: shakedown's machines boot to text consoles, and %s (read the screen with get_screen_text or wait_for_text)", c.name, errors.ErrUnsupported, why)
	}
}
