package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	boom := errors.New("boom")
	stop := errors.New("deadline")
	for _, tc := range []struct {
		name     string
		passAt   int // try that reports done; 0: never
		failAt   int // try that returns boom; 0: never
		want     error
		wantLast string
	}{
		{"at once", 1, 0, nil, ""},
		{"third try", 3, 0, nil, "try 2"},
		{"check fails", 0, 2, boom, "try 1"},
		{"deadline", 0, 0, stop, "try "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, stop)
			defer cancel()
			tries := 0
			last, err := Until(ctx, func(context.Context) (bool, string, error) {
				tries++
				switch tries {
				case tc.passAt:
					return true, "", nil
				case tc.failAt:
					return false, "", boom
				}
				return false, "try " + string(rune('0'+tries)), nil
			})
			if !errors.Is(err, tc.want) || len(last) < len(tc.wantLast) || last[:len(tc.wantLast)] != tc.wantLast {
				t.Errorf("Until = %q, %v; want %q…, %v", last, err, tc.wantLast, tc.want)
			}
		})
	}
}
