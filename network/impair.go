package network

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Defaults of Impairment fields left zero.
const (
	// DefaultReorderHold lets frames that follow within a millisecond
	// overtake a reordered one: long enough for a burst, short enough not
	// to look like a delay.
	DefaultReorderHold = time.Millisecond
	// DefaultRateQueue is the longest a frame waits for a rate limit before
	// it is dropped, as tc's tbf "latency": long enough to smooth TCP's
	// bursts, short enough not to hide the limit behind a deep queue.
	DefaultRateQueue = 50 * time.Millisecond
)

// Impairment degrades frames the way netem does on a Linux interface. The
// zero value changes nothing, and each field acts on its own. A frame meets
// them in this order: loss, corruption, duplication, delay with jitter,
// reordering, rate limit.
//
// Random choices come from a generator seeded by Seed (with Config.Seed and
// the ports involved), so a test that sends the same frames in the same
// order sees the same frames lost, duplicated or corrupted on every run.
type Impairment struct {
	// LossPercent of the frames (0 to 100) are dropped.
	LossPercent float64
	// CorruptPercent of the frames get one random bit flipped. The flip
	// falls after the Ethernet header and any VLAN tags, so that the frame
	// still reaches its destination and the receiver's checksums are what
	// is tested.
	CorruptPercent float64
	// DuplicatePercent of the frames are delivered twice; the copy
	// leaves right after its original.
	DuplicatePercent float64
	// Delay holds every frame back this long.
	Delay time.Duration
	// Jitter spreads the delay evenly over Delay-Jitter to Delay+Jitter
	// (never below zero). As with netem, frames closer together than the
	// spread can overtake each other.
	Jitter time.Duration
	// ReorderPercent of the frames are held back ReorderHold beyond their
	// delay, so that frames sent meanwhile overtake them.
	ReorderPercent float64
	// ReorderHold is how long a reordered frame is held back; zero means
	// DefaultReorderHold.
	ReorderHold time.Duration
	// RateBitsPerSec limits the throughput in bits of frame per second (no
	// preamble, gap or FCS); zero means no limit. It is a token bucket
	// that shapes: frames over the rate wait their turn, up to RateQueue,
	// and are dropped beyond it.
	RateBitsPerSec int64
	// RateBurstBytes is the bucket's depth; zero means one frame of the
	// largest size the MTU admits.
	RateBurstBytes int
	// RateQueue bounds how long a frame waits for the rate limit; zero
	// means DefaultRateQueue.
	RateQueue time.Duration
	// Seed seeds the impairment's random choices.
	Seed uint64
}

// IsZero reports whether imp changes nothing.
func (imp Impairment) IsZero() bool {
	return imp.LossPercent == 0 && imp.CorruptPercent == 0 && imp.DuplicatePercent == 0 &&
		imp.Delay == 0 && imp.Jitter == 0 && imp.ReorderPercent == 0 && imp.RateBitsPerSec == 0
}

// Validate reports whether the switch takes imp: percentages in 0..100,
// no negative durations or rates. SetImpairment and SetPairImpairment
// check it too; front ends check it before a run.
func (imp Impairment) Validate() error { return imp.validate() }

func (imp Impairment) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", imp.LossPercent}, {"corrupt", imp.CorruptPercent},
		{"duplicate", imp.DuplicatePercent}, {"reorder", imp.ReorderPercent}} {
		// Written so that NaN fails too.
		if !(p.v >= 0 && p.v <= 100) {
			return fmt.Errorf("%s %v%% not in 0..100", p.name, p.v)
		}
	}
	switch {
	case imp.Delay < 0:
		return fmt.Errorf("negative delay %v", imp.Delay)
	case imp.Jitter < 0:
		return fmt.Errorf("negative jitter %v", imp.Jitter)
	case imp.ReorderHold < 0:
		return fmt.Errorf("negative reorder hold %v", imp.ReorderHold)
	case imp.RateBitsPerSec < 0:
		return fmt.Errorf("negative rate %d bit/s", imp.RateBitsPerSec)
	case imp.RateBurstBytes < 0:
		return fmt.Errorf("negative rate burst %d bytes", imp.RateBurstBytes)
	case imp.RateQueue < 0:
		return fmt.Errorf("negative rate queue %v", imp.RateQueue)
	}
	return nil
}

