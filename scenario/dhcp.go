package scenario

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/shakedown-dev/shakedown"
	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
	"github.com/shakedown-dev/shakedown/stub/dhcp/dhcpnet"
)

// dhcpStub is what makes a host a DHCP stand-in (dhcpstub.Server,
// attached with dhcpnet at 192.168.v.250): its options as declared, whose
// addresses the testbed's plan fixes, and the server once it is made.
type dhcpStub struct {
	router    []addrRef
	dns, ntp  []addrRef
	domain    string
	search    []string
	mtu       int
	leaseTime time.Duration
	pool      []addrRef
	static    []dhcpStatic
	planned   bool
	s         *dhcpstub.Server
}

// dhcpStatic is a static lease as declared.
type dhcpStatic struct {
	mac  net.HardwareAddr
	addr addrRef
}

func (d *dhcpStub) kind() string               { return "dhcp_stub" }
func (d *dhcpStub) verbs() map[string]stubVerb { return dhcpVerbs }

func (d *dhcpStub) attach(hv *hostValue) (*shakedown.Host, error) {
	n := hv.net.n
	cfg := dhcpnet.ForNetwork(n)
	var err error
	if len(d.router) > 0 {
		r, err := d.router[0].resolve(n)
		if err != nil {
			return nil, fmt.Errorf("router: %w", err)
		}
		cfg.Router = r
	}
	if cfg.DNS, err = resolveAll(d.dns, n); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if cfg.NTP, err = resolveAll(d.ntp, n); err != nil {
		return nil, fmt.Errorf("ntp: %w", err)
	}
	if len(d.pool) == 2 {
		if cfg.PoolStart, err = d.pool[0].resolve(n); err != nil {
			return nil, fmt.Errorf("pool: %w", err)
		}
		if cfg.PoolEnd, err = d.pool[1].resolve(n); err != nil {
			return nil, fmt.Errorf("pool: %w", err)
		}
	}
	for _, st := range d.static {
		a, err := st.addr.resolve(n)
		if err != nil {
			return nil, fmt.Errorf("static: %s: %w", st.mac, err)
		}
		cfg.Static = append(cfg.Static, dhcpstub.Static{MAC: st.mac, Addr: a})
	}
	cfg.Domain, cfg.Search, cfg.MTU, cfg.LeaseTime = d.domain, d.search, d.mtu, d.leaseTime
	if d.planned {
		cfg.StaticFunc = dhcpnet.Planned(n)
	}
	cfg.Logf = hv.logf()
	d.s = dhcpstub.New(cfg)
	// Its error now, with the scenario's names, rather than from the
	// goroutine that serves.
	if err := d.s.Check(); err != nil {
		return nil, err
	}
	hv.r.t.Cleanup(func() { d.s.Close() })
	return dhcpnet.Attach(n, hv.name, d.s)
}

// dhcpVerbs are the verbs of a DHCP stand-in, besides a host's.
var dhcpVerbs = map[string]stubVerb{
	"set_outage":     (*hostValue).dhcpSetOutage,
	"set_fault":      (*hostValue).dhcpSetFault,
	"clear_fault":    (*hostValue).dhcpClearFault,
	"leases":         (*hostValue).dhcpLeases,
	"events":         (*hostValue).dhcpEvents,
	"wait_for_lease": (*hostValue).dhcpWaitForLease,
	"wait_for_event": (*hostValue).dhcpWaitForEvent,
	"clear_log":      (*hostValue).dhcpClearLog,
}

