package network

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Faults are a network's standing impairments and partition, kept by
// peer rather than by port: a machine gets a new port at every boot, and
// its faults must hold across reboots. Keys are any comparable identity of
// a peer. Apply pushes the faults to a switch, through a lookup of each
// peer's current port; a peer without one now is left out until the next
// Apply. The zero value has no faults and is ready to use; its methods
// are safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	link   map[any]Impairment    // per peer, in both directions
	pair   map[[2]any]Impairment // per ordered pair of peers
	groups [][]any               // the partition, nil when healed
}

// SetLink sets the impairment of peer k's link, replacing an earlier one;
// the zero Impairment clears it. An invalid one changes nothing.
func (f *Faults) SetLink(k any, imp Impairment) error {
	if err := imp.validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if imp.IsZero() {
		delete(f.link, k)
		return nil
	}
	if f.link == nil {
		f.link = map[any]Impairment{}
	}
	f.link[k] = imp
	return nil
}

// SetPair sets the impairment of frames from peer a to peer b.
func (f *Faults) SetPair(a, b any, imp Impairment) error {
	if err := imp.validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]any{a, b}
	if imp.IsZero() {
		delete(f.pair, k)
		return nil
	}
	if f.pair == nil {
		f.pair = map[[2]any]Impairment{}
	}
	f.pair[k] = imp
	return nil
}

// ClearImpairments removes every impairment; the partition stays.
func (f *Faults) ClearImpairments() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.link, f.pair = nil, nil
}

// Partition replaces the partition: peers in different groups cannot
// reach each other; a peer in no group reaches all.
func (f *Faults) Partition(groups [][]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups = groups
}

// Heal ends the partition.
func (f *Faults) Heal() { f.Partition(nil) }

// Apply makes sw's impairments and partition the faults', for the peers
// that port finds a port of.
func (f *Faults) Apply(sw *Switch, port func(peer any) (PortID, bool)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sw.ClearImpairments()
	var errs []error
	for k, imp := range f.link {
		if id, ok := port(k); ok {
			errs = append(errs, sw.SetImpairment(id, imp))
		}
	}
	for k, imp := range f.pair {
		a, aok := port(k[0])
		b, bok := port(k[1])
		if aok && bok {
			errs = append(errs, sw.SetPairImpairment(a, b, imp))
		}
	}
	if f.groups == nil {
		sw.Heal()
		return errors.Join(errs...)
	}
	groups := make([][]PortID, 0, len(f.groups))
	for _, g := range f.groups {
		var ids []PortID
		for _, k := range g {
			if id, ok := port(k); ok {
				ids = append(ids, id)
			}
		}
		groups = append(groups, ids)
	}
	return errors.Join(append(errs, sw.Partition(groups...))...)
}

// FaultState is what Faults hold, with every peer named: the form a
// testbed snapshot keeps on disk and a later process restores.
type FaultState struct {
	Links  map[string]Impairment `json:",omitempty"`
	Pairs  []PairFault           `json:",omitempty"`
	Groups [][]string            `json:",omitempty"`
}

// PairFault is the impairment of frames from one named peer to another.
type PairFault struct {
	From, To   string
	Impairment Impairment
}

// State returns the faults with each peer named by name.
func (f *Faults) State(name func(peer any) string) FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s FaultState
	for k, imp := range f.link {
		if s.Links == nil {
			s.Links = map[string]Impairment{}
		}
		s.Links[name(k)] = imp
	}
	for k, imp := range f.pair {
		s.Pairs = append(s.Pairs, PairFault{From: name(k[0]), To: name(k[1]), Impairment: imp})
	}
	slices.SortFunc(s.Pairs, func(a, b PairFault) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	for _, g := range f.groups {
		var names []string
		for _, k := range g {
			names = append(names, name(k))
		}
		s.Groups = append(s.Groups, names)
	}
	return s
}

// SetState replaces the faults with s, finding each named peer with
// peer; a name it does not know is an error, and leaves the faults as
// they were.
func (f *Faults) SetState(s FaultState, peer func(name string) (any, bool)) error {
	var missing []string
	find := func(n string) any {
		k, ok := peer(n)
		if !ok {
			missing = append(missing, n)
		}
		return k
	}
	var next Faults
	var errs []error
	for n, imp := range s.Links {
		errs = append(errs, next.SetLink(find(n), imp))
	}
	for _, p := range s.Pairs {
		errs = append(errs, next.SetPair(find(p.From), find(p.To), p.Impairment))
	}
	for _, g := range s.Groups {
		var ks []any
		for _, n := range g {
			ks = append(ks, find(n))
		}
		next.groups = append(next.groups, ks)
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("faults name peers this network does not have: %s", strings.Join(missing, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.link, f.pair, f.groups = next.link, next.pair, next.groups
	return nil
}
