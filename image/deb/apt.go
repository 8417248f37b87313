package deb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shakedown-dev/shakedown/internal/suggest"
)

// Apt is the Source backed by the host's apt configuration: its sources,
// pinning and proxy settings decide what a name resolves to, exactly as for
// `apt-get install`. It runs apt-cache and apt-get download, which need no
// root, but it does need package lists (`apt-get update`). The zero value is
// ready to use.
type Apt struct {
	// Timeout bounds one Download, apt's own retries included: past it
	// apt-get is stopped and the error names the mirror and this limit.
	// Zero means DefaultDownloadTimeout. A sooner deadline on the context
	// still wins.
	Timeout time.Duration
}

// DefaultDownloadTimeout bounds a Download when Apt.Timeout is zero. apt
// itself reports a mirror that accepts connections but never answers after
// about four minutes (two waits of Acquire::http::Timeout, 30 s, on each of
// 1+Acquire::Retries tries), so this is only the backstop for what apt does
// not time out; it fits the largest .deb a test needs, a linux-image of
// about 70 MB, at 1 Mbit/s.
const DefaultDownloadTimeout = 15 * time.Minute

// printURIsTimeout bounds the `apt-get download --print-uris` run that
// names the mirror after a download ran out of time: it reads local lists
// only, about half a second without a pkgcache.bin.
const printURIsTimeout = 30 * time.Second

// aptWaitDelay is how long runApt waits for apt's output pipes to close
// after it has killed apt's process group: a method that escaped the group
// must not make a cancelled download hang.
const aptWaitDelay = 5 * time.Second

// Resolve returns the candidate version of name as `apt-cache policy` shows
// it, or the exact version when name is "name=version". An unknown name or
// version is ErrUnknownPackage, with the closest names or the available
// versions in the message.
//
// Results are remembered for the life of the process until apt's package
// lists or dpkg's status change: without a pkgcache.bin (as in Debian's
// container images) every apt-cache run parses all lists, about half a
// second, and tests resolve the same kernel again and again.
func (Apt) Resolve(ctx context.Context, name string) (Package, error) {
	pkg, ver, exact := strings.Cut(name, "=")
	if !validName(pkg) || exact && !validVersion(ver) {
		return Package{}, fmt.Errorf("resolve %q: %w: not a Debian package name or name=version", name, ErrUnknownPackage)
	}
	key := os.Getenv("APT_CONFIG") + "\x00" + name
	stamp := aptStamp(ctx)
	if v, ok := resolved.Load(key); ok && v.(resolution).stamp == stamp {
		return v.(resolution).pkg, nil
	}
	p, err := resolve(ctx, name, pkg, ver, exact)
	if err == nil {
		resolved.Store(key, resolution{p, stamp})
	}
	return p, err
}

// resolved remembers successful resolutions: key -> resolution.
var resolved sync.Map

type resolution struct {
	pkg   Package
	stamp string
}

// listsDirs remembers apt's lists directory per APT_CONFIG value.
var listsDirs sync.Map

// aptStamp returns a string that changes when apt's view of the archive
// can have changed: `apt-get update` replaces files in the lists directory
// (changing its mtime) and installing packages rewrites dpkg's status file.
func aptStamp(ctx context.Context) string {
	conf := os.Getenv("APT_CONFIG")
	dir, ok := listsDirs.Load(conf)
	if !ok {
		dir = listsDir(ctx)
		listsDirs.Store(conf, dir)
	}
	var stamp strings.Builder
	for _, p := range []string{dir.(string), "/var/lib/dpkg/status"} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&stamp, "%d/", fi.ModTime().UnixNano())
		}
	}
	return stamp.String()
}

func resolve(ctx context.Context, name, pkg, ver string, exact bool) (Package, error) {
	out, stderr, err := runApt(ctx, "", "apt-cache", "show", "--no-all-versions", name)
	if err != nil {
		if errors.Is(err, ErrNoApt) {
			return Package{}, fmt.Errorf("resolve %s: %w", name, err)
		}
		if strings.Contains(stderr, "No packages found") || strings.Contains(stderr, "Unable to locate") {
			return Package{}, notFound(ctx, pkg)
		}
		return Package{}, fmt.Errorf("resolve %s: apt-cache show: %w: %s", name, err, lastLines(stderr, 3))
	}
	if len(bytes.TrimSpace(out)) == 0 {
		// apt-cache prints nothing, successfully, for a version it does not
		// know and for a virtual package that has no candidate of its own.
		if exact {
			return Package{}, unknownVersion(ctx, pkg, ver)
		}
		return Package{}, virtual(ctx, pkg)
	}
	p, err := parseStanza(bytes.NewReader(out))
	if err != nil {
		return Package{}, fmt.Errorf("resolve %s: %w", name, err)
	}
	if p.Filename == "" || p.SHA256 == "" {
		if !haveLists(ctx) {
			return Package{}, fmt.Errorf("resolve %s: %w: run `apt-get update` as root", name, ErrNoPackageLists)
		}
		return Package{}, fmt.Errorf("resolve %s: version %s is in no archive's package list (installed locally?): run `apt-get update`, or pick a version that `apt-cache policy %s` lists", name, p.Version, pkg)
	}
	return p, nil
}