// dhcpStubBuiltin is dhcp_stub(network, name, router=, dns=, domain=,
// search=, mtu=, ntp=, lease_time=, pool=, static=, planned=): a host on
// the network at 192.168.v.250 (dhcpnet.ServerNumber) serving DHCP on
// port 67 to the subnet 192.168.v.0/24, with dhcpstub.Config's options.
// Addresses (router, dns, ntp, pool's two ends, static's values) are
// strings, host numbers on the network (router = 2 is 192.168.v.2) or
// machines and hosts, whose numbers they are. static maps MACs to
// addresses; planned=True gives each machine its planned address
// (dhcpnet.Planned), so that the names in /etc/hosts hold. Machines that
// take their address from it are manual_addresses=True ones running a
// client (udhcpc with udhcpc_script(), systemd-networkd).
func (r *runner) dhcpStubBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		network                starlark.Value
		name                   string
		router, dns, ntp, pool starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None
		leaseTime              starlark.Value = starlark.None
		search                 starlark.Iterable
		static                 *starlark.Dict
		d                      = &dhcpStub{}
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "network", &network, "name", &name, "router?", &router,
		"dns?", &dns, "domain?", &d.domain, "search?", &search, "mtu?", &d.mtu, "ntp?", &ntp,
		"lease_time?", &leaseTime, "pool?", &pool, "static?", &static, "planned?", &d.planned); err != nil {
		return nil, err
	}
	what := "dhcp_stub " + name
	var err error
	if d.router, err = parseAddrRefs(router); err != nil {
		return nil, fmt.Errorf("%s: router: %w", what, err)
	}
	if len(d.router) > 1 {
		return nil, fmt.Errorf("%s: router: got %d, want one default gateway", what, len(d.router))
	}
	if d.dns, err = parseAddrRefs(dns); err != nil {
		return nil, fmt.Errorf("%s: dns: %w", what, err)
	}
	if d.ntp, err = parseAddrRefs(ntp); err != nil {
		return nil, fmt.Errorf("%s: ntp: %w", what, err)
	}
	if d.search, err = stringList(search); err != nil {
		return nil, fmt.Errorf("%s: search: %w", what, err)
	}
	if d.mtu != 0 && (d.mtu < 68 || d.mtu > 65535) {
		return nil, fmt.Errorf("%s: mtu=%d: want 68 to 65535", what, d.mtu)
	}
	if d.leaseTime, err = parseDuration(leaseTime); err != nil {
		return nil, fmt.Errorf("%s: lease_time: %w", what, err)
	}
	if d.leaseTime != 0 && (d.leaseTime < time.Second || d.leaseTime%time.Second != 0) {
		return nil, fmt.Errorf("%s: lease_time %s: want whole seconds, at least one", what, d.leaseTime)
	}
	if pool != starlark.None {
		if d.pool, err = parseAddrRefs(pool); err != nil || len(d.pool) != 2 {
			return nil, fmt.Errorf("%s: pool: want (first, last), host numbers such as (100, 149) or addresses", what)
		}
	}
	if static != nil {
		seen := map[string]bool{}
		for _, item := range static.Items() {
			s, _ := starlark.AsString(item[0])
			mac, err := net.ParseMAC(s)
			if err != nil || len(mac) != 6 {
				return nil, fmt.Errorf("%s: static: key %s: want a MAC such as \"52:54:00:12:01:05\"", what, item[0])
			}
			if seen[mac.String()] {
				return nil, fmt.Errorf("%s: static: MAC %s given twice", what, mac)
			}
			seen[mac.String()] = true
			a, err := parseAddrRef(item[1])
			if err != nil {
				return nil, fmt.Errorf("%s: static: %s: %w", what, mac, err)
			}
			d.static = append(d.static, dhcpStatic{mac: mac, addr: a})
		}
	}
	// Options whose rules do not depend on the plan, on a server that
	// serves nothing, so that a mistake fails before anything boots.
	probe := dhcpstub.Config{Domain: d.domain, Search: d.search, MTU: d.mtu, LeaseTime: d.leaseTime}
	if err := dhcpstub.New(probe).Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return r.declareStub(thread, b.Name(), network, name, dhcpnet.ServerNumber, starlark.None, d)
}

func (hv *hostValue) dhcp() *dhcpstub.Server { return hv.stub.(*dhcpStub).s }

// dhcpSetOutage is set_outage(on): the server silent while on, clients
// keeping their leases until they run out.
func (hv *hostValue) dhcpSetOutage(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var on bool
	if err := starlark.UnpackArgs(name, args, kwargs, "on", &on); err != nil {
		return nil, err
	}
	return hv.stubStep(name, fmt.Sprintf("outage %v", on), func() (starlark.Value, error) {
		hv.dhcp().SetOutage(on)
		return starlark.None, nil
	})
}

