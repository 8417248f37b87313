package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/busybox"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	"github.com/shakedown-dev/shakedown/qemu"
)

const (
	// rttSamples is the fewest round trips timed, whatever b.N is: with
	// 200 the p90 still has 20 samples above it. It is also the baseline's
	// N, so that both sets of percentiles rest on as many samples.
	rttSamples = 200
	// idleSettle is how long a machine idles after its first command
	// before its QEMU's resident memory is read: the boot's page faults
	// are over by then, and it adds only a second per boot.
	idleSettle = time.Second
	// machinesPerTestbed is how many machines one testbed holds (their
	// numbers are 1..254); BenchmarkBoot opens another testbed when one is
	// full, so that any -benchtime works.
	machinesPerTestbed = 254
	// prepTimeout bounds resolving the kernel and busybox for the baseline:
	// apt look-ups and, on a cold cache, two downloads.
	prepTimeout = 10 * time.Minute
	// baselineTimeout bounds one run of the baseline's run.sh: two small Go
	// builds, a boot under TCG (about 6 s on an idle host, several times
	// that on a loaded one) and rttSamples commands. It stays under go
	// test's default -timeout of 10 minutes, so a hung run fails with our
	// message and its QEMU killed, not with go test's panic.
	baselineTimeout = 5 * time.Minute
)

// baselineScript is the shell-backdoor baseline, relative to this
// package's directory: the repository's parent holds shared/.
var baselineScript = filepath.Join("..", "..", "shared", "baselines", "shell-backdoor", "run.sh")

// BenchmarkBoot times a fresh machine from Start to its first command's
// answer, once per iteration, and reports the median as boot-s, and the
// median resident memory of QEMU idling a second after that command as
// rss-MiB. ns/op is the mean of the same boot times. initramfs is the
// minimal machine; debian a full Debian system with systemd.
func BenchmarkBoot(b *testing.B) {
	b.Run("initramfs", func(b *testing.B) { benchBoot(b, shakedown.MachineConfig{}) })
	b.Run("debian", func(b *testing.B) {
		needDebian(b)
		benchBoot(b, debianConfig)
	})
}

func benchBoot(b *testing.B, cfg shakedown.MachineConfig) {
	testenv.NeedVM(b)
	opts := shakedown.Options{QuietConsole: true}
	tb := shakedown.New(b, opts)

	// The first boot of a process resolves the kernel, builds the agent
	// and finds (or builds) the image; that is image preparation, not
	// boot time, so an untimed machine pays for it.
	warm := tb.Machine("warmup", cfg)
	warm.Start()
	warm.Succeed("true")
	warm.Crash()
	used := 1

	boots := make([]time.Duration, 0, b.N)
	rss := make([]float64, 0, b.N)
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		if used == machinesPerTestbed {
			tb, used = shakedown.New(b, opts), 0
		}
		m := tb.Machine(fmt.Sprintf("boot%d", i+1), cfg)
		used++

		b.StartTimer()
		began := time.Now()
		m.Start()
		m.Succeed("true")
		took := time.Since(began)
		b.StopTimer()
		boots = append(boots, took)

		time.Sleep(idleSettle)
		kib, err := qemuRSSKiB(m.Name())
		if err != nil {
			b.Fatalf("%s: %v", m.Name(), err)
		}
		rss = append(rss, float64(kib)/1024)
		// One machine at a time: a second QEMU would take a CPU from the
		// next boot.
		m.Crash()
	}
	b.Logf("boots: %s", formatDurations(boots))
	b.ReportMetric(percentile(boots, 50).Seconds(), "boot-s")
	b.ReportMetric(percentile(rss, 50), "rss-MiB")
}

