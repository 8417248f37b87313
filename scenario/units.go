package scenario

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/agentclient"
)

// unitStates are systemd's ActiveState values, what UnitState returns.
var unitStates = []string{"inactive", "activating", "active", "deactivating", "failed"}

// waitForUnit is wait_for_unit(unit, user=None): until the unit is
// active; it fails at once when the unit fails or is unknown
// (Machine.WaitForUnitE). A user's unit is asked of the user's systemd
// manager (systemctl --user --machine=USER@), until it is active.
func waitForUnit(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var unit, user string
	if err := c.unpack("unit", &unit, "user?", &user); err != nil {
		return "", nil, err
	}
	if unit == "" {
		return "", nil, fmt.Errorf("%s: empty unit name", c.name)
	}
	return c.title("wait_for_unit", unit), func(m *shakedown.Machine) (starlark.Value, error) {
		if user != "" {
			_, err := m.WaitUntilSucceedsE(userSystemctl(user, "is-active "+agentclient.ShellQuote(unit)))
			return starlark.None, err
		}
		return starlark.None, m.WaitForUnitE(unit)
	}, nil
}

// userSystemctl is the command line of systemctl for a user's manager.
// Agent-supervised services have no users: on an initramfs machine the
// command fails for want of systemctl.
func userSystemctl(user, args string) string {
	return "systemctl --user --machine=" + agentclient.ShellQuote(user+"@") + " " + args
}

// systemctl is systemctl(args, user=None): (status, output), as the NixOS
// driver's; a systemctl that fails is a status, not a failed step
// (Machine.SystemctlE).
func systemctl(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var args, user string
	if err := c.unpack("args", &args, "user?", &user); err != nil {
		return "", nil, err
	}
	if strings.TrimSpace(args) == "" {
		return "", nil, fmt.Errorf("%s: empty command: want one such as \"is-active web\"", c.name)
	}
	return c.title("systemctl", args), func(m *shakedown.Machine) (starlark.Value, error) {
		status, out, err := runSystemctl(m, user, args)
		if err != nil {
			return nil, err
		}
		return starlark.Tuple{starlark.MakeInt(status), starlark.String(out)}, nil
	}, nil
}

// runSystemctl runs systemctl ARGS, as the user's when user is set. ARGS
// go to the guest's shell unquoted, as systemctl(...) takes them, which
// unit names never need.
func runSystemctl(m *shakedown.Machine, user, args string) (int, string, error) {
	if user != "" {
		return m.ExecuteE(userSystemctl(user, args))
	}
	return m.SystemctlE(args)
}

// job makes start_job(name, user=None) and stop_job: systemctl start or
// stop, (status, output), as the driver's.
func job(action string) verbFunc {
	return func(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
		var unit, user string
		if err := c.unpack("jobname", &unit, "user?", &user); err != nil {
			return "", nil, err
		}
		return c.title(action+"_job", unit), func(m *shakedown.Machine) (starlark.Value, error) {
			status, out, err := runSystemctl(m, user, action+" "+unit)
			if err != nil {
				return nil, err
			}
			return starlark.Tuple{starlark.MakeInt(status), starlark.String(out)}, nil
		}, nil
	}
}

// showUnit is `systemctl show UNIT` as a map of its properties.
func showUnit(m *shakedown.Machine, user, unit string) (map[string]string, error) {
	status, out, err := runSystemctl(m, user, "--no-pager show "+unit)
	if err != nil {
		return nil, err
	}
	if status != 0 {
		return nil, fmt.Errorf("systemctl show %s: status %d: %s", unit, status, strings.TrimSpace(out))
	}
	props := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			props[k] = v
		}
	}
	return props, nil
}

// unitInfo is get_unit_info(unit, user=None): the unit's properties, as
// `systemctl show` gives them, in a dict.
func unitInfo(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var unit, user string
	if err := c.unpack("unit", &unit, "user?", &user); err != nil {
		return "", nil, err
	}
	return c.title("get_unit_info", unit), func(m *shakedown.Machine) (starlark.Value, error) {
		props, err := showUnit(m, user, unit)
		if err != nil {
			return nil, err
		}
		d := starlark.NewDict(len(props))
		for k, v := range props {
			d.SetKey(starlark.String(k), starlark.String(v))
		}
		return d, nil
	}, nil
}

// unitProperty is get_unit_property(unit, property, user=None).
func unitProperty(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var unit, prop, user string
	if err := c.unpack("unit", &unit, "property", &prop, "user?", &user); err != nil {
		return "", nil, err
	}
	return c.title("get_unit_property", unit, prop), func(m *shakedown.Machine) (starlark.Value, error) {
		props, err := showUnit(m, user, unit)
		if err != nil {
			return nil, err
		}
		v, ok := props[prop]
		if !ok {
			return nil, fmt.Errorf("unit %s has no property %s", unit, prop)
		}
		return starlark.String(v), nil
	}, nil
}

// unitState is unit_state(unit): systemd's ActiveState of the unit
// (Machine.UnitStateE).
func unitState(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var unit string
	if err := c.unpack("unit", &unit); err != nil {
		return "", nil, err
	}
	return c.title("unit_state", unit), func(m *shakedown.Machine) (starlark.Value, error) {
		state, err := m.UnitStateE(unit)
		return starlark.String(state), err
	}, nil
}

// requireUnitState is the NixOS driver's require_unit_state(unit,
// require_state="active"): fail unless the unit is in that state now.
func requireUnitState(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var unit string
	want := "active"
	if err := c.unpack("unit", &unit, "require_state?", &want); err != nil {
		return "", nil, err
	}
	if !contains(unitStates, want) {
		return "", nil, fmt.Errorf("%s: require_state %q: want one of %s", c.name, want, strings.Join(unitStates, ", "))
	}
	return c.title("require_unit_state", unit, want), func(m *shakedown.Machine) (starlark.Value, error) {
		state, err := m.UnitStateE(unit)
		if err != nil {
			return nil, err
		}
		if state != want {
			return nil, fmt.Errorf("unit %s is %s, want %s", unit, state, want)
		}
		return starlark.None, nil
	}, nil
}
