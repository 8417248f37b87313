package scenario

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/shakedown-dev/shakedown"
)

// networkValue is what network() returns: a declared network, whose
// attributes are its fault verbs. Its Go handle is bound when the testbed
// is made.
type networkValue struct {
	r    *runner
	name string
	opts shakedown.NetworkOptions
	pos  syntax.Position
	n    *shakedown.Network
}

var _ starlark.HasAttrs = (*networkValue)(nil)

func (nv *networkValue) String() string        { return fmt.Sprintf("<network %s>", nv.name) }
func (nv *networkValue) Type() string          { return "network" }
func (nv *networkValue) Freeze()               {}
func (nv *networkValue) Truth() starlark.Bool  { return starlark.True }
func (nv *networkValue) Hash() (uint32, error) { return starlark.String(nv.name).Hash() }

// networkVerbs are the verbs of a network value.
var networkVerbs = map[string]func(nv *networkValue, thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error){
	"impair":            (*networkValue).impair,
	"impair_pair":       (*networkValue).impairPair,
	"clear_impairments": (*networkValue).clear,
	"host":              (*networkValue).host,
	"partition":         (*networkValue).partition,
	"heal":              (*networkValue).heal,
}

// peerValue is a machine or a host: what faults single out.
type peerValue interface {
	starlark.Value
	peerName() string
	// peer is the Go handle, bound once the testbed is made.
	peer() shakedown.Peer
	// on reports whether the peer is on the network.
	on(network string) bool
}

func (mv *machineValue) peerName() string       { return mv.decl.Name }
func (mv *machineValue) peer() shakedown.Peer   { return mv.m }
func (mv *machineValue) on(network string) bool { return contains(mv.decl.Config.Networks, network) }
func (hv *hostValue) peerName() string          { return hv.name }
func (hv *hostValue) peer() shakedown.Peer      { return hv.h }
func (hv *hostValue) on(network string) bool    { return hv.net.name == network }

// asPeer reads a machine or a host; what names the argument in errors.
func asPeer(what string, v starlark.Value) (peerValue, error) {
	p, ok := v.(peerValue)
	if !ok {
		return nil, fmt.Errorf("%s: got %s, want machine or host", what, v.Type())
	}
	return p, nil
}

// Attr returns a verb, the network's name for .name, or its v in
// 192.168.v.n for .number (which, as an address does, makes the testbed).
func (nv *networkValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(nv.name), nil
	case "number":
		if _, err := nv.r.bind(); err != nil {
			return nil, err
		}
		return starlark.MakeInt(nv.n.Number()), nil
	}
	f, ok := networkVerbs[name]
	if !ok {
		return nil, nil
	}
	return starlark.NewBuiltin(nv.name+"."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return f(nv, thread, b.Name(), args, kwargs)
	}), nil
}

// AttrNames lists the verbs and fields.
func (nv *networkValue) AttrNames() []string {
	names := []string{"name", "number"}
	for n := range networkVerbs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func hasNetworkAttr(name string) bool {
	_, ok := networkVerbs[name]
	return ok || name == "name" || name == "number"
}

// networkBuiltin is network(name, mtu=, capture=, seed=).
func (r *runner) networkBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name    string
		mtu     int
		capture bool
		seed    int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "mtu?", &mtu, "capture?", &capture, "seed?", &seed); err != nil {
		return nil, err
	}
	if err := shakedown.CheckName("network", name); err != nil {
		return nil, err
	}
	if prev, dup := r.netByName[name]; dup {
		return nil, fmt.Errorf("network %s declared twice (first at %s)", name, prev.pos)
	}
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		return nil, fmt.Errorf("network %s: mtu=%d: want 68 to 65535", name, mtu)
	}
	if len(r.netByName) == 255 {
		return nil, fmt.Errorf("network %s: a scenario holds at most 255 networks", name)
	}
	nv := &networkValue{r: r, name: name, pos: thread.CallFrame(1).Pos,
		opts: shakedown.NetworkOptions{MTU: mtu, Capture: capture, Seed: uint64(seed)}}
	r.networks = append(r.networks, nv)
	r.netByName[name] = nv
	if r.tb != nil {
		n, err := r.tb.NetworkE(nv.name, nv.opts)
		if err != nil {
			return nil, err
		}
		nv.n = n
	}
	return nv, nil
}

// networkNames reads networks= and the arguments of block(): network
// values or their names, each declared before.
func (r *runner) networkNames(what string, vs []starlark.Value) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for _, v := range vs {
		var name string
		switch v := v.(type) {
		case *networkValue:
			name = v.name
		case starlark.String:
			name = string(v)
		default:
			return nil, fmt.Errorf("%s: got %s, want a network or its name", what, v.Type())
		}
		if _, ok := r.netByName[name]; !ok {
			return nil, fmt.Errorf("%s: network %q is not declared: call network(%q) before", what, name, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s: network %q listed twice", what, name)
		}
		seen[name] = true
		names = append(names, name)
	}
	return names, nil
}

