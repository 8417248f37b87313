package scenario

import (
	"fmt"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/shakedown-dev/shakedown"
)

// hostValue is what net.host() returns: a named host endpoint on one
// network (shakedown.Host), in every guest's /etc/hosts and a peer of the
// network's faults as machines are. Its Go handle is bound when the
// testbed is made.
type hostValue struct {
	r    *runner
	name string
	net  *networkValue
	opts shakedown.HostOptions
	pos  syntax.Position
	h    *shakedown.Host
	// dns, if set, makes the host a DNS stand-in (dns_stub()).
	dns *dnsStub
	// stub, if set, makes the host another stand-in: web_stub(),
	// registry_stub(), dhcp_stub(), acme_stub(), pdns_api().
	stub hostStub
	// gateway, if set, is gateway=: the router its default route goes
	// through, resolved when the host is declared in the testbed.
	gateway *addrRef
}

// declareOn declares the host in the testbed, with its gateway= resolved
// now that the testbed has numbered the machines.
func (hv *hostValue) declareOn() (*shakedown.Host, error) {
	opts := hv.opts
	if hv.gateway != nil {
		gw, err := hv.gateway.resolve(hv.net.n)
		if err != nil {
			return nil, fmt.Errorf("gateway=: %w", err)
		}
		opts.Gateway = gw
	}
	return hv.net.n.HostE(hv.name, opts)
}

// hostStub is a stand-in served from a host, other than DNS's (whose
// records of the testbed make it a case of its own).
type hostStub interface {
	// kind names the builtin that declares it, "web_stub".
	kind() string
	// verbs are its verbs, besides a host's.
	verbs() map[string]stubVerb
	// attach declares the host on its network and serves the stand-in
	// from it, once the testbed is made.
	attach(hv *hostValue) (*shakedown.Host, error)
}

// stubFielder is a stand-in with fields of its own (acme_stub's
// .directory_url).
type stubFielder interface {
	fields() []string
	field(hv *hostValue, name string) starlark.Value
}

// stubFields are the names of the host's stand-in's own fields.
func (hv *hostValue) stubFields() []string {
	if f, ok := hv.stub.(stubFielder); ok {
		return f.fields()
	}
	return nil
}

// stubVerb is a verb of a stand-in, called with the builtin's name
// ("www.set_fault") and its arguments.
type stubVerb func(hv *hostValue, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// stubVerbs are the host's verbs as a stand-in: DNS's or its stub's.
func (hv *hostValue) stubVerbs() map[string]stubVerb {
	switch {
	case hv.dns != nil:
		return dnsVerbs
	case hv.stub != nil:
		return hv.stub.verbs()
	}
	return nil
}

var _ starlark.HasAttrs = (*hostValue)(nil)

func (hv *hostValue) String() string        { return fmt.Sprintf("<host %s>", hv.name) }
func (hv *hostValue) Type() string          { return "host" }
func (hv *hostValue) Freeze()               {}
func (hv *hostValue) Truth() starlark.Bool  { return starlark.True }
func (hv *hostValue) Hash() (uint32, error) { return starlark.String(hv.name).Hash() }

// hostVerbs are the verbs of a host value, steps as machine verbs are.
var hostVerbs = map[string]func(h *shakedown.Host) error{
	"block":   (*shakedown.Host).BlockE,
	"unblock": (*shakedown.Host).UnblockE,
}

// hostFields are the attributes of a host that are values.
var hostFields = []string{"name", "network", "number", "addr", "addr6"}

// Attr returns a verb, or a field: .name, .network (the network value),
// and .number, .addr and .addr6, which make the testbed (in the load pass
// they stop it, as a step does) since the numbering is the testbed's.
func (hv *hostValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(hv.name), nil
	case "network":
		return hv.net, nil
	case "number", "addr", "addr6":
		if _, err := hv.r.bind(); err != nil {
			return nil, err
		}
		switch name {
		case "number":
			return starlark.MakeInt(hv.h.Number()), nil
		case "addr":
			return addrValue(hv.h.Addr()), nil
		}
		return addrValue(hv.h.Addr6()), nil
	}
	if contains(hv.stubFields(), name) {
		return hv.stub.(stubFielder).field(hv, name), nil
	}
	if f, ok := hv.stubVerbs()[name]; ok {
		return starlark.NewBuiltin(hv.name+"."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return f(hv, b.Name(), args, kwargs)
		}), nil
	}
	f, ok := hostVerbs[name]
	if !ok {
		return nil, nil
	}
	return starlark.NewBuiltin(hv.name+"."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
			return nil, err
		}
		return hv.r.step(b.Name(), "", hv.name+": "+name, func() (starlark.Value, error) {
			return starlark.None, f(hv.h)
		})
	}), nil
}