// BenchmarkRoundTrip times Exec of `true` on one booted machine, over
// max(b.N, rttSamples) calls, and reports the 50th and 90th percentiles,
// and beside them spawn-ms, the guest's own cost of spawning /bin/true
// timed inside the guest in the same run. ns/op is the mean round trip.
func BenchmarkRoundTrip(b *testing.B) {
	testenv.NeedVM(b)
	tb := shakedown.New(b, shakedown.Options{QuietConsole: true})
	m := tb.Machine("rtt", shakedown.MachineConfig{})
	m.Start()
	// The first command opens what later ones reuse; the baseline's host
	// likewise runs one untimed command before it measures.
	m.Succeed("true")

	n := max(b.N, rttSamples)
	rtts := make([]time.Duration, n)
	// The timer runs over the calls (not only b.N of them) so that go
	// test's ramp-up sees real time and does not multiply b.N; ns/op is
	// then set from the mean instead.
	b.ResetTimer()
	began := time.Now()
	for i := range rtts {
		s := time.Now()
		res, err := m.Exec(shakedown.Command{Cmd: "true"})
		rtts[i] = time.Since(s)
		if err != nil {
			b.Fatalf("round trip %d of %d: %v", i+1, n, err)
		}
		if res.Status != 0 {
			b.Fatalf("round trip %d of %d: `true` exited with status %d, want 0", i+1, n, res.Status)
		}
	}
	total := time.Since(began)
	b.StopTimer()
	spawn, err := guestSpawnTime(m, spawnSamples)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(n), "ns/op")
	b.ReportMetric(ms(percentile(rtts, 50)), "rtt-p50-ms")
	b.ReportMetric(ms(percentile(rtts, 90)), "rtt-p90-ms")
	b.ReportMetric(ms(spawn), "spawn-ms")
}

// spawnSamples is how many spawns of /bin/true the guest times: enough
// that the shell loop's own cost and the clock's reads vanish beside them.
const spawnSamples = 200

// guestSpawnTime is the guest's own mean cost of spawning /bin/true and
// waiting for it, timed inside the guest (fork, exec, exit, wait from a
// shell, the same program the round trip runs): the floor under any
// round trip, so that the round trip's distance from it is measured.
func guestSpawnTime(m *shakedown.Machine, n int) (time.Duration, error) {
	// busybox's date has no %N; the kernel's timer list says "now at N
	// nsecs" on its third line, read by the shell without a spawn.
	const now = `{ read -r _; read -r _; read -r _ _ n _; } < /proc/timer_list; echo $n`
	out, err := m.SucceedE(fmt.Sprintf("s=$(%s); i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; e=$(%s); echo $s $e", now, n, now))
	if err != nil {
		return 0, fmt.Errorf("time spawns in the guest: %w", err)
	}
	var start, end int64
	if _, err := fmt.Sscan(out, &start, &end); err != nil || end <= start {
		return 0, fmt.Errorf("time spawns in the guest: got %q, want two nanosecond readings of /proc/timer_list", out)
	}
	return time.Duration(end-start) / time.Duration(n), nil
}