// Download runs `apt-get download name=version` in dstDir and returns the
// path of the .deb it wrote. It does not verify the hash; Fetch does.
//
// A mirror that cannot be reached (connection refused, a name that does not
// resolve, no answer within apt's timeouts or within a.Timeout) is
// ErrMirrorUnreachable, with the mirror's URL and what to check in the
// message.
func (a Apt) Download(ctx context.Context, p Package, dstDir string) (string, error) {
	if !validName(p.Name) || !validVersion(p.Version) {
		return "", fmt.Errorf("download %s: not a Debian package name and version", p)
	}
	args := []string{"download", "-q"}
	if os.Geteuid() == 0 {
		// As root apt drops privileges to _apt, which cannot write to a
		// private temp dir; it then falls back with a warning. Skip the dance.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	args = append(args, p.String())
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultDownloadTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	_, stderr, err := runApt(dctx, dstDir, "apt-get", args...)
	if err != nil {
		switch {
		case errors.Is(err, ErrNoApt):
			return "", fmt.Errorf("download %s: %w", p, err)
		case errors.Is(ctx.Err(), context.Canceled):
			return "", fmt.Errorf("download %s: %w", p, ctx.Err())
		case ctx.Err() != nil:
			// The caller's deadline, e.g. the testbed's: say what it cut short.
			return "", fmt.Errorf("download %s: no complete .deb from mirror %s in the %v before the context's deadline: %w",
				p, mirrorURL(ctx, p), time.Since(start).Round(time.Second), ctx.Err())
		case dctx.Err() != nil:
			return "", fmt.Errorf("download %s: %w: %s: no complete .deb within %v (deb.Apt.Timeout), so apt-get was stopped (%w); if the link is only slow, raise Apt.Timeout; else %s",
				p, ErrMirrorUnreachable, mirrorURL(ctx, p), timeout, dctx.Err(), unreachableHelp)
		}
		if url, reason, ok := failedFetch(stderr); ok && unreachable(reason) {
			if timedOut(reason) {
				reason += " (apt gave up after Acquire::http::Timeout, 30 s unless set, on each of 1+Acquire::Retries tries)"
			}
			return "", fmt.Errorf("download %s: %w: %s: %s; %s", p, ErrMirrorUnreachable, mirrorBase(url, p), reason, unreachableHelp)
		}
		return "", fmt.Errorf("download %s: apt-get download: %w: %s (if the mirror no longer has this version, run `apt-get update`)", p, err, lastLines(stderr, 3))
	}
	return findDeb(dstDir, p.Name)
}

// unreachableHelp is the advice for a mirror that cannot be reached.
const unreachableHelp = "check the network and any proxy (http_proxy, Acquire::http::Proxy), and the mirror in apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d/); .debs already in the shakedown cache need no mirror, so a locked build (ImageOptions.Lock) whose packages are all cached works offline"

// unreachablePhrases are what apt's http and https methods say (in the C
// locale) when no answer came from the mirror or the proxy in between, as
// opposed to an answer that was wrong (404, a hash mismatch).
var unreachablePhrases = []string{
	"Could not connect to",                // refused, no route, network down, connect timeout
	"Unable to connect to",                // other connect(2) failures
	"Could not resolve '",                 // no such name
	"Temporary failure resolving",         // no DNS server answers
	"Something wicked happened resolving", // other resolver errors
	"System error resolving",
	"Connection failed", // connected, then no answer within Acquire::http::Timeout, twice
	"Connection timed out",
	"Timed out while waiting", // to or from a proxy
	"SOCKS proxy",
}

// unreachable reports whether apt's reason for a failed fetch means the
// mirror (or the proxy) could not be reached.
func unreachable(reason string) bool {
	for _, ph := range unreachablePhrases {
		if strings.Contains(reason, ph) {
			return true
		}
	}
	return false
}

// timedOut reports whether apt's reason is one of its own timeouts, so that
// the error can say which settings bound the wait.
func timedOut(reason string) bool {
	return strings.Contains(reason, "timed out") || strings.Contains(reason, "Timed out") || strings.Contains(reason, "Connection failed")
}

// failedFetch returns the URL and apt's reason from the first line of apt's
// stderr shaped "E: Failed to fetch URL  reason".
func failedFetch(stderr string) (url, reason string, ok bool) {
	for line := range strings.SplitSeq(stderr, "\n") {
		rest, found := strings.CutPrefix(strings.TrimSpace(line), "E: Failed to fetch ")
		if !found {
			continue
		}
		url, reason, _ = strings.Cut(rest, " ")
		return url, strings.TrimSpace(reason), url != ""
	}
	return "", "", false
}

// mirrorBase returns the archive root in url, the URL of p's file: what a
// sources.list line names, e.g. http://deb.debian.org/debian.
func mirrorBase(url string, p Package) string {
	if p.Filename != "" {
		if base, ok := strings.CutSuffix(url, "/"+p.Filename); ok {
			return base
		}
	}
	if i := strings.Index(url, "/pool/"); i > 0 {
		return url[:i]
	}
	return url
}

// mirrorURL asks apt, without touching the network, which mirror serves p
// (its archive root, as mirrorBase returns it), for an error about a
// download that ran out of time and so left no message of apt's to read the
// URL from. ctx may be past its deadline.
func mirrorURL(ctx context.Context, p Package) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), printURIsTimeout)
	defer cancel()
	out, _, err := runApt(ctx, "", "apt-get", "download", "--print-uris", p.String())
	if err == nil {
		// Output is 'URL' file size hash.
		if f := strings.Fields(string(out)); len(f) > 0 {
			return mirrorBase(strings.Trim(f[0], "'"), p)
		}
	}
	return "(`apt-cache policy " + p.Name + "` names it)"
}

