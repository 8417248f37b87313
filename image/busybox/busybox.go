// Package busybox provides the static busybox that initramfs machines use
// as their shell and tools: Debian's busybox-static, fetched through a
// deb.Source and unpacked into the cache. It imports image/cache and
// image/deb.
package busybox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
)

// Package is the Debian package the binary comes from.
const Package = "busybox-static"

// CacheKind is the cache kind of unpacked binaries, keyed by the SHA-256
// of the .deb.
const CacheKind = "busybox"

// Fetch returns the path of bin/busybox of the current busybox-static,
// fetching and unpacking it on a cache miss.
func Fetch(ctx context.Context, c *cache.Cache, src deb.Source) (string, error) {
	pkg, debPath, err := deb.Fetch(ctx, c, src, Package)
	if err != nil {
		return "", fmt.Errorf("busybox: %w", err)
	}
	dir, err := c.Dir(CacheKind, pkg.SHA256, func(tmp string) error {
		return deb.Extract(debPath, tmp, func(p string) bool { return p == "bin/busybox" })
	})
	if err != nil {
		return "", fmt.Errorf("busybox: %w", err)
	}
	p := filepath.Join(dir, "bin", "busybox")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("busybox: %s has no bin/busybox: %w", pkg, err)
	}
	return p, nil
}
