package scenario

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/addrplan"
)

// declareStub declares the host of a stand-in on network (a network value
// or name) and binds it at once if the testbed is made: what each stub's
// builtin does once its arguments are checked.
func (r *runner) declareStub(thread *starlark.Thread, builtin string, network starlark.Value, name string, num int, gateway starlark.Value, stub hostStub) (*hostValue, error) {
	nets, err := r.networkNames(builtin+": network", []starlark.Value{network})
	if err != nil {
		return nil, err
	}
	gw, err := parseGateway(builtin, gateway)
	if err != nil {
		return nil, err
	}
	hv, err := r.netByName[nets[0]].declareHost(thread, name, num, gw)
	if err != nil {
		return nil, err
	}
	hv.stub = stub
	if err := r.declared(hv); err != nil {
		return nil, err
	}
	return hv, nil
}

// stubStep runs a stand-in's verb as a step titled after the host.
func (hv *hostValue) stubStep(name, title string, do func() (starlark.Value, error)) (starlark.Value, error) {
	return hv.r.step(name, "", hv.name+": "+title, do)
}

// waitContext bounds a stand-in's wait_for_* verb: timeout, or
// shakedown.DefaultWait as a machine's waits, within the testbed's
// deadline.
func (r *runner) waitContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = shakedown.DefaultWait
	}
	return context.WithTimeout(r.tb.Context(), timeout)
}

// takeWaitTimeout reads timeout= from a wait verb's keywords.
func takeWaitTimeout(name string, kwargs []starlark.Tuple) ([]starlark.Tuple, time.Duration, error) {
	kwargs, tv := takeTimeout(kwargs)
	d, err := parseDuration(tv)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: timeout: %w", name, err)
	}
	return kwargs, d, nil
}

// addrRef is an address a stand-in gives out that the scenario may name
// before the testbed numbers anything: an address, a host number on the
// stand-in's network, or a machine or host, whose number it is.
type addrRef struct {
	addr netip.Addr
	num  int
	peer starlark.Value // *machineValue or *hostValue
}

// parseAddrRef reads an address as a string, an int host number or a
// machine or host value.
func parseAddrRef(v starlark.Value) (addrRef, error) {
	switch v := v.(type) {
	case starlark.String:
		a, err := netip.ParseAddr(string(v))
		if err != nil {
			return addrRef{}, fmt.Errorf("%q: want an address such as \"192.168.1.2\", a host number or a machine", string(v))
		}
		return addrRef{addr: a}, nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n < 1 || n > 254 {
			return addrRef{}, fmt.Errorf("host number %s: want 1 to 254", v)
		}
		return addrRef{num: int(n)}, nil
	case *machineValue, *hostValue:
		return addrRef{peer: v}, nil
	}
	return addrRef{}, fmt.Errorf("got %s, want an address (string), a host number (int), a machine or a host", v.Type())
}

// parseAddrRefs reads a list of addrRefs, or one.
func parseAddrRefs(v starlark.Value) ([]addrRef, error) {
	if v == starlark.None {
		return nil, nil
	}
	if _, ok := v.(starlark.String); !ok {
		if it, ok := v.(starlark.Iterable); ok {
			var out []addrRef
			for _, x := range iterValues(it) {
				a, err := parseAddrRef(x)
				if err != nil {
					return nil, err
				}
				out = append(out, a)
			}
			return out, nil
		}
	}
	a, err := parseAddrRef(v)
	if err != nil {
		return nil, err
	}
	return []addrRef{a}, nil
}

// resolve gives the IPv4 address on network n: a machine's or host's
// number there (machines have one number on every network), once the
// testbed has numbered them.
func (a addrRef) resolve(n *shakedown.Network) (netip.Addr, error) {
	switch {
	case a.addr.IsValid():
		return a.addr, nil
	case a.num != 0:
		return addrplan.IPv4(n.Number(), a.num), nil
	}
	switch p := a.peer.(type) {
	case *machineValue:
		addr := p.m.Addr()
		if !addr.IsValid() {
			return netip.Addr{}, fmt.Errorf("machine %s has no planned address (no network, or manual_addresses=True): give its address", p.decl.Name)
		}
		return addrplan.IPv4(n.Number(), int(addr.As4()[3])), nil
	case *hostValue:
		if p.h == nil {
			return netip.Addr{}, fmt.Errorf("host %s is declared after this stand-in: declare it before", p.name)
		}
		if p.net.n != n {
			return netip.Addr{}, fmt.Errorf("host %s is on network %s, not %s: give its address", p.name, p.net.name, n.Name())
		}
		return p.h.Addr(), nil
	}
	return netip.Addr{}, fmt.Errorf("no address")
}

// resolveAll resolves a list of addrRefs on network n.
func resolveAll(refs []addrRef, n *shakedown.Network) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, r := range refs {
		a, err := r.resolve(n)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// parseGateway reads gateway=: a router machine (or its address, or host
// number) on the host's network, through which the host answers machines
// on other networks (shakedown.HostOptions.Gateway); None is none.
func parseGateway(name string, v starlark.Value) (*addrRef, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	a, err := parseAddrRef(v)
	if err != nil {
		return nil, fmt.Errorf("%s: gateway=: %v", name, err)
	}
	return &a, nil
}
