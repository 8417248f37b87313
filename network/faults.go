package network

import (
	"errors"
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
