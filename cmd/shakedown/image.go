package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/pkgset"
)

const imageUsage = `usage: shakedown image <command> [flags]

commands:
  build [--packages a,b] [--lock FILE]   build a machine's initramfs, print its key, size and contents
                                         (on a terminal, a live line shows downloads and build steps)
  build --debian [--suite S] [--mirror URL] [--packages a,b] [--lock FILE]
                                         build a full Debian system's root disk (mmdebstrap, root);
                                         with a lock, from exactly the locked .debs, byte for byte
  ls                                     list cached images (initramfs, debian-rootfs, debian-disk)
                                         with sizes on disk, ages and packages
  gc [--older-than 7d]                   remove cached images not used for that long (a Debian
                                         disk is self-contained: removing its rootfs only costs
                                         a rebuild when a new disk needs it)
`

// imageBuildTimeout bounds a build: apt look-ups, downloads of a kernel,
// busybox and the packages on a cold cache, and hashing and writing a few
// hundred MB at most.
const imageBuildTimeout = 30 * time.Minute

func imageCmd(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, imageUsage)
		os.Exit(2)
	}
	switch args[0] {
	case "build":
		return imageBuild(args[1:])
	case "ls":
		return imageLs(args[1:])
	case "gc":
		return imageGC(args[1:])
	case "-h", "--help", "help":
		fmt.Print(imageUsage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "shakedown image: unknown command %q\n\n%s", args[0], imageUsage)
	os.Exit(2)
	return nil
}

func imageBuild(args []string) error {
	flags := flag.NewFlagSet("image build", flag.ExitOnError)
	packages := flags.String("packages", "", "comma-separated Debian packages (name or name=version)")
	lockFile := flags.String("lock", "", "lock file: pins packages when it exists, and receives the build's lock")
	cacheDir := flags.String("cache", "", "cache directory (default $SHAKEDOWN_CACHE or the user cache)")
	debian := flags.Bool("debian", false, "build a full Debian system's root disk instead of an initramfs")
	suite := flags.String("suite", "", "with --debian: the Debian suite (default the host's)")
	mirror := flags.String("mirror", "", "with --debian: the Debian mirror (default the host's apt sources)")
	flags.Parse(args)
	if flags.NArg() > 0 {
		return fmt.Errorf("image build: unexpected arguments %q", flags.Args())
	}
	var pkgs []string
	for p := range strings.SplitSeq(*packages, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pkgs = append(pkgs, p)
		}
	}
	opts := shakedown.ImageOptions{CacheDir: *cacheDir}
	if *lockFile != "" {
		l, err := pkgset.ReadLock(*lockFile)
		switch {
		case err == nil:
			opts.Lock = l
		case errors.Is(err, fs.ErrNotExist):
		default:
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, imageBuildTimeout)
	defer cancel()
	if (*suite != "" || *mirror != "") && !*debian {
		return errors.New("image build: --suite and --mirror are for --debian (an initramfs's packages come through the host's apt sources; APT_CONFIG points apt at others)")
	}
	// Progress goes to stderr, where it stays out of a piped result.
	status := newStatusLine(os.Stderr, os.Getenv("NO_COLOR") == "")
	opts.Progress = status.Progress()
	if *debian {
		return debianBuild(ctx, &shakedown.DebianSystem{Suite: *suite, Mirror: *mirror, Packages: pkgs, Lock: opts.Lock}, opts, *lockFile, status)
	}
	cfg := shakedown.MachineConfig{Packages: pkgs}
	status.Start()
	began := time.Now()
	img, err := shakedown.BuildImage(ctx, cfg, opts)
	status.Close()
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	took := time.Since(began)
	if *lockFile != "" {
		if err := pkgset.WriteLock(*lockFile, img.Lock); err != nil {
			return fmt.Errorf("image build: %w", err)
		}
	}
	fmt.Printf("key      %s\n", img.Key)
	fmt.Printf("image    %s\n", img.Path)
	fmt.Printf("size     %s\n", mib(img.Size))
	fmt.Printf("kernel   %s\n", img.Kernel)
	fmt.Printf("lock     %s\n", img.LockPath)
	if *lockFile != "" {
		fmt.Printf("         written to %s\n", *lockFile)
	}
	fmt.Printf("built in %.2fs\n", took.Seconds())
	if len(img.Packages) > 0 {
		fmt.Printf("packages %d (%d entries: %d ELF programs, %d shared libraries)\n", len(img.Packages), img.Entries, img.Programs, img.Libraries)
		w := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
		for _, m := range img.Packages {
			why := "requested"
			if !m.Requested {
				why = "via " + strings.Join(m.Via, " > ")
			}
			fmt.Fprintf(w, "  %s\t%s\t%d files\t%s\t%s\n", m.Name, m.Version, m.Files, m.Scope, why)
		}
		w.Flush()
	}
	return nil
}

