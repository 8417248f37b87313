package network

import (
	"reflect"
	"testing"
	"time"
)

// TestFaultsFollowPeers: faults are kept by peer, so a peer that comes
// back on a new port (a machine's reboot) is impaired and partitioned as
// before, and a peer without a port is left out until it has one.
func TestFaultsFollowPeers(t *testing.T) {
	s := newSwitch(t, Config{})
	hs := hostPorts(t, s, "a", "b", "c")
	port := map[string]PortID{"a": hs[0].ID(), "b": hs[1].ID()} // c not up yet
	lookup := func(k any) (PortID, bool) { id, ok := port[k.(string)]; return id, ok }

	var f Faults
	if err := f.SetLink("a", Impairment{LossPercent: 150}); err == nil {
		t.Error("SetLink with loss 150%: got no error")
	}
	if err := f.SetLink("a", Impairment{LossPercent: 100}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPair("b", "c", Impairment{Delay: -1}); err == nil {
		t.Error("SetPair with a negative delay: got no error")
	}
	f.Partition([][]any{{"a"}, {"b", "c"}})
	if err := f.Apply(s, lookup); err != nil {
		t.Fatalf("Apply with c absent: %v", err)
	}
	// a's link loses everything: b hears nothing from a.
	write(t, hs[0], mkFrame(broadcast, macOf(1), 1, 60))
	if tryRead(hs[1], silenceWait) != nil {
		t.Error("b heard a through a 100% loss and a partition")
	}
	// c comes up on a port of its own; the partition reaches it.
	port["c"] = hs[2].ID()
	f.ClearImpairments()
	if err := f.Apply(s, lookup); err != nil {
		t.Fatal(err)
	}
	write(t, hs[1], mkFrame(broadcast, macOf(2), 2, 60))
	if tryRead(hs[2], silenceWait) == nil {
		t.Error("c did not hear b, its own group")
	}
	if tryRead(hs[0], silenceWait) != nil {
		t.Error("a heard b across the partition")
	}
	f.Heal()
	if err := f.Apply(s, lookup); err != nil {
		t.Fatal(err)
	}
	write(t, hs[1], mkFrame(broadcast, macOf(2), 2, 60))
	if tryRead(hs[0], silenceWait) == nil {
		t.Error("a did not hear b after Heal")
	}
}

// TestFaultStateRoundTrip checks that State names every fault and that
// SetState on other peers of the same names rebuilds them, and that a
// name it cannot find or an invalid impairment changes nothing.
func TestFaultStateRoundTrip(t *testing.T) {
	type peer struct{ name string }
	a, b, c := &peer{"a"}, &peer{"b"}, &peer{"c"}
	var f Faults
	f.SetLink(a, Impairment{LossPercent: 10})
	f.SetPair(a, b, Impairment{Delay: time.Millisecond})
	f.Partition([][]any{{a}, {b, c}})
	name := func(k any) string { return k.(*peer).name }
	s := f.State(name)

	peers := map[string]any{"a": &peer{"a"}, "b": &peer{"b"}, "c": &peer{"c"}}
	find := func(n string) (any, bool) { p, ok := peers[n]; return p, ok }
	var g Faults
	if err := g.SetState(s, find); err != nil {
		t.Fatal(err)
	}
	got := g.State(name)
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip: got %+v, want %+v", got, s)
	}
	if g.link[peers["a"]].LossPercent != 10 || len(g.groups[1]) != 2 || g.groups[1][1] != peers["c"] {
		t.Errorf("SetState did not key the faults by the peers found: %+v %+v", g.link, g.groups)
	}

	for _, bad := range []FaultState{
		{Groups: [][]string{{"a"}, {"gone"}}},
		{Links: map[string]Impairment{"b": {LossPercent: 150}}},
	} {
		if err := g.SetState(bad, find); err == nil {
			t.Errorf("SetState(%+v) succeeded", bad)
		}
		if !reflect.DeepEqual(g.State(name), s) {
			t.Errorf("a refused SetState(%+v) changed the faults", bad)
		}
	}
}
