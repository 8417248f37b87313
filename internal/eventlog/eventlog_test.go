package eventlog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

type entry string

func (e entry) String() string { return string(e) }

var errNone = errors.New("no entry")

func waitFor(want entry) Wait[entry] {
	return Wait[entry]{Match: func(e entry) bool { return e == want }, What: "entry " + string(want),
		Err: errNone, Noun: "entry", Nouns: "entries", Empty: "nothing came at all"}
}

func TestRecordLimit(t *testing.T) {
	var l Log[entry]
	for _, e := range []entry{"a", "b", "c", "d"} {
		l.Record(time.Now(), e, 3)
	}
	if got := l.All(); !slices.Equal(got, []entry{"b", "c", "d"}) {
		t.Errorf("All after 4 records with limit 3: %v", got)
	}
	l.Clear()
	if got := l.All(); len(got) != 0 {
		t.Errorf("All after Clear: %v", got)
	}
}

func TestWait(t *testing.T) {
	var l Log[entry]
	l.Record(time.Now(), "early", 0)
	if e, err := l.Wait(context.Background(), waitFor("early")); err != nil || e != "early" {
		t.Errorf("Wait for an entry logged before: %q %v", e, err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		l.Record(time.Now(), "late", 0)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e, err := l.Wait(ctx, waitFor("late")); err != nil || e != "late" {
		t.Errorf("Wait for an entry logged after: %q %v", e, err)
	}
}

func TestWaitTimeout(t *testing.T) {
	for _, tt := range []struct {
		name    string
		entries []entry
		want    []string
	}{
		{"empty", nil, []string{"wait for entry x: no entry after", "nothing came at all"}},
		{"one", []entry{"a"}, []string{"1 entry came, none matching; the last 1:\n\t", " a"}},
		{"many", []entry{"a", "b", "c", "d", "e", "f", "g"}, []string{"7 entries came, none matching; the last 5:", " c\n", " g"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l Log[entry]
			for _, e := range tt.entries {
				l.Record(time.Now(), e, 0)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			_, err := l.Wait(ctx, waitFor("x"))
			if !errors.Is(err, errNone) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v wraps neither the sentinel nor the deadline", err)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to hold %q", err, w)
				}
			}
			if strings.Contains(err.Error(), " b\n") && tt.name == "many" {
				t.Errorf("error %v shows more than the last %d", err, Shown)
			}
		})
	}
}

func TestMatchTail(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		since   time.Time
		hasFunc bool
		desc    string
		want    string
	}{
		{time.Time{}, false, "", ""},
		{at, false, "", " since 10:04:05.000"},
		{time.Time{}, true, "", " that its Func accepts"},
		{at, true, "has a body", " since 10:04:05.000 that has a body"},
	} {
		if got := MatchTail(tt.since, tt.hasFunc, tt.desc); got != tt.want {
			t.Errorf("MatchTail(%v, %v, %q) = %q, want %q", tt.since, tt.hasFunc, tt.desc, got, tt.want)
		}
	}
}
