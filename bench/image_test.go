package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
)

// imagePackages are the packages of the benchmarked image: a program with
// a deep library closure (curl: 33 packages), and two with data files.
var imagePackages = []string{"curl", "jq", "file"}

// BenchmarkImageBuild times BuildImage for an initramfs with
// imagePackages, pinned by a lock, and reports the mean build time as
// build-s and the image's size as MiB.
//
// cold builds in a fresh cache directory per iteration whose "deb" and
// "kernel" entries are the user cache's (symlinked): no downloads and no
// kernel unpacking, but the agent is built (from Go's build cache),
// busybox and every package are unpacked, the library closure computed,
// the image hashed and written. warm is a cache hit in the user cache:
// the lock spares all apt look-ups, what remains is hashing the inputs.
func BenchmarkImageBuild(b *testing.B) {
	if _, err := os.Stat("/usr/bin/apt-get"); err != nil {
		b.Skip("needs apt")
	}
	ctx, cancel := context.WithTimeout(context.Background(), prepTimeout)
	defer cancel()
	user, err := cache.Open("")
	if err != nil {
		b.Fatal(err)
	}
	cfg := shakedown.MachineConfig{Packages: imagePackages}
	// Resolve and download once, so that both cases have the .debs and
	// a lock.
	first, err := shakedown.BuildImage(ctx, cfg, shakedown.ImageOptions{CacheDir: user.Root})
	if err != nil {
		b.Fatal(err)
	}
	opts := shakedown.ImageOptions{Lock: first.Lock}
	run := func(b *testing.B, dir func(b *testing.B) string) {
		var total time.Duration
		var size int64
		for b.Loop() {
			o := opts
			o.CacheDir = dir(b)
			began := time.Now()
			img, err := shakedown.BuildImage(ctx, cfg, o)
			if err != nil {
				b.Fatal(err)
			}
			total += time.Since(began)
			size = img.Size
			if img.Key != first.Key {
				b.Fatalf("key %s, want %s: the locked build is not reproducible", img.Key, first.Key)
			}
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "build-s")
		b.ReportMetric(float64(size)/(1<<20), "MiB")
	}
	b.Run("initramfs/cold", func(b *testing.B) {
		run(b, func(b *testing.B) string {
			dir := b.TempDir()
			for _, kind := range []string{deb.CacheKind, "kernel"} {
				if err := os.Symlink(filepath.Join(user.Root, kind), filepath.Join(dir, kind)); err != nil {
					b.Fatal(err)
				}
			}
			return dir
		})
	})
	b.Run("initramfs/warm", func(b *testing.B) {
		run(b, func(*testing.B) string { return user.Root })
	})
	b.Run("debian", benchImageBuildDebian)
}