// AttrNames lists the verbs and fields.
func (hv *hostValue) AttrNames() []string {
	names := append([]string(nil), hostFields...)
	for n := range hostVerbs {
		names = append(names, n)
	}
	for n := range hv.stubVerbs() {
		names = append(names, n)
	}
	names = append(names, hv.stubFields()...)
	sort.Strings(names)
	return names
}

// hasAttr reports whether the host has the attribute: a stand-in has its
// verbs too.
func (hv *hostValue) hasAttr(name string) bool {
	_, stubVerb := hv.stubVerbs()[name]
	return hasHostAttr(name) || stubVerb || contains(hv.stubFields(), name)
}

func hasHostAttr(name string) bool {
	_, ok := hostVerbs[name]
	return ok || contains(hostFields, name)
}

// host is net.host(name, number=): declare a named host endpoint on the
// network; number is its n in 192.168.v.n, 0 to pick the highest free.
func (nv *networkValue) host(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		hname   string
		num     int
		gateway starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "name", &hname, "number?", &num, "gateway?", &gateway); err != nil {
		return nil, err
	}
	gw, err := parseGateway(name, gateway)
	if err != nil {
		return nil, err
	}
	hv, err := nv.declareHost(thread, hname, num, gw)
	if err != nil {
		return nil, err
	}
	if err := nv.r.declared(hv); err != nil {
		return nil, err
	}
	return hv, nil
}

// declareHost declares a host on the network; declared binds it.
func (nv *networkValue) declareHost(thread *starlark.Thread, hname string, num int, gateway *addrRef) (*hostValue, error) {
	r := nv.r
	if err := shakedown.CheckName("host", hname); err != nil {
		return nil, err
	}
	if prev, dup := r.hostByName[hname]; dup {
		return nil, fmt.Errorf("host %s declared twice (first at %s)", hname, prev.pos)
	}
	if mv, clash := r.byName[hname]; clash {
		return nil, fmt.Errorf("host %s: machine %s has that name (declared at %s); names go in /etc/hosts, so they must differ", hname, hname, mv.decl.Pos)
	}
	if num < 0 || num > shakedown.DefaultHostNumber {
		return nil, fmt.Errorf("host %s: number=%d: want 1 to %d, or 0 to pick one", hname, num, shakedown.DefaultHostNumber)
	}
	hv := &hostValue{r: r, name: hname, net: nv, opts: shakedown.HostOptions{Number: num}, gateway: gateway, pos: thread.CallFrame(1).Pos}
	r.hosts = append(r.hosts, hv)
	r.hostByName[hname] = hv
	return hv, nil
}

// declared binds a host declared once the testbed is made; a DNS
// stand-in's records of the testbed are those of the moment.
func (r *runner) declared(hv *hostValue) error {
	if r.tb == nil {
		return nil
	}
	if err := hv.bind(); err != nil {
		return err
	}
	if hv.dns != nil {
		return hv.addTestbedRecords()
	}
	return nil
}

// bind declares the host in the testbed, and serves DNS or its stub from
// it if it is a stand-in.
func (hv *hostValue) bind() error {
	if hv.stub != nil {
		h, err := hv.stub.attach(hv)
		if err != nil {
			return fmt.Errorf("%s %s: %w", hv.stub.kind(), hv.name, err)
		}
		hv.h = h
		return nil
	}
	h, err := hv.declareOn()
	if err != nil {
		return err
	}
	hv.h = h
	if hv.dns != nil {
		return hv.serve()
	}
	return nil
}
