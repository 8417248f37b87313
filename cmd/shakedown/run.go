package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/webui"
	"github.com/shakedown-dev/shakedown/scenario"
)

const runUsage = `usage: shakedown run [flags] FILE.star...

Runs each scenario file in a testbed of its own, one after the other, and
exits with status 0 only when every one passed. Files are loaded first, so
a syntax error, an unknown verb or a missing host file fails at once,
before anything boots. Flags may come before or after the files.

Output is nested, timed sections, one per scenario, subtest and step, in
colour on a terminal, where a live line at the bottom also says what is
being downloaded, built or booted. With CI=true it is quiet: one line per
scenario, and the full log of the scenarios that failed. -v streams
machine consoles.

flags:
`

// runCmd is `shakedown run`.
func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	junit := fs.String("junit", "", "write a JUnit XML report to `FILE`: a testsuite per scenario,\na testcase for its top level and one per subtest")
	out := fs.String("out", "", "make each scenario's artifacts directory under `DIR` (default\n$SHAKEDOWN_OUTPUT, else $TMPDIR/shakedown); it is kept when the\nscenario fails; copy_from_vm copies and screenshots go to\nDIR/NAME, kept always")
	timeout := fs.Duration("timeout", shakedown.DefaultTimeout, "global deadline of each scenario")
	shard := fs.String("shard", "", "run only shard `K/N` of the files: sorted by path, the i-th\n(from 0) goes to shard i%N+1, so N runners with K=1..N cover\nevery file exactly once")
	list := fs.Bool("list", false, "print the scenarios and their machines; boot nothing")
	verbose := fs.Bool("v", false, "stream machine consoles, and print the full log in CI too")
	interact := fs.Bool("interactive", false, "boot the machines of the one scenario given and read Starlark\nfrom the terminal with them bound, instead of running its test")
	var keep bool
	fs.BoolVar(&keep, "keep", false, "keep machines up after a scenario ends, passed or failed, until\nEnter or Ctrl-C (shakedown ssh reaches them meanwhile), and keep its\nartifacts directory, report.html with it")
	fs.BoolVar(&keep, "k", false, "short for --keep")
	web := fs.Bool("web", false, "serve a live page of this run on loopback (shakedown web shows\nevery run); its address is printed first")
	webAddr := fs.String("web-addr", "127.0.0.1:0", "where --web listens: a loopback `HOST:PORT`")
	files := parseInterleaved(fs, args)
	if len(files) == 0 {
		fs.Usage()
		os.Exit(2)
	}
	if *shard != "" {
		k, n, err := scenario.ParseShard(*shard)
		if err != nil {
			return err
		}
		given := len(files)
		if files = scenario.Shard(files, k, n); len(files) == 0 {
			fmt.Fprintf(os.Stderr, "shakedown: shard %s has no scenarios (%d given)\n", *shard, given)
			return nil
		}
	}
	if *list {
		return listScenarios(os.Stdout, files)
	}
	if *web {
		stop, err := startWeb(os.Stdout, *webAddr, *out)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *interact {
		if len(files) != 1 {
			return fmt.Errorf("--interactive takes one scenario, got %d", len(files))
		}
		opts := scenario.RunOptions{
			Testbed: shakedown.Options{Timeout: *timeout, OutputDir: *out, QuietConsole: !*verbose},
		}
		if keep {
			opts.Hold = hold
		}
		return interactive(files[0], opts, isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "")
	}

	ci := os.Getenv("CI") == "true"
	quiet := ci && !*verbose
	color := !ci && isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == ""
	// On a terminal a live line at the bottom says what is being built
	// or booted; the logs write through it so that it stays below them.
	status := newStatusLine(os.Stdout, color)
	status.Start()
	defer status.Close()
	summary := &scenario.Log{W: status, Color: color}

	// Load everything before booting anything: a broken file in the list
	// is reported in seconds, not after the scenarios before it ran.
	loaded := make([]*scenario.Scenario, len(files))
	var results []*scenario.Result
	for i, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			res := scenario.Failed(f, err)
			results = append(results, res)
			summary.Verdict(false, "%s (not loaded)", f)
			summary.Printf("  %v", err)
			continue
		}
		loaded[i] = sc
	}
	for i, sc := range loaded {
		if sc == nil {
			continue
		}
		var buf bytes.Buffer
		log := &scenario.Log{W: status, Color: color, Steps: true}
		if quiet {
			log = &scenario.Log{W: &buf, Steps: true}
		}
		opts := scenario.RunOptions{
			Testbed: shakedown.Options{Timeout: *timeout, OutputDir: *out, QuietConsole: !*verbose,
				Progress: status.Progress(), KeepOutput: keep},
			Log: log,
		}
		if *out != "" {
			opts.KeepDir = filepath.Join(*out, keepName(files[i]))
		}
		if keep {
			opts.Hold = hold
		}
		res := sc.Run(opts)
		results = append(results, res)
		if quiet && !res.Passed() {
			status.Write(buf.Bytes())
		}
		summary.Verdict(res.Passed(), "%s (%.1f s)", res.Path, res.Duration.Seconds())
		if !res.Passed() {
			summary.Printf("  %s", res.Summary())
			if res.OutputDir != "" {
				summary.Printf("  artifacts kept in %s", res.OutputDir)
				summary.Printf("  report: %s", filepath.Join(res.OutputDir, webui.ReportName))
			}
		}
	}

	status.Close()
	if *junit != "" {
		if err := writeJUnit(*junit, results); err != nil {
			return err
		}
	}
	return verdict(results)
}

