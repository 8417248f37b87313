package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// debianBuildTimeout bounds one Debian image build: mmdebstrap downloads
// and installs some 150 packages (about a minute here), then the disk is
// unpacked and made (seconds).
const debianBuildTimeout = 15 * time.Minute

func needDebian(b *testing.B) {
	b.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		if testenv.InCI() {
			b.Fatal("mmdebstrap not found and CI=true: scripts/setup-debian.sh installs it")
		}
		b.Skip("needs mmdebstrap (apt-get install mmdebstrap)")
	}
	if os.Geteuid() != 0 {
		b.Skip("mmdebstrap needs root")
	}
}

// debianConfig is the benchmarked Debian system: the base packages only.
var debianConfig = shakedown.MachineConfig{Debian: &shakedown.DebianSystem{}}

// benchImageBuildDebian is BenchmarkImageBuild/debian: it times
// BuildDebian and reports build-s and the disk image's allocated size as
// MiB.
//
// cold builds in a fresh cache whose "deb" and "kernel" entries are the
// user cache's: mmdebstrap downloads and installs everything, then the
// disk is made. disk has the mmdebstrap tarball cached too (what a
// changed agent, unit or file costs: unpack, add, mke2fs). warm is a cache
// hit in the user cache.
func benchImageBuildDebian(b *testing.B) {
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
	b.Run("disk", func(b *testing.B) { run(b, fresh(deb.CacheKind, "kernel", debian.RootfsKind)) })
	b.Run("warm", func(b *testing.B) { run(b, func(*testing.B) string { return user.Root }) })
}