// dhcpSetFault is set_fault(drop=, nak=, delay=, types=, mac=, times=):
// dhcpstub.Fault's fields, types by name ("REQUEST", "DISCOVER").
func (hv *hostValue) dhcpSetFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		f     dhcpstub.Fault
		delay starlark.Value = starlark.None
		types starlark.Iterable
		mac   string
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "drop?", &f.Drop, "nak?", &f.NAK, "delay?", &delay,
		"types?", &types, "mac?", &mac, "times?", &f.Times); err != nil {
		return nil, err
	}
	var err error
	if f.Delay, err = parseDuration(delay); err != nil {
		return nil, fmt.Errorf("%s: delay: %w", name, err)
	}
	ts, err := stringList(types)
	if err != nil {
		return nil, fmt.Errorf("%s: types: %w", name, err)
	}
	for _, t := range ts {
		mt, err := dhcpType(t)
		if err != nil {
			return nil, fmt.Errorf("%s: types: %w", name, err)
		}
		f.Types = append(f.Types, mt)
	}
	if mac != "" {
		if f.MAC, err = net.ParseMAC(mac); err != nil {
			return nil, fmt.Errorf("%s: mac %q: want a MAC such as \"52:54:00:12:01:05\"", name, mac)
		}
	}
	// The fault's own rules, on a server that serves nothing.
	if err := dhcpstub.New(dhcpstub.Config{}).SetFault(f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return hv.stubStep(name, "set fault "+f.String(), func() (starlark.Value, error) {
		return starlark.None, hv.dhcp().SetFault(f)
	})
}

// dhcpClearFault is clear_fault(): the fault, if any.
func (hv *hostValue) dhcpClearFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "clear fault", func() (starlark.Value, error) {
		hv.dhcp().ClearFault()
		return starlark.None, nil
	})
}

// dhcpClearLog is clear_log(): empties the event log, so that the waits
// after it see only what comes after it (a renewal during an outage, say).
func (hv *hostValue) dhcpClearLog(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "clear log", func() (starlark.Value, error) {
		hv.dhcp().ClearLog()
		return starlark.None, nil
	})
}

// dhcpLeases is leases(): the leases bound, by address, as structs of
// mac, addr, hostname, static and expires_in (seconds).
func (hv *hostValue) dhcpLeases(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "leases", func() (starlark.Value, error) {
		var out []starlark.Value
		for _, l := range hv.dhcp().Leases() {
			out = append(out, starlarkstruct.FromStringDict(starlark.String("lease"), starlark.StringDict{
				"mac":        starlark.String(l.MAC.String()),
				"addr":       starlark.String(l.Addr.String()),
				"hostname":   starlark.String(l.Hostname),
				"static":     starlark.Bool(l.Static),
				"expires_in": starlark.Float(time.Until(l.Expires).Seconds()),
			}))
		}
		return starlark.NewList(out), nil
	})
}

// dhcpMatch reads dhcpstub.Match's fields: type=, reply= (names such as
// "REQUEST", "ACK"), mac=, hostname=, addr=.
func dhcpMatch(name string, args starlark.Tuple, kwargs []starlark.Tuple) (dhcpstub.Match, error) {
	var m dhcpstub.Match
	var typ, reply, mac, addr string
	if err := starlark.UnpackArgs(name, args, kwargs, "type?", &typ, "reply?", &reply, "mac?", &mac,
		"hostname?", &m.Hostname, "addr?", &addr); err != nil {
		return m, err
	}
	var err error
	if typ != "" {
		if m.Type, err = dhcpType(typ); err != nil {
			return m, fmt.Errorf("%s: type: %w", name, err)
		}
	}
	if reply != "" {
		if m.Reply, err = dhcpType(reply); err != nil {
			return m, fmt.Errorf("%s: reply: %w", name, err)
		}
	}
	if mac != "" {
		if m.MAC, err = net.ParseMAC(mac); err != nil {
			return m, fmt.Errorf("%s: mac %q: want a MAC such as \"52:54:00:12:01:05\"", name, mac)
		}
	}
	if addr != "" {
		if m.Addr, err = netip.ParseAddr(addr); err != nil {
			return m, fmt.Errorf("%s: addr %q: want an address such as \"192.168.1.100\"", name, addr)
		}
	}
	return m, nil
}

// dhcpEvents is events(type=, reply=, mac=, hostname=, addr=): what the
// server received and did, oldest first, as structs of type, mac,
// hostname, requested, reply, addr, note and fault.
func (hv *hostValue) dhcpEvents(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := dhcpMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "events "+m.String(), func() (starlark.Value, error) {
		var out []starlark.Value
		for _, e := range hv.dhcp().Log() {
			if m.Matches(e) {
				out = append(out, dhcpEventValue(e))
			}
		}
		return starlark.NewList(out), nil
	})
}

