package bench

import (
	"errors"
	"testing"

	"github.com/shakedown-dev/shakedown/internal/record"
)

// BenchmarkRecord measures what the testbed's record adds to the paths it
// sits on: each command and wait is a step begun and ended (ns/step),
// each console line is appended (ns/line), and a watching page asks for
// the lines after the last it saw (ns/read, 20 new lines each time). A
// command's round trip is milliseconds; these are meant to stay far
// below that.
func BenchmarkRecord(b *testing.B) {
	r := record.New("bench")
	end := r.Begin("", "subtest", true)
	defer end(nil, "")
	b.Run("step", func(b *testing.B) {
		for b.Loop() {
			r.Begin("web", "curl -sf http://db/", false)(nil, "exit status 0")
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/step")
	})
	b.Run("line", func(b *testing.B) {
		for b.Loop() {
			r.Console("web", "[    1.234567] virtio_net virtio1 eth0: renamed from something")
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/line")
	})
	b.Run("read", func(b *testing.B) {
		var seq int64
		for b.Loop() {
			for range 20 {
				r.Console("db", "a line")
			}
			lines := r.Lines("db", seq)
			if len(lines) != 20 {
				b.Fatal(errors.New("lost lines"))
			}
			seq = lines[len(lines)-1].Seq
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/read")
	})
}