// findDeb returns the one .deb of package name in dir. apt names the file
// name_version_arch.deb with the epoch's colon escaped, so match loosely.
func findDeb(dir, name string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("find .deb of %s: %w", name, err)
	}
	var found []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, name+"_") && strings.HasSuffix(n, ".deb") {
			found = append(found, filepath.Join(dir, n))
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("find .deb of %s in %s: got %d files, want 1", name, dir, len(found))
	}
	return found[0], nil
}

// runApt runs an apt tool in the C locale, so that messages can be matched,
// and returns its stdout and stderr. When ctx ends the tool's whole process
// group is killed: apt-get's download methods are children that would
// otherwise keep waiting on the network, and keep stderr open.
func runApt(ctx context.Context, dir, tool string, args ...string) ([]byte, string, error) {
	path, err := exec.LookPath(tool)
	if err != nil {
		return nil, "", fmt.Errorf("%w: no %s in PATH: this needs a Debian host, or another deb.Source such as a configured mirror", ErrNoApt, tool)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "LANGUAGE=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = aptWaitDelay
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return stdout.Bytes(), stderr.String(), err
}

// notFound builds the error for a name apt does not know: either apt has no
// lists at all, or the name is misspelt.
func notFound(ctx context.Context, pkg string) error {
	if !haveLists(ctx) {
		return fmt.Errorf("resolve %s: %w: run `apt-get update` as root", pkg, ErrNoPackageLists)
	}
	out, _, err := runApt(ctx, "", "apt-cache", "pkgnames")
	var names []string
	if err == nil {
		names = strings.Fields(string(out))
	}
	if near := closest(pkg, names, 5); len(near) > 0 {
		return fmt.Errorf("resolve %s: %w; did you mean %s?", pkg, ErrUnknownPackage, strings.Join(near, ", "))
	}
	return fmt.Errorf("resolve %s: %w: check the name with `apt-cache search %s`, or add the archive that has it to apt's sources and run `apt-get update`", pkg, ErrUnknownPackage, pkg)
}

// unknownVersion builds the error for name=version where the version is not
// in any list, naming the versions that are.
func unknownVersion(ctx context.Context, pkg, ver string) error {
	out, _, err := runApt(ctx, "", "apt-cache", "show", pkg)
	var versions []string
	if err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "Version: "); ok && !slices.Contains(versions, v) {
				versions = append(versions, v)
			}
		}
	}
	if len(versions) == 0 {
		return notFound(ctx, pkg)
	}
	return fmt.Errorf("resolve %s=%s: %w: no such version; apt has %s", pkg, ver, ErrUnknownPackage, strings.Join(versions, ", "))
}

// virtual builds the error for a name that only other packages provide.
func virtual(ctx context.Context, pkg string) error {
	out, _, _ := runApt(ctx, "", "apt-cache", "showpkg", pkg)
	providers := parseReverseProvides(string(out))
	if len(providers) == 0 {
		return fmt.Errorf("resolve %s: %w: it has no installable version (`apt-cache policy %s` says why)", pkg, ErrUnknownPackage, pkg)
	}
	return &VirtualError{Name: pkg, Providers: providers}
}

