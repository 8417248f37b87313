// Package poll calls a check until it passes, backing off between tries:
// the loop behind every wait of the root package's verbs. It imports only
// the standard library.
package poll

import (
	"context"
	"time"
)

// A check that fails is tried again after Start, doubling up to Max, so
// that quick conditions are seen quickly and slow ones do not keep a TCG
// guest busy answering.
const (
	Start = 50 * time.Millisecond
	Max   = time.Second
)

// Until calls check until it reports done or an error, or ctx ends. It
// returns check's error as it is; when ctx ends first, ctx's cause and the
// last value check saw ("" if none).
func Until(ctx context.Context, check func(ctx context.Context) (done bool, last string, err error)) (last string, err error) {
	interval := Start
	for {
		done, seen, err := check(ctx)
		if err != nil || done {
			return last, err
		}
		last = seen
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, context.Cause(ctx)
		case <-t.C:
		}
		interval = min(interval*2, Max)
	}
}
