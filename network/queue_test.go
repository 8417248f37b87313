package network

import (
	"slices"
	"testing"
)

func TestEgressQueueOrder(t *testing.T) {
	q := newEgressQueue(8)
	push := func(name string, release, now int64) {
		t.Helper()
		if r := q.push(qitem{data: []byte(name), release: release}, now); r != pushed {
			t.Fatalf("push %s: got %d, want pushed", name, r)
		}
	}
	push("a", 0, 10) // at once
	push("late", 50, 11)
	push("b", 0, 12)
	push("soon", 20, 13)
	push("c", 0, 14)
	names := func(now int64) []string {
		items, _ := q.pop(now, nil, 100, 1<<20)
		var s []string
		for _, it := range items {
			s = append(s, string(it.data))
		}
		return s
	}
	if got := names(15); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("at 15: got %q, want a b c", got)
	}
	if _, _, next := q.popOne(15); next != 20 {
		t.Errorf("next release: got %d, want 20", next)
	}
	push("d", 0, 30)
	if got := names(60); !slices.Equal(got, []string{"soon", "d", "late"}) {
		t.Errorf("at 60: got %q, want soon d late (release order)", got)
	}

	for i := range 8 {
		push("x", 0, int64(100+i))
	}
	if r := q.push(qitem{data: []byte("y")}, 200); r != pushFull {
		t.Errorf("push to a full queue: got %d, want pushFull", r)
	}
	if items, _ := q.pop(200, nil, 100, 0); len(items) != 1 {
		t.Errorf("pop with no byte budget: got %d frames, want 1 (at least one)", len(items))
	}
	if n := q.close(); n != 7 {
		t.Errorf("close: got %d dropped, want 7", n)
	}
	if r := q.push(qitem{data: []byte("z")}, 300); r != pushClosed {
		t.Errorf("push to a closed queue: got %d, want pushClosed", r)
	}
}
