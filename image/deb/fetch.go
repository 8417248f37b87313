package deb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/shakedown-dev/shakedown/image/cache"
)

// CacheKind is the cache kind under which Fetch stores .deb files, each in a
// directory entry keyed by the file's SHA-256.
const CacheKind = "deb"

// verified holds the cached .deb paths whose hash this process has checked,
// so that a cached file is hashed once per process, not on every use.
var verified sync.Map // path -> struct{}

// Fetch resolves name through src and returns the package and the path of
// its verified .deb in the cache c, downloading it on a cache miss. See
// FetchPackage for the verification.
func Fetch(ctx context.Context, c *cache.Cache, src Source, name string) (Package, string, error) {
	p, err := src.Resolve(ctx, name)
	if err != nil {
		return Package{}, "", err // Resolve's error names the package already
	}
	path, err := FetchPackage(ctx, c, src, p)
	return p, path, err
}

// FetchPackage returns the path of the verified .deb of p in the cache c,
// downloading it through src on a miss. A download whose SHA-256 differs from
// p.SHA256 is ErrHashMismatch and is not cached. A cached .deb is hashed again
// the first time this process uses it; if it has gone corrupt it is removed
// and downloaded again.
func FetchPackage(ctx context.Context, c *cache.Cache, src Source, p Package) (string, error) {
	if !isSHA256(p.SHA256) {
		return "", fmt.Errorf("fetch %s: the index gives no SHA256 (%q), so a download cannot be verified: use a Source whose index has SHA256 fields", p, p.SHA256)
	}
	for attempt := 0; ; attempt++ {
		filled := false
		dir, err := c.Dir(CacheKind, p.SHA256, func(tmp string) error {
			filled = true
			got, err := src.Download(ctx, p, tmp)
			if err != nil {
				return err
			}
			if filepath.Dir(got) != filepath.Clean(tmp) {
				return fmt.Errorf("download %s: source wrote %s, want a file in %s", p, got, tmp)
			}
			return verifyFile(got, p)
		})
		if err != nil {
			return "", fmt.Errorf("fetch %s: %w", p, err)
		}
		path, err := findDeb(dir, p.Name)
		if err == nil && filled {
			verified.Store(path, struct{}{})
			return path, nil
		}
		if err == nil {
			if _, ok := verified.Load(path); ok {
				return path, nil
			}
			if err = verifyFile(path, p); err == nil {
				verified.Store(path, struct{}{})
				return path, nil
			}
		}
		if attempt > 0 {
			return "", fmt.Errorf("fetch %s: cached copy still bad after a fresh download: %w", p, err)
		}
		// The cached entry went bad (disk error, a crash before the files
		// reached the disk, someone editing the cache): fetch it again.
		if rerr := c.Remove(CacheKind, p.SHA256); rerr != nil {
			return "", fmt.Errorf("fetch %s: cached copy is bad (%v) and cannot be removed: %w", p, err, rerr)
		}
	}
}

// verifyFile checks that the file at path has p's SHA-256.
func verifyFile(path string, p Package) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("verify %s: %w: file %s has %s (%d bytes), the index says %s (%d bytes): the mirror or a proxy served another file; run `apt-get update` and try again",
			p, ErrHashMismatch, filepath.Base(path), got, n, p.SHA256, p.Size)
	}
	return nil
}
