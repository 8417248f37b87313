package debian

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/pkgset"
)

// A Debian system's packages are locked like an initramfs's: the lock
// (pkgset.Lock) lists every package installed in the root file system,
// by version and SHA-256 from apt's signed index. A locked build does not
// ask a mirror what to install: it fetches exactly those .debs (verified,
// and cached like the initramfs's), makes a flat apt repository of them
// in a scratch directory, and points mmdebstrap at it alone. With the
// same lock and spec the root file system and the disk are byte-identical
// (see epoch), and a build years later needs the .debs, not the mirror's
// state of the day.

// fetchParallel is how many locked packages are fetched at once.
const fetchParallel = 6

// statusPath is dpkg's status file in an mmdebstrap tarball.
const statusPath = "var/lib/dpkg/status"

// installedPackages reads the packages installed in an mmdebstrap tarball.
func installedPackages(tarball string) ([]deb.Package, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no /%s: not a Debian root file system", tarball, statusPath)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", tarball, err)
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) != statusPath {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", tarball, err)
		}
		return deb.Installed(b)
	}
}

// lockRootfs returns the lock of the root file system in tarball: each
// installed package's version resolved through src to its SHA-256.
func lockRootfs(ctx context.Context, src deb.Source, tarball string, request []string) (*pkgset.Lock, error) {
	installed, err := installedPackages(tarball)
	if err != nil {
		return nil, err
	}
	if pf, ok := src.(deb.Prefetcher); ok {
		names := make([]string, len(installed))
		for i, p := range installed {
			names[i] = p.Name
		}
		pf.Prefetch(ctx, names)
	}
	used := make([]deb.Package, 0, len(installed))
	for _, in := range installed {
		// The candidate is what mmdebstrap installed, unless the mirror
		// moved on since the host's `apt-get update`.
		p, err := src.Resolve(ctx, in.Name)
		if err != nil || p.Version != in.Version {
			p, err = src.Resolve(ctx, in.Name+"="+in.Version)
		}
		if err != nil {
			return nil, fmt.Errorf("lock %s=%s, installed by mmdebstrap: %w (the host's apt lists may be older than the mirror: run `apt-get update`)", in.Name, in.Version, err)
		}
		used = append(used, p)
	}
	return pkgset.NewLock(request, used), nil
}

// localRepo fetches the locked packages into the cache (verified against
// the lock's SHA-256) and makes dir a flat apt repository of them: the
// .debs, linked, and a Packages index made of their control files. It
// returns the sources.list line for mmdebstrap.
func localRepo(ctx context.Context, c *cache.Cache, src deb.Source, lock *pkgset.Lock, suite, dir string) (string, error) {
	pins := lock.Pins()
	paths := make([]string, len(pins))
	errs := make([]error, len(pins))
	// A few downloads at a time: each is an apt-get run that mostly waits
	// on the mirror, and a system is a hundred or more packages.
	sem := make(chan struct{}, fetchParallel)
	var wg sync.WaitGroup
	for i, p := range pins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			paths[i], errs[i] = deb.FetchPackage(ctx, c, src, p)
		}()
	}
	wg.Wait()
	var index bytes.Buffer
	for i, p := range pins {
		path, err := paths[i], errs[i]
		if err != nil {
			return "", fmt.Errorf("locked package %s: %w", p, err)
		}
		control, err := deb.ControlFile(path)
		if err != nil {
			return "", fmt.Errorf("locked package %s: %w", p, err)
		}
		name := fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Architecture)
		if err := os.Link(path, filepath.Join(dir, name)); err != nil {
			// Another file system: copy.
			if err := copyFile(path, filepath.Join(dir, name), 0o644); err != nil {
				return "", err
			}
		}
		index.Write(bytes.TrimRight(control, "\n"))
		fmt.Fprintf(&index, "\nFilename: ./%s\nSize: %d\nSHA256: %s\n\n", name, p.Size, p.SHA256)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), index.Bytes(), 0o644); err != nil {
		return "", err
	}
	// apt refuses a repository without a Release file; this one lists the
	// index, whose .debs the lock's hashes vouch for. mmdebstrap picks
	// the packages of priority required from the suite by its name.
	sum := sha256.Sum256(index.Bytes())
	release := fmt.Sprintf("Origin: shakedown\nLabel: shakedown lock\nSuite: %s\nCodename: %s\nDate: %s\nSHA256:\n %s %d Packages\n",
		suite, suite, time.Unix(epoch, 0).UTC().Format(time.RFC1123), hex.EncodeToString(sum[:]), index.Len())
	if err := os.WriteFile(filepath.Join(dir, "Release"), []byte(release), 0o644); err != nil {
		return "", err
	}
	// copy://, not file://: mmdebstrap copies the .debs into its chroot,
	// where apt reads them.
	return "deb [trusted=yes] copy://" + dir + " ./", nil
}

// checkLocked fails when a locked build installed other packages than
// the lock lists: a lock from another spec, or one edited by hand.
func checkLocked(tarball string, lock *pkgset.Lock) error {
	installed, err := installedPackages(tarball)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, p := range installed {
		got[p.Name] = p.Version
	}
	var extra, missing []string
	for _, p := range lock.Packages {
		if v, ok := got[p.Name]; !ok || v != p.Version {
			missing = append(missing, p.Name+"="+p.Version)
		}
		delete(got, p.Name)
	}
	for n, v := range got {
		extra = append(extra, n+"="+v)
	}
	if len(extra)+len(missing) == 0 {
		return nil
	}
	slices.Sort(extra)
	return fmt.Errorf("the lock does not match the spec: installed but not locked %v, locked but not installed %v (a lock from another spec? delete it to lock afresh)", extra, missing)
}