// VirtualError is the error for a name that only other packages provide
// (a virtual package), with those that do. It wraps ErrUnknownPackage.
// pkgset takes the one provider of a dependency, as apt does.
type VirtualError struct {
	Name      string
	Providers []string
}

func (e *VirtualError) Error() string {
	return fmt.Sprintf("resolve %s: %v: it is a virtual package; name one that provides it: %s", e.Name, ErrUnknownPackage, strings.Join(e.Providers, ", "))
}

func (e *VirtualError) Unwrap() error { return ErrUnknownPackage }

// parseReverseProvides returns the package names listed under "Reverse
// Provides:" in `apt-cache showpkg` output.
func parseReverseProvides(out string) []string {
	var names []string
	_, rest, ok := strings.Cut(out, "Reverse Provides:")
	if !ok {
		return nil
	}
	for line := range strings.SplitSeq(rest, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.HasSuffix(f[0], ":") { // next section
			break
		}
		if !slices.Contains(names, f[0]) {
			names = append(names, f[0])
		}
	}
	return names
}

// haveLists reports whether apt has downloaded any Packages index. A
// fresh host (or container) has only dpkg's status file, which makes
// installed packages look known but gives them no archive file.
func haveLists(ctx context.Context) bool {
	m, _ := filepath.Glob(filepath.Join(listsDir(ctx), "*_Packages*"))
	return len(m) > 0
}

// listsDir returns apt's Dir::State::lists.
func listsDir(ctx context.Context) string {
	dir := "/var/lib/apt/lists/"
	if out, _, err := runApt(ctx, "", "apt-config", "shell", "D", "Dir::State::lists/d"); err == nil {
		// Output is D='/var/lib/apt/lists/'.
		if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), "="); ok {
			if v = strings.Trim(v, "'\""); v != "" {
				dir = v
			}
		}
	}
	return dir
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// validName reports whether s is a Debian package name (policy 5.6.1),
// optionally with an :arch qualifier. Checking keeps arbitrary strings,
// such as ones starting with '-', away from apt's command line.
func validName(s string) bool {
	name, arch, hasArch := strings.Cut(s, ":")
	if len(name) < 2 || !isLowerAlnum(name[0]) || hasArch && arch == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !isLowerAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	for i := range len(arch) {
		if !isLowerAlnum(arch[i]) && arch[i] != '-' {
			return false
		}
	}
	return true
}

// validVersion reports whether s is a Debian version string (policy 5.6.12).
func validVersion(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !isLowerAlnum(c) && !(c >= 'A' && c <= 'Z') && !strings.ContainsRune(".+-~:", rune(c)) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// closest returns up to n names from names that are most likely what the
// user meant by want: names containing it first (shortest first), then
// names within a small edit distance.
func closest(want string, names []string, n int) []string {
	type cand struct {
		name string
		rank int
	}
	var cands []cand
	maxDist := max(1, len(want)/3)
	for _, name := range names {
		switch {
		case name == want:
			continue
		case strings.Contains(name, want):
			cands = append(cands, cand{name, len(name) - len(want)})
		case abs(len(name)-len(want)) <= maxDist:
			if d := suggest.Distance(want, name); d <= maxDist {
				// Typos rank before long names that merely contain want.
				cands = append(cands, cand{name, d - 100})
			}
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.name, b.name)
	})
	var out []string
	for _, c := range cands {
		if len(out) == n {
			break
		}
		if !slices.Contains(out, c.name) {
			out = append(out, c.name)
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Prefetch resolves many bare names with one apt-cache run (each run parses
// all package lists, about half a second without a pkgcache.bin) and
// remembers the results for Resolve. Names apt does not know, virtual ones
// and invalid ones are left for Resolve to report.
func (Apt) Prefetch(ctx context.Context, names []string) {
	var want []string
	for _, n := range names {
		if validName(n) && !strings.Contains(n, "=") {
			want = append(want, n)
		}
	}
	if len(want) == 0 {
		return
	}
	stamp := aptStamp(ctx)
	conf := os.Getenv("APT_CONFIG")
	// apt-cache exits non-zero when any name is unknown but still prints
	// the others, so the output is used whatever the status.
	out, _, _ := runApt(ctx, "", "apt-cache", append([]string{"show", "--no-all-versions"}, want...)...)
	seen := map[string]bool{}
	for para := range strings.SplitSeq(string(out), "\n\n") {
		if strings.TrimSpace(para) == "" {
			continue
		}
		p, err := parseStanza(strings.NewReader(para))
		if err != nil || p.Filename == "" || p.SHA256 == "" || !slices.Contains(want, p.Name) || seen[p.Name] {
			continue
		}
		// The first stanza of a name is what Resolve would take.
		seen[p.Name] = true
		resolved.Store(conf+"\x00"+p.Name, resolution{p, stamp})
	}
}