// iterValues lists the values of a list or tuple.
func iterValues(it starlark.Iterable) []starlark.Value {
	if it == nil {
		return nil
	}
	var vs []starlark.Value
	iter := it.Iterate()
	defer iter.Done()
	var v starlark.Value
	for iter.Next(&v) {
		vs = append(vs, v)
	}
	return vs
}

// impairment reads the keyword arguments of impair(): loss=, corrupt=,
// duplicate=, reorder= in percent; delay=, jitter=, reorder_hold= as
// durations; rate= in bits per second ("10mbit" or an int); seed=.
func impairment(what string, kwargs []starlark.Tuple) (shakedown.Impairment, error) {
	var imp shakedown.Impairment
	var loss, corrupt, dup, reorder starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None
	var delay, jitter, hold, rate starlark.Value = starlark.None, starlark.None, starlark.None, starlark.None
	var seed int
	if err := starlark.UnpackArgs(what, nil, kwargs, "loss?", &loss, "delay?", &delay, "jitter?", &jitter,
		"duplicate?", &dup, "reorder?", &reorder, "reorder_hold?", &hold, "corrupt?", &corrupt,
		"rate?", &rate, "seed?", &seed); err != nil {
		return imp, err
	}
	var err error
	for _, p := range []struct {
		name string
		v    starlark.Value
		dst  *float64
	}{{"loss", loss, &imp.LossPercent}, {"corrupt", corrupt, &imp.CorruptPercent},
		{"duplicate", dup, &imp.DuplicatePercent}, {"reorder", reorder, &imp.ReorderPercent}} {
		if *p.dst, err = percent(p.v); err != nil {
			return imp, fmt.Errorf("%s: %s: %w", what, p.name, err)
		}
	}
	for _, p := range []struct {
		name string
		v    starlark.Value
		dst  *int64
	}{{"delay", delay, (*int64)(&imp.Delay)}, {"jitter", jitter, (*int64)(&imp.Jitter)}, {"reorder_hold", hold, (*int64)(&imp.ReorderHold)}} {
		d, err := parseDuration(p.v)
		if err != nil {
			return imp, fmt.Errorf("%s: %s: %w", what, p.name, err)
		}
		*p.dst = int64(d)
	}
	if imp.RateBitsPerSec, err = parseRate(rate); err != nil {
		return imp, fmt.Errorf("%s: rate: %w", what, err)
	}
	imp.Seed = uint64(seed)
	// The switch's own rule, checked before anything boots.
	if err := imp.Validate(); err != nil {
		return imp, fmt.Errorf("%s: %w", what, err)
	}
	return imp, nil
}

// percent reads 0 to 100, as an int, a float or "5%".
func percent(v starlark.Value) (float64, error) {
	var f float64
	switch v := v.(type) {
	case starlark.NoneType:
		return 0, nil
	case starlark.Int:
		n, _ := v.Int64()
		f = float64(n)
	case starlark.Float:
		f = float64(v)
	case starlark.String:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSuffix(string(v), "%"), 64); err != nil {
			return 0, fmt.Errorf("%q: want a percentage such as 5 or \"5%%\"", string(v))
		}
	default:
		return 0, fmt.Errorf("got %s, want a percentage (0 to 100)", v.Type())
	}
	if f < 0 || f > 100 {
		return 0, fmt.Errorf("%v: want 0 to 100", f)
	}
	return f, nil
}

// parseRate reads bits per second: an int, or a string with a unit as tc
// writes them ("100kbit", "10mbit", "1gbit").
func parseRate(v starlark.Value) (int64, error) {
	switch v := v.(type) {
	case starlark.NoneType:
		return 0, nil
	case starlark.Int:
		n, ok := v.Int64()
		if !ok || n <= 0 {
			return 0, fmt.Errorf("%v: want a positive number of bits per second", v)
		}
		return n, nil
	case starlark.String:
		s := strings.ToLower(string(v))
		unit := int64(1)
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
			if strings.HasSuffix(s, u.suffix) {
				s, unit = strings.TrimSuffix(s, u.suffix), u.mult
				break
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("%q: want a rate such as \"10mbit\" or an int of bits per second", string(v))
		}
		return int64(f * float64(unit)), nil
	}
	return 0, fmt.Errorf("got %s, want a rate such as \"10mbit\"", v.Type())
}

// impair is net.impair(peer, loss=, delay=, ...): the link of a machine or
// host to this network, both ways; without options it clears the
// impairment.
func (nv *networkValue) impair(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s: got %d positional arguments, want 1: the machine or host", name, len(args))
	}
	p, err := asPeer(name+": for parameter peer", args[0])
	if err != nil {
		return nil, err
	}
	imp, err := impairment(name, kwargs)
	if err != nil {
		return nil, err
	}
	if !p.on(nv.name) {
		return nil, fmt.Errorf("%s: %s %s is not on network %s", name, p.Type(), p.peerName(), nv.name)
	}
	return nv.r.step(name, "", fmt.Sprintf("%s: impair %s %s", nv.name, p.peerName(), describeImpairment(imp)), func() (starlark.Value, error) {
		return starlark.None, nv.n.ImpairE(p.peer(), imp)
	})
}