// dhcpWaitForLease is wait_for_lease(mac=, hostname=, addr=, timeout=):
// the first lease given (a REQUEST answered ACK) that matches, logged
// already or to come, as events() gives it.
func (hv *hostValue) dhcpWaitForLease(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return hv.dhcpWait(name, args, kwargs, "wait for lease ", (*dhcpstub.Server).WaitForLease)
}

// dhcpWaitForEvent is wait_for_event(type=, reply=, mac=, hostname=,
// addr=, timeout=): the first event that matches.
func (hv *hostValue) dhcpWaitForEvent(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return hv.dhcpWait(name, args, kwargs, "wait for ", (*dhcpstub.Server).WaitForEvent)
}

func (hv *hostValue) dhcpWait(name string, args starlark.Tuple, kwargs []starlark.Tuple, title string,
	wait func(*dhcpstub.Server, context.Context, dhcpstub.Match) (dhcpstub.Event, error)) (starlark.Value, error) {
	kwargs, timeout, err := takeWaitTimeout(name, kwargs)
	if err != nil {
		return nil, err
	}
	m, err := dhcpMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, title+m.String(), func() (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(timeout)
		defer cancel()
		e, err := wait(hv.dhcp(), ctx, m)
		if err != nil {
			return nil, err
		}
		return dhcpEventValue(e), nil
	})
}

func dhcpEventValue(e dhcpstub.Event) starlark.Value {
	fault := ""
	if e.Fault != nil {
		fault = e.Fault.String()
	}
	addr := func(a netip.Addr) starlark.String {
		if !a.IsValid() {
			return ""
		}
		return starlark.String(a.String())
	}
	return starlarkstruct.FromStringDict(starlark.String("event"), starlark.StringDict{
		"type":      dhcpTypeName(e.Type),
		"mac":       starlark.String(e.MAC.String()),
		"hostname":  starlark.String(e.Hostname),
		"requested": addr(e.Requested),
		"reply":     dhcpTypeName(e.Reply),
		"addr":      addr(e.Addr),
		"note":      starlark.String(e.Note),
		"fault":     starlark.String(fault),
	})
}

// dhcpTypes are the message types by the names scenarios give them.
var dhcpTypes = map[string]dhcpv4.MessageType{
	"DISCOVER": dhcpv4.MessageTypeDiscover, "OFFER": dhcpv4.MessageTypeOffer,
	"REQUEST": dhcpv4.MessageTypeRequest, "DECLINE": dhcpv4.MessageTypeDecline,
	"ACK": dhcpv4.MessageTypeAck, "NAK": dhcpv4.MessageTypeNak,
	"RELEASE": dhcpv4.MessageTypeRelease, "INFORM": dhcpv4.MessageTypeInform,
}

func dhcpType(s string) (dhcpv4.MessageType, error) {
	t, ok := dhcpTypes[strings.ToUpper(s)]
	if !ok {
		names := make([]string, 0, len(dhcpTypes))
		for n := range dhcpTypes {
			names = append(names, n)
		}
		sort.Strings(names)
		return 0, fmt.Errorf("%q: want a message type, one of %s", s, strings.Join(names, ", "))
	}
	return t, nil
}

func dhcpTypeName(t dhcpv4.MessageType) starlark.String {
	for n, v := range dhcpTypes {
		if v == t {
			return starlark.String(n)
		}
	}
	return ""
}

// udhcpcScriptBuiltin is udhcpc_script(): the script busybox's udhcpc
// needs in an initramfs machine (dhcpnet.UdhcpcScript), as a value of
// files=: files={"/etc/udhcpc.script": udhcpc_script()}, then
// m.succeed("udhcpc -q -i eth0 -s /etc/udhcpc.script"). It notes each
// event in /tmp/udhcpc.events (dhcpnet.UdhcpcEvents).
func udhcpcScriptBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	f := dhcpnet.UdhcpcScript("/etc/udhcpc.script")
	f.Guest = ""
	return &configValue[shakedown.File]{kind: "file", desc: "udhcpc script", v: f}, nil
}
