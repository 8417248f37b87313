package network

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkSwitchHostPorts sends frames between two host ports through a
// switch and reports:
//   - frames/s: b.N frames streamed from one port to the other, at most
//     benchWindow in flight so that nothing is dropped (the benchmark fails
//     on any drop);
//   - p50-us, p99-us: the latency the switch adds, from frames sent one at
//     a time (the next leaves when the last has arrived) to a reader waiting
//     in another goroutine;
//   - load-p99-us: the latency of the streamed frames, queueing included.
//
// It measures the switch, not the sockets to QEMU: host ports are what
// gVisor endpoints and the bench/ comparison with vde_switch attach with.
func BenchmarkSwitchHostPorts(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			s := newSwitch(b, Config{})
			hs := hostPorts(b, s, "a", "b")
			a, r := hs[0], hs[1]
			// Learned both ways, so frames are unicast.
			write(b, a, mkFrame(broadcast, macOf(1), 0, 60))
			read(b, r)
			write(b, r, mkFrame(broadcast, macOf(2), 0, 60))
			read(b, a)
			frame := mkFrame(macOf(2), macOf(1), 0, size)

			b.SetBytes(int64(size))
			b.ResetTimer()
			start := time.Now()
			loaded := stream(b, s, a, r, frame)
			elapsed := time.Since(start)
			b.StopTimer()
			idle := lockstep(b, s, a, r, frame, min(b.N, 5000))

			if d := s.Counters().Drops; d.Total() != 0 {
				b.Fatalf("drops without impairments: %+v", d)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
			b.ReportMetric(pct(idle, 50), "p50-us")
			b.ReportMetric(pct(idle, 99), "p99-us")
			b.ReportMetric(pct(loaded, 99), "load-p99-us")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchWindow bounds the frames in flight while streaming: well under the
// queue length, so that the figures are of a lossless switch.
const benchWindow = DefaultQueueLen / 2

// benchAck is how many frames the receiver acknowledges at once.
const benchAck = 32

// stream sends b.N frames from a to r and returns their latencies.
func stream(b *testing.B, s *Switch, a, r *HostPort, frame []byte) []time.Duration {
	lats := make([]time.Duration, 0, b.N)
	acks := make(chan struct{}, benchWindow/benchAck)
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range b.N {
			f, err := r.ReadFrame(ctx)
			if err != nil {
				done <- err
				return
			}
			lats = append(lats, time.Duration(s.clock()-int64(binary.BigEndian.Uint64(f[headerLen+4:]))))
			if i%benchAck == benchAck-1 {
				acks <- struct{}{}
			}
		}
		done <- nil
	}()
	f := slices.Clone(frame)
	for i := range b.N {
		if i >= benchWindow && i%benchAck == 0 {
			<-acks
		}
		binary.BigEndian.PutUint64(f[headerLen+4:], uint64(s.clock()))
		if err := a.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return lats
}

// lockstep sends n frames from a to r one at a time, each once the last
// has arrived, to a reader waiting in its own goroutine as a real one does,
// and returns their latencies.
func lockstep(b *testing.B, s *Switch, a, r *HostPort, frame []byte, n int) []time.Duration {
	lats := make([]time.Duration, 0, n)
	got := make(chan error)
	go func() {
		ctx := context.Background()
		for range n {
			f, err := r.ReadFrame(ctx)
			if err == nil {
				lats = append(lats, time.Duration(s.clock()-int64(binary.BigEndian.Uint64(f[headerLen+4:]))))
			}
			got <- err
		}
	}()
	f := slices.Clone(frame)
	for range n {
		binary.BigEndian.PutUint64(f[headerLen+4:], uint64(s.clock()))
		if err := a.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
		if err := <-got; err != nil {
			b.Fatal(err)
		}
	}
	return lats
}

// pct returns the p-th percentile of lats in microseconds.
func pct(lats []time.Duration, p int) float64 {
	if len(lats) == 0 {
		return 0
	}
	lats = slices.Clone(lats)
	slices.Sort(lats)
	return float64(lats[(len(lats)-1)*p/100]) / float64(time.Microsecond)
}
