package addrplan

import (
	"slices"
	"sync"
)

// Numbers numbers names 1, 2, ... in name order, as the NixOS driver
// numbers machines and networks. The order is fixed at the first call of
// Of, from the names declared then; a name first seen later takes the next
// free number, so that no running machine's address changes. The zero
// value is ready to use; it is safe for concurrent use.
type Numbers struct {
	mu     sync.Mutex
	byName map[string]int
}

// Of returns name's number; declared lists the names declared so far, and
// is called once, at the first call.
func (ns *Numbers) Of(name string, declared func() []string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.byName == nil {
		ns.byName = map[string]int{}
		for i, n := range slices.Sorted(slices.Values(declared())) {
			ns.byName[n] = i + 1
		}
	}
	if num, ok := ns.byName[name]; ok {
		return num
	}
	num := len(ns.byName) + 1
	ns.byName[name] = num
	return num
}

// Known returns name's number if numbers were given out already, without
// giving them out: for observers, which must not freeze the numbering
// before the test does.
func (ns *Numbers) Known(name string) (int, bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	num, ok := ns.byName[name]
	return num, ok
}
