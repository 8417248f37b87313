package addrplan

import "testing"

func TestNumbers(t *testing.T) {
	var ns Numbers
	calls := 0
	declared := func() []string { calls++; return []string{"web", "db", "cache"} }
	for _, tc := range []struct {
		name string
		want int
	}{
		{"web", 3}, {"cache", 1}, {"db", 2},
		{"zz-late", 4}, // declared after the order was fixed: the next number
		{"a-late", 5},  // even though it sorts first
		{"web", 3},
	} {
		if got := ns.Of(tc.name, declared); got != tc.want {
			t.Errorf("Of(%q) = %d, want %d", tc.name, got, tc.want)
		}
	}
	if calls != 1 {
		t.Errorf("declared called %d times, want once", calls)
	}
}