// stage applies one Impairment to the frames that pass one point: a port's
// way in, its way out, or a pair of ports. Its random generator and token
// bucket are its own, so that what one stage decides does not depend on the
// traffic through the others.
type stage struct {
	imp Impairment
	// hold, tau and maxWait are ReorderHold, the bucket's depth and
	// RateQueue in nanoseconds.
	hold, tau, maxWait int64

	mu  sync.Mutex
	rng *rand.Rand
	// tat is the token bucket's theoretical arrival time (GCRA, the
	// bucket's virtual-time form): when the bucket will have emptied.
	tat int64
}

// stage kinds, mixed into the seed.
const (
	stageIn = iota + 1
	stageOut
	stagePair
)

func newStage(imp Impairment, seed uint64, kind int, a, b PortID, maxFrame int) *stage {
	st := &stage{imp: imp, rng: rand.New(rand.NewPCG(seed^imp.Seed, uint64(kind)<<60^uint64(a)<<30^uint64(b)))}
	st.hold = int64(imp.ReorderHold)
	if st.hold == 0 {
		st.hold = int64(DefaultReorderHold)
	}
	st.maxWait = int64(imp.RateQueue)
	if st.maxWait == 0 {
		st.maxWait = int64(DefaultRateQueue)
	}
	if imp.RateBitsPerSec > 0 {
		burst := imp.RateBurstBytes
		if burst == 0 {
			burst = maxFrame
		}
		st.tau = bitsTime(burst, imp.RateBitsPerSec)
	}
	return st
}

// bitsTime is how many nanoseconds n bytes take at rate bits/s.
func bitsTime(n int, rate int64) int64 {
	return int64(float64(n) * 8 * 1e9 / float64(rate))
}

// verdict is what a stage decided for one frame.
type verdict struct {
	drop      bool
	reason    dropReason
	at        int64 // when the frame leaves the stage
	dup       bool
	reordered bool
	flip      int // bit to flip, or -1
}

// judge decides the fate of a frame of size bytes, hdr of them headers,
// reaching the stage at time arrive.
func (st *stage) judge(size, hdr int, arrive int64) verdict {
	imp := &st.imp
	v := verdict{at: arrive, flip: -1}
	st.mu.Lock()
	defer st.mu.Unlock()
	if imp.LossPercent > 0 && st.rng.Float64()*100 < imp.LossPercent {
		return verdict{drop: true, reason: dropLoss}
	}
	if imp.CorruptPercent > 0 && st.rng.Float64()*100 < imp.CorruptPercent && size > 0 {
		if size > hdr {
			v.flip = hdr*8 + st.rng.IntN((size-hdr)*8)
		} else {
			v.flip = st.rng.IntN(size * 8)
		}
	}
	if imp.DuplicatePercent > 0 && st.rng.Float64()*100 < imp.DuplicatePercent {
		v.dup = true
	}
	if imp.Delay > 0 || imp.Jitter > 0 {
		d := int64(imp.Delay)
		if j := int64(imp.Jitter); j > 0 {
			d += st.rng.Int64N(2*j+1) - j
		}
		v.at += max(d, 0)
	}
	if imp.ReorderPercent > 0 && st.rng.Float64()*100 < imp.ReorderPercent {
		v.at += st.hold
		v.reordered = true
	}
	if rate := imp.RateBitsPerSec; rate > 0 {
		tat := max(st.tat, v.at)
		leave := max(v.at, tat-st.tau)
		if leave-v.at > st.maxWait {
			// Refused frames take no tokens: the frames that do get
			// through still fill the rate.
			return verdict{drop: true, reason: dropRateLimit}
		}
		st.tat = tat + bitsTime(size, rate)
		v.at = leave
	}
	return v
}

// String describes what imp does in a few words ("loss 10%, delay
// 50ms±5ms"), for logs and the web page; "none" when it does nothing.
func (imp Impairment) String() string {
	var parts []string
	pct := func(name string, p float64) {
		if p > 0 {
			parts = append(parts, fmt.Sprintf("%s %g%%", name, p))
		}
	}
	pct("loss", imp.LossPercent)
	if imp.Delay > 0 || imp.Jitter > 0 {
		d := "delay " + imp.Delay.String()
		if imp.Jitter > 0 {
			d += "±" + imp.Jitter.String()
		}
		parts = append(parts, d)
	}
	if imp.RateBitsPerSec > 0 {
		parts = append(parts, fmt.Sprintf("rate %d bit/s", imp.RateBitsPerSec))
	}
	pct("duplicate", imp.DuplicatePercent)
	pct("reorder", imp.ReorderPercent)
	pct("corrupt", imp.CorruptPercent)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
