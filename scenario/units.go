package scenario

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
)

// unitStates are systemd's ActiveState values, what UnitState returns.
var unitStates = []string{"inactive", "activating", "active", "deactivating", "failed"}

// waitForUnit is wait_for_unit(unit): until the unit is active; it fails
// at once when the unit fails or is unknown (Machine.WaitForUnitE). The
// NixOS driver's user= has no counterpart: the Go API has no user units.
func waitForUnit(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var unit string
	if err := c.unpack("unit", &unit); err != nil {
		return "", nil, err
	}
	if unit == "" {
		return "", nil, fmt.Errorf("%s: empty unit name", c.name)
	}
	return c.title("wait_for_unit", unit), func(m *shakedown.Machine) (starlark.Value, error) {
		return starlark.None, m.WaitForUnitE(unit)
	}, nil
}

// systemctl is systemctl(args): (status, output), as the NixOS driver's;
// a systemctl that fails is a status, not a failed step
// (Machine.SystemctlE).
func systemctl(c *verbCall) (string, func(*shakedown.Machine) (starlark.Value, error), error) {
	var args string
	if err := c.unpack("args", &args); err != nil {
		return "", nil, err
	}
	if strings.TrimSpace(args) == "" {
		return "", nil, fmt.Errorf("%s: empty command: want one such as \"is-active web\"", c.name)
	}
	return c.title("systemctl", args), func(m *shakedown.Machine) (starlark.Value, error) {
		status, out, err := m.SystemctlE(args)
		if err != nil {
			return nil, err
		}
		return starlark.Tuple{starlark.MakeInt(status), starlark.String(out)}, nil
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