// parseInterleaved parses flags wherever they are among the files, since
// `shakedown run a.star --junit r.xml` is how people type it.
func parseInterleaved(fs *flag.FlagSet, args []string) []string {
	var files []string
	for {
		fs.Parse(args)
		args = fs.Args()
		if len(args) == 0 {
			return files
		}
		files = append(files, args[0])
		args = args[1:]
	}
}

// listScenarios prints each scenario with its machines; it fails if any
// does not load.
func listScenarios(w io.Writer, files []string) error {
	bad := 0
	for _, f := range files {
		sc, err := scenario.Load(f)
		if err != nil {
			bad++
			fmt.Fprintf(w, "%s\n  not loaded: %v\n", f, err)
			continue
		}
		var how []string
		if sc.TopLevelSteps {
			how = append(how, "top-level steps")
		}
		if sc.HasTest {
			how = append(how, "test()")
		}
		fmt.Fprintf(w, "%s (%s)\n", f, strings.Join(how, ", "))
		for _, m := range sc.Machines {
			fmt.Fprintf(w, "  %-16s %s\n", m.Name, m.Describe())
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d scenarios do not load", bad, len(files))
	}
	return nil
}

func writeJUnit(path string, results []*scenario.Result) error {
	var b bytes.Buffer
	if err := scenario.WriteJUnit(&b, results); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	return nil
}

// verdict is nil when every scenario passed.
func verdict(results []*scenario.Result) error {
	var failed []string
	var took time.Duration
	for _, r := range results {
		took += r.Duration
		if !r.Passed() {
			failed = append(failed, r.Path)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d scenarios failed: %s", len(failed), len(results), strings.Join(failed, " "))
	}
	if len(results) > 1 {
		fmt.Printf("all %d scenarios passed (%.1f s)\n", len(results), took.Seconds())
	}
	return nil
}

// keepName is the directory under --out for a scenario's kept files: its
// path without the extension, flattened, so that a/x.star and b/x.star
// differ.
func keepName(path string) string {
	p := strings.TrimSuffix(filepath.ToSlash(filepath.Clean(path)), ".star")
	p = strings.ReplaceAll(strings.ReplaceAll(p, "../", ""), "/", "_")
	return strings.Trim(p, "._")
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
