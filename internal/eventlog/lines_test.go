package eventlog

import (
	"fmt"
	"sync"
	"testing"
)

// TestLines checks that Stop turns lines away and that a line handed over
// while Stop runs is finished before Stop returns: under -race, the
// writes to got after Stop would be reported.
func TestLines(t *testing.T) {
	var got []string
	l := Lines{Logf: func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) }}
	l.Printf("a %d", 1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { l.Printf("racing %d", i) })
	}
	l.Stop()
	n := len(got) // no Printf writes after Stop returns
	wg.Wait()
	l.Printf("late")
	if len(got) != n || got[0] != "a 1" {
		t.Errorf("lines %q: want \"a 1\" first and nothing after Stop (%d then)", got, n)
	}
	var zero Lines
	zero.Printf("dropped") // a nil Logf drops lines
}
