package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// debianBuildTimeout bounds one Debian image build: mmdebstrap downloads
// and installs some 150 packages (about a minute here), then the disk is
// unpacked and made (seconds).
const debianBuildTimeout = 15 * time.Minute

func needDebian(b *testing.B) {
	b.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		b.Skip("needs mmdebstrap (apt-get install mmdebstrap)")
	}
	if os.Geteuid() != 0 {
		b.Skip("mmdebstrap needs root")
	}
}

// debianConfig is the benchmarked Debian system: the base packages only.
var debianConfig = shakedown.MachineConfig{Debian: &shakedown.DebianSystem{}}

// BenchmarkImageBuildDebian times BuildDebian (this is issue 4's
// BenchmarkImageBuild/debian, under its own name so as to leave
// image_test.go alone) and reports build-s and the disk image's allocated
// size as MiB.
//
// cold builds in a fresh cache whose "deb" and "kernel" entries are the
// user cache's: mmdebstrap downloads and installs everything, then the
// disk is made. disk has the mmdebstrap tarball cached too (what a
// changed agent, unit or file costs: unpack, add, mke2fs). warm is a cache
// hit in the user cache.
func BenchmarkImageBuildDebian(b *testing.B) {
	needDebian(b)
	ctx, cancel := context.WithTimeout(context.Background(), debianBuildTimeout)
	defer cancel()
	user, err := cache.Open("")
	if err != nil {
		b.Fatal(err)
	}
	// Fill the user cache first, for disk and warm.
	if _, err := shakedown.BuildDebian(ctx, debianConfig, shakedown.ImageOptions{CacheDir: user.Root}); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, dir func(b *testing.B) string) {
		var total time.Duration
		var size int64
		for b.Loop() {
			d := dir(b)
			began := time.Now()
			img, err := shakedown.BuildDebian(ctx, debianConfig, shakedown.ImageOptions{CacheDir: d})
			if err != nil {
				b.Fatal(err)
			}
			total += time.Since(began)
			size = img.Size
			if d != user.Root {
				os.RemoveAll(d) // gigabytes otherwise, until the benchmark ends
			}
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "build-s")
		b.ReportMetric(float64(size)/(1<<20), "MiB")
	}
	fresh := func(kinds ...string) func(b *testing.B) string {
		return func(b *testing.B) string {
			dir, err := os.MkdirTemp("", "shakedown-bench-")
			if err != nil {
				b.Fatal(err)
			}
			for _, kind := range kinds {
				if err := os.Symlink(filepath.Join(user.Root, kind), filepath.Join(dir, kind)); err != nil {
					b.Fatal(err)
				}
			}
			return dir
		}
	}
	b.Run("cold", func(b *testing.B) { run(b, fresh(deb.CacheKind, "kernel")) })
	b.Run("disk", func(b *testing.B) { run(b, fresh(deb.CacheKind, "kernel", shakedown.DebianRootfsKind)) })
	b.Run("warm", func(b *testing.B) { run(b, func(*testing.B) string { return user.Root }) })
}

// BenchmarkBootKinds times the boot to the first command, as BenchmarkBoot
// does, of an initramfs machine and of a Debian system (issue 4's
// BenchmarkBoot/<initramfs|debian>, named apart from bench_test.go's),
// with the image already built, and reports the median as boot-s.
func BenchmarkBootKinds(b *testing.B) {
	testenv.NeedVM(b)
	for _, kind := range []struct {
		name string
		cfg  shakedown.MachineConfig
	}{
		{"initramfs", shakedown.MachineConfig{}},
		{"debian", debianConfig},
	} {
		b.Run(kind.name, func(b *testing.B) {
			if kind.cfg.Debian != nil {
				needDebian(b)
			}
			opts := shakedown.Options{QuietConsole: true}
			tb := shakedown.New(b, opts)
			// An untimed machine builds or finds the image.
			warm := tb.Machine("warmup", kind.cfg)
			warm.Start()
			warm.Succeed("true")
			warm.Crash()
			used := 1
			var boots []time.Duration
			for i := 0; b.Loop(); i++ {
				if used == machinesPerTestbed {
					tb, used = shakedown.New(b, opts), 0
				}
				m := tb.Machine(fmt.Sprintf("boot%d", i+1), kind.cfg)
				used++
				began := time.Now()
				m.Start()
				m.Succeed("true")
				boots = append(boots, time.Since(began))
				m.Crash()
			}
			b.Logf("boots: %s", formatDurations(boots))
			b.ReportMetric(percentile(boots, 50).Seconds(), "boot-s")
		})
	}
}