// BenchmarkBaselineShellBackdoor runs the shell-backdoor baseline (a root
// shell on hvc0 driven as the NixOS test driver does) on the kernel and
// busybox that shakedown boots, under the accelerator shakedown would
// choose, and reports its boot-s, rtt-p50-ms and rtt-p90-ms.
//
// It runs run.sh once per call, whatever b.N is: one run already times
// rttSamples commands, and each run rebuilds and reboots everything. The
// timer covers that run, so go test's ramp-up stops after it, and ns/op is
// set to the run's wall time (builds included), not divided by b.N.
func BenchmarkBaselineShellBackdoor(b *testing.B) {
	testenv.NeedVM(b)
	script, err := filepath.Abs(baselineScript)
	if err != nil {
		b.Fatalf("baseline script: %v", err)
	}
	if _, err := os.Stat(script); err != nil {
		b.Skipf("no shell-backdoor baseline: %v (it lives in shared/baselines next to the repository, not in the module)", err)
	}
	for _, tool := range baselineTools {
		needTool(b, tool.name, tool.pkg)
	}

	ctx, cancel := context.WithTimeout(context.Background(), prepTimeout)
	defer cancel()
	c, err := cache.Open("")
	if err != nil {
		b.Fatalf("%v", err)
	}
	k, err := kernel.Debian(ctx, c, deb.Apt{})
	if err != nil {
		b.Fatalf("%v", err)
	}
	bb, err := busybox.Fetch(ctx, c, deb.Apt{})
	if err != nil {
		b.Fatalf("%v", err)
	}
	if k.ModulesDir == "" {
		b.Fatalf("kernel %s has no modules directory; the baseline loads virtio modules from it", k.Version)
	}

	path := os.Getenv("PATH")
	accel, _, err := qemu.ChooseAccel(false, os.Getenv(shakedown.EnvAccel))
	if err != nil {
		b.Fatalf("%v", err)
	}
	if accel == qemu.AccelTCG {
		// run.sh's host asks for accel=kvm:tcg, which takes /dev/kvm even
		// where shakedown finds it unusable (a paravirtual KVM that crashes
		// or crawls ordinary guests). Comparing like with like means the
		// baseline emulates too.
		real, err := exec.LookPath(qemuBinary)
		if err == nil {
			real, err = filepath.Abs(real)
		}
		if err != nil {
			b.Fatalf("%s: %v", qemuBinary, err)
		}
		shimDir := b.TempDir()
		if err := writeTCGShim(shimDir, real); err != nil {
			b.Fatalf("%v", err)
		}
		path = shimDir + string(os.PathListSeparator) + path
	}
	// The baseline boots the bzImage, while shakedown boots k.Vmlinux
	// through its PVH entry when there is one; under TCG the bzImage's
	// self-decompression costs seconds, so part of a boot-s difference is
	// the kernel format, not the command channel.
	b.Logf("accelerator %s; kernel %s (bzImage); %s", accel, k.Version, bb)
	env := append(os.Environ(),
		"PATH="+path,
		"KERNEL="+k.BzImage,
		"MODDIR="+k.ModulesDir,
		"BUSYBOX="+bb,
		fmt.Sprintf("N=%d", rttSamples),
	)

	b.ResetTimer()
	began := time.Now()
	out, err := runBaseline(script, env, baselineTimeout)
	wall := time.Since(began)
	b.StopTimer()
	if err != nil {
		b.Fatalf("%v", err)
	}
	fig, err := parseBaseline(out)
	if err != nil {
		b.Fatalf("%v", err)
	}
	b.Logf("%s", fig.line)
	b.ReportMetric(float64(wall.Nanoseconds()), "ns/op")
	b.ReportMetric(fig.bootS, "boot-s")
	b.ReportMetric(fig.p50ms, "rtt-p50-ms")
	b.ReportMetric(fig.p90ms, "rtt-p90-ms")
}

// percentile returns the p-th percentile of xs by nearest rank from below,
// xs[len*p/100] of the sorted values: the same index the baseline's host
// uses, so that both sides' figures mean the same. For p = 50 and an even
// count it is the upper of the two middle values.
func percentile[T cmp.Ordered](xs []T, p int) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func formatDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2fs", d.Seconds())
	}
	return strings.Join(parts, " ")
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		xs   []int
		p    int
		want int
	}{
		{"one", []int{7}, 50, 7},
		{"odd median", []int{5, 1, 3, 2, 4}, 50, 3},
		{"even median is the upper", []int{4, 1, 3, 2}, 50, 3},
		{"p90 of ten", []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 90, 10},
		{"p90 of 200", seq(200), 90, 180},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.xs)
			if got := percentile(tt.xs, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %d) = %d, want %d", tt.xs, tt.p, got, tt.want)
			}
			if !slices.Equal(in, tt.xs) {
				t.Errorf("percentile reordered its input")
			}
		})
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