// debianBuild builds a Debian system's root disk and prints what it is.
func debianBuild(ctx context.Context, d *shakedown.DebianSystem, opts shakedown.ImageOptions, lockFile string, status *statusLine) error {
	began := time.Now()
	status.Start()
	img, err := shakedown.BuildDebian(ctx, shakedown.MachineConfig{Debian: d}, opts)
	status.Close()
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	if lockFile != "" && d.Lock == nil {
		if img.Lock == nil {
			return fmt.Errorf("image build: no lock to write to %s: the packages are not in the host's apt index (another suite?)", lockFile)
		}
		if err := pkgset.WriteLock(lockFile, img.Lock); err != nil {
			return fmt.Errorf("image build: %w", err)
		}
	}
	fmt.Printf("key      %s\n", img.Key)
	fmt.Printf("rootfs   %s\n", img.RootfsKey)
	fmt.Printf("disk     %s\n", img.Path)
	fmt.Printf("size     %s (allocated)\n", mib(img.Size))
	fmt.Printf("kernel   %s\n", img.Kernel)
	if img.LockPath != "" {
		fmt.Printf("lock     %s (%d packages)\n", img.LockPath, len(img.Lock.Packages))
		if lockFile != "" && d.Lock == nil {
			fmt.Printf("         written to %s\n", lockFile)
		}
	}
	fmt.Printf("built in %.2fs\n", time.Since(began).Seconds())
	return nil
}

// imageKinds are the cache kinds that image ls and gc cover: initramfs
// images (with their locks), and the root file system tarballs and disk
// images of Debian machines.
var imageKinds = []string{shakedown.ImageKind, shakedown.DebianRootfsKind, shakedown.DebianDiskKind}

// cachedImage is one image in the cache.
type cachedImage struct {
	kind    string
	key     string
	size    int64     // bytes on disk: Debian disks are sparse
	used    time.Time // mtime: builds touch initramfs and disk images on every cache hit
	request []string
}

func listImages(c *cache.Cache) ([]cachedImage, error) {
	var out []cachedImage
	for _, kind := range imageKinds {
		imgs, err := listKind(c, kind)
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	slices.SortFunc(out, func(a, b cachedImage) int { return b.used.Compare(a.used) })
	return out, nil
}

func listKind(c *cache.Cache, kind string) ([]cachedImage, error) {
	ents, err := os.ReadDir(filepath.Join(c.Root, kind))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []cachedImage
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".removing") || !e.Type().IsRegular() {
			continue // locks dir, temp files and entries being removed
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		img := cachedImage{kind: kind, key: e.Name(), size: fi.Size(), used: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			img.size = st.Blocks * 512
		}
		if kind == shakedown.ImageKind {
			if p, ok := c.Lookup(shakedown.LockKind, e.Name()); ok {
				if l, err := pkgset.ReadLock(p); err == nil {
					img.request = l.Request
				}
			}
		}
		out = append(out, img)
	}
	return out, nil
}

func imageLs(args []string) error {
	flags := flag.NewFlagSet("image ls", flag.ExitOnError)
	cacheDir := flags.String("cache", "", "cache directory (default $SHAKEDOWN_CACHE or the user cache)")
	flags.Parse(args)
	c, err := cache.Open(*cacheDir)
	if err != nil {
		return err
	}
	imgs, err := listImages(c)
	if err != nil {
		return fmt.Errorf("image ls: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tKEY\tSIZE\tUSED\tPACKAGES")
	var total int64
	for _, img := range imgs {
		total += img.size
		pk := strings.Join(img.request, ",")
		if pk == "" {
			pk = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s ago\t%s\n", img.kind, img.key[:min(16, len(img.key))], mib(img.size), age(time.Since(img.used)), pk)
	}
	w.Flush()
	fmt.Printf("%d images, %s in %s\n", len(imgs), mib(total), c.Root)
	return nil
}

func imageGC(args []string) error {
	flags := flag.NewFlagSet("image gc", flag.ExitOnError)
	cacheDir := flags.String("cache", "", "cache directory (default $SHAKEDOWN_CACHE or the user cache)")
	olderThan := flags.String("older-than", "7d", "remove images not used for this long (e.g. 7d, 12h, 0 for all)")
	dryRun := flags.Bool("n", false, "only say what would be removed")
	flags.Parse(args)
	d, err := parseAge(*olderThan)
	if err != nil {
		return fmt.Errorf("image gc: --older-than: %w", err)
	}
	c, err := cache.Open(*cacheDir)
	if err != nil {
		return err
	}
	imgs, err := listImages(c)
	if err != nil {
		return fmt.Errorf("image gc: %w", err)
	}
	var n int
	var freed int64
	for _, img := range imgs {
		if time.Since(img.used) < d {
			continue
		}
		fmt.Printf("remove %s/%s (%s, used %s ago)\n", img.kind, img.key, mib(img.size), age(time.Since(img.used)))
		if *dryRun {
			continue
		}
		if err := c.Remove(img.kind, img.key); err != nil {
			return fmt.Errorf("image gc: %w", err)
		}
		if img.kind == shakedown.ImageKind {
			if err := c.Remove(shakedown.LockKind, img.key); err != nil {
				return fmt.Errorf("image gc: %w", err)
			}
		}
		n++
		freed += img.size
	}
	fmt.Printf("removed %d images, %s freed\n", n, mib(freed))
	return nil
}

// parseAge parses a duration that may also be in days ("7d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a number of days such as 7d, or a Go duration such as 36h", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a number of days such as 7d, or a Go duration such as 36h", s)
	}
	return d, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