// impairPair is net.impair_pair(a, b, loss=, ...): frames from a to b,
// machines or hosts.
func (nv *networkValue) impairPair(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("%s: got %d positional arguments, want 2: from and to machines or hosts", name, len(args))
	}
	var ps [2]peerValue
	for i, a := range args {
		p, err := asPeer(fmt.Sprintf("%s: for parameter %d", name, i+1), a)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	imp, err := impairment(name, kwargs)
	if err != nil {
		return nil, err
	}
	return nv.r.step(name, "", fmt.Sprintf("%s: impair %s -> %s %s", nv.name, ps[0].peerName(), ps[1].peerName(), describeImpairment(imp)), func() (starlark.Value, error) {
		return starlark.None, nv.n.ImpairPairE(ps[0].peer(), ps[1].peer(), imp)
	})
}

// clear is net.clear_impairments().
func (nv *networkValue) clear(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return nv.r.step(name, "", nv.name+": clear impairments", func() (starlark.Value, error) {
		return starlark.None, nv.n.ClearImpairmentsE()
	})
}

func describeImpairment(imp shakedown.Impairment) string {
	if imp.IsZero() {
		return "(none)"
	}
	var parts []string
	add := func(cond bool, format string, v any) {
		if cond {
			parts = append(parts, fmt.Sprintf(format, v))
		}
	}
	add(imp.LossPercent > 0, "loss=%g%%", imp.LossPercent)
	add(imp.Delay > 0, "delay=%v", imp.Delay)
	add(imp.Jitter > 0, "jitter=%v", imp.Jitter)
	add(imp.DuplicatePercent > 0, "duplicate=%g%%", imp.DuplicatePercent)
	add(imp.ReorderPercent > 0, "reorder=%g%%", imp.ReorderPercent)
	add(imp.CorruptPercent > 0, "corrupt=%g%%", imp.CorruptPercent)
	add(imp.RateBitsPerSec > 0, "rate=%dbit/s", imp.RateBitsPerSec)
	return strings.Join(parts, " ")
}

// partition is partition([a], [b, c]): the groups of machines and hosts
// cannot reach each other on any network until heal().
func (r *runner) partition(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	groups, title, err := peerGroups(b.Name(), args, kwargs)
	if err != nil {
		return nil, err
	}
	return r.step(b.Name(), "", "partition "+title, func() (starlark.Value, error) {
		return starlark.None, r.tb.PartitionE(bindGroups(groups)...)
	})
}

// partition is net.partition([a], [b, c]): partition() on this network
// only; a peer in no group still reaches all.
func (nv *networkValue) partition(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	groups, title, err := peerGroups(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		for _, p := range g {
			if !p.on(nv.name) {
				return nil, fmt.Errorf("%s: %s %s is not on network %s", name, p.Type(), p.peerName(), nv.name)
			}
		}
	}
	return nv.r.step(name, "", nv.name+": partition "+title, func() (starlark.Value, error) {
		return starlark.None, nv.n.PartitionE(bindGroups(groups)...)
	})
}

// heal is net.heal(): end this network's partition.
func (nv *networkValue) heal(thread *starlark.Thread, name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return nv.r.step(name, "", nv.name+": heal", func() (starlark.Value, error) {
		return starlark.None, nv.n.HealE()
	})
}

// peerGroups reads the groups of partition(): at least two lists of
// machines and hosts. title shows them as "[a] [b c]".
func peerGroups(name string, args starlark.Tuple, kwargs []starlark.Tuple) ([][]peerValue, string, error) {
	if len(kwargs) > 0 {
		return nil, "", fmt.Errorf("%s: unexpected keyword argument %s", name, kwargs[0][0])
	}
	if len(args) < 2 {
		return nil, "", fmt.Errorf("%s: got %d groups, want at least 2 lists of machines or hosts", name, len(args))
	}
	groups := make([][]peerValue, len(args))
	var titles []string
	for i, a := range args {
		it, ok := a.(starlark.Iterable)
		if !ok || a.Type() == "string" {
			return nil, "", fmt.Errorf("%s: for group %d: got %s, want a list of machines or hosts", name, i+1, a.Type())
		}
		var names []string
		for _, v := range iterValues(it) {
			p, err := asPeer(fmt.Sprintf("%s: in group %d", name, i+1), v)
			if err != nil {
				return nil, "", err
			}
			groups[i] = append(groups[i], p)
			names = append(names, p.peerName())
		}
		titles = append(titles, "["+strings.Join(names, " ")+"]")
	}
	return groups, strings.Join(titles, " "), nil
}

// bindGroups turns the groups into the testbed's peers, once it exists.
func bindGroups(groups [][]peerValue) [][]shakedown.Peer {
	gs := make([][]shakedown.Peer, len(groups))
	for i, g := range groups {
		for _, p := range g {
			gs[i] = append(gs[i], p.peer())
		}
	}
	return gs
}

// heal is heal(): end a partition.
func (r *runner) heal(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return r.step(b.Name(), "", "heal", func() (starlark.Value, error) {
		return starlark.None, r.tb.HealE()
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
