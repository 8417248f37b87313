package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/busybox"
	"github.com/shakedown-dev/shakedown/image/cache"
	"github.com/shakedown-dev/shakedown/image/deb"
	"github.com/shakedown-dev/shakedown/image/debian"
	"github.com/shakedown-dev/shakedown/image/kernel"
	"github.com/shakedown-dev/shakedown/image/pkgset"
	"github.com/shakedown-dev/shakedown/internal/agentbuild"
	"github.com/shakedown-dev/shakedown/internal/snapshot"
)

const imageUsage = `usage: shakedown image <command> [flags]

commands:
  build [--packages a,b] [--lock FILE]   build a machine's initramfs, print its key, size and contents
                                         (on a terminal, a live line shows downloads and build steps)
  build --debian [--suite S] [--mirror URL] [--packages a,b] [--lock FILE]
                                         build a full Debian system's root disk (mmdebstrap, root);
                                         with a lock, from exactly the locked .debs, byte for byte
  ls [--kind K]                          list the cache: images, their locks, Debian disks and root
                                         file systems, kernels, .debs, ... with sizes on disk, last
                                         use and what each is
  gc [--older-than 7d] [-n]              remove cache entries of every kind not used for that long
                                         (every build marks what it uses; a Debian disk is
                                         self-contained: removing its rootfs only costs a rebuild
                                         when a new disk needs it)
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

// kindOrder is the order in which image ls shows the cache's kinds: what
// machines boot first, then what it is made from. Kinds not listed here
// follow, by name.
var kindOrder = []string{
	snapshot.Kind, shakedown.ImageKind, shakedown.LockKind,
	debian.DiskKind, debian.RootfsKind, debian.LockKind,
	kernel.CacheKind, busybox.CacheKind, agentbuild.CacheKind, pkgset.TreeKind, deb.CacheKind,
}

func kindRank(kind string) int {
	if i := slices.Index(kindOrder, kind); i >= 0 {
		return i
	}
	return len(kindOrder)
}

// sortForListing orders entries by kind (see kindOrder), then the most
// recently used first.
func sortForListing(es []cache.Entry) {
	slices.SortStableFunc(es, func(a, b cache.Entry) int {
		if c := kindRank(a.Kind) - kindRank(b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return b.Used.Compare(a.Used)
	})
}

// describer says what cache entries are, for image ls: the packages of an
// image or a root file system from the lock kept beside it, what a lock
// is the lock of, and the file a kernel or .deb entry holds. It reads
// entries by their listed paths, which is not a use.
type describer struct {
	locks map[string]*pkgset.Lock // "kind/key" of lock entries
}

func newDescriber(es []cache.Entry) describer {
	d := describer{locks: map[string]*pkgset.Lock{}}
	for _, e := range es {
		if e.Kind != shakedown.LockKind && e.Kind != debian.LockKind {
			continue
		}
		if l, err := pkgset.ReadLock(e.Path); err == nil {
			d.locks[e.Kind+"/"+e.Key] = l
		}
	}
	return d
}

// lockSummary is "curl,jq (32 packages)" for a lock.
func lockSummary(l *pkgset.Lock) string {
	req := strings.Join(l.Request, ",")
	if req == "" {
		req = "no packages requested"
	}
	return fmt.Sprintf("%s (%d packages)", req, len(l.Packages))
}

func (d describer) describe(e cache.Entry) string {
	switch e.Kind {
	case shakedown.ImageKind:
		if l := d.locks[shakedown.LockKind+"/"+e.Key]; l != nil {
			return "initramfs: " + lockSummary(l)
		}
		return "initramfs without packages (a Debian machine's, or its lock is gone)"
	case shakedown.LockKind:
		return d.describeLock(e, "initramfs")
	case debian.DiskKind:
		return "Debian root disk (self-contained)"
	case debian.RootfsKind:
		if l := d.locks[debian.LockKind+"/"+e.Key]; l != nil {
			return "Debian root file system: " + lockSummary(l)
		}
		return "Debian root file system"
	case debian.LockKind:
		return d.describeLock(e, debian.RootfsKind)
	case kernel.CacheKind:
		if v := firstName(filepath.Join(e.Path, "boot"), "vmlinuz-"); v != "" {
			return "kernel " + strings.TrimPrefix(v, "vmlinuz-")
		}
		return "kernel"
	case busybox.CacheKind:
		return "bin/busybox of " + busybox.Package
	case agentbuild.CacheKind:
		return "guest agent binary (cmd/shakedown-agent)"
	case pkgset.TreeKind:
		return "unpacked .deb"
	case snapshot.Kind:
		return describeCheckpoint(e.Path)
	case deb.CacheKind:
		if n := firstName(e.Path, ""); strings.HasSuffix(n, ".deb") {
			return n
		}
		return ".deb"
	}
	return "-"
}

// describeCheckpoint is "checkpoint ready: machines a, b (2 running)".
func describeCheckpoint(dir string) string {
	m, err := snapshot.Read(dir)
	if err != nil {
		return "checkpoint (unusable: the next Checkpoint sets up cold)"
	}
	var names []string
	running := 0
	for _, mc := range m.Machines {
		names = append(names, mc.Name)
		if mc.Running {
			running++
		}
	}
	return fmt.Sprintf("checkpoint %s: machines %s (%d running)", m.Name, strings.Join(names, ", "), running)
}

// firstName is the first name in dir with the prefix, or "".
func firstName(dir, prefix string) string {
	ents, _ := os.ReadDir(dir) // a description, not worth an error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			return e.Name()
		}
	}
	return ""
}

// describeLock describes a lock entry, which is keyed like the entry of
// kind it pins.
func (d describer) describeLock(e cache.Entry, of string) string {
	if l := d.locks[e.Kind+"/"+e.Key]; l != nil {
		return "lock of " + of + " " + shortKey(e.Key) + ": " + lockSummary(l)
	}
	return "lock of " + of + " " + shortKey(e.Key) + " (unreadable)"
}

func shortKey(k string) string { return k[:min(len(k), 12)] }

func imageLs(args []string) error {
	flags := flag.NewFlagSet("image ls", flag.ExitOnError)
	cacheDir := flags.String("cache", "", "cache directory (default $SHAKEDOWN_CACHE or the user cache)")
	kind := flags.String("kind", "", "list only this kind (e.g. initramfs, debian-rootfs, deb)")
	flags.Parse(args)
	c, err := cache.Open(*cacheDir)
	if err != nil {
		return err
	}
	if err := listCache(os.Stdout, c, *kind, time.Now()); err != nil {
		return fmt.Errorf("image ls: %w", err)
	}
	return nil
}

// listCache writes the table of image ls: the entries of kind, or of every
// kind for "", with ages as of now.
func listCache(w io.Writer, c *cache.Cache, kind string, now time.Time) error {
	es, err := c.Entries()
	if err != nil {
		return err
	}
	d := newDescriber(es)
	if kind != "" {
		es = slices.DeleteFunc(es, func(e cache.Entry) bool { return e.Kind != kind })
	}
	sortForListing(es)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tKEY\tSIZE\tUSED\tWHAT")
	var total int64
	for _, e := range es {
		total += e.Size
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", e.Kind, e.Key[:min(16, len(e.Key))], onDisk(e.Size), age(now.Sub(e.Used)), d.describe(e))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d entries, %s in %s\n", len(es), onDisk(total), c.Root)
	return nil
}

func imageGC(args []string) error {
	flags := flag.NewFlagSet("image gc", flag.ExitOnError)
	cacheDir := flags.String("cache", "", "cache directory (default $SHAKEDOWN_CACHE or the user cache)")
	olderThan := flags.String("older-than", "7d", "remove entries not used for this long (e.g. 7d, 12h; 0 removes everything, also what running tests are about to use)")
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
	if err := collectCache(os.Stdout, c, d, *dryRun, time.Now()); err != nil {
		return fmt.Errorf("image gc: %w", err)
	}
	return nil
}

// collectCache removes the entries of every kind not used in the span d
// before now (with dryRun, only says which) and writes what it does.
func collectCache(w io.Writer, c *cache.Cache, d time.Duration, dryRun bool, now time.Time) error {
	cutoff := now.Add(-d)
	var gone []cache.Entry
	var err error
	if dryRun {
		gone, err = c.Entries()
		gone = slices.DeleteFunc(gone, func(e cache.Entry) bool { return !e.Used.Before(cutoff) })
	} else {
		// Entries that fail to go are in err; the others are gone.
		gone, err = c.Collect(cutoff)
	}
	var freed int64
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, e := range gone {
		freed += e.Size
		if e.Leftover {
			fmt.Fprintf(w, "%s %s (%s, left half done by a process that died)\n", verb, e.Path, onDisk(e.Size))
			continue
		}
		fmt.Fprintf(w, "%s %s/%s (%s, used %s ago)\n", verb, e.Kind, e.Key, onDisk(e.Size), age(now.Sub(e.Used)))
	}
	fmt.Fprintf(w, "%s %d entries, %s\n", verb, len(gone), onDisk(freed))
	return err
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

// onDisk is a size on disk as image ls and gc show it: in KiB below a MiB,
// where locks and small entries are, so that they do not read 0.0 MiB.
func onDisk(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return mib(n)
}

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
