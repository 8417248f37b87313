package webui_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	"github.com/shakedown-dev/shakedown/internal/webui"
	"github.com/shakedown-dev/shakedown/scenario"
)

var updateDocs = flag.Bool("update-docs", false, "write the screenshots the README shows into docs/")

// browserWait bounds each thing the browser is asked to see: a page
// loading under a host busy with VMs takes seconds, not minutes.
const browserWait = 90 * time.Second

// browser starts Debian's chromium, headless, for one test.
func browser(t *testing.T) context.Context {
	path := testenv.NeedChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 800))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel2)
	// The page's own errors fail the test: a script that throws shows
	// nothing, and the waits would only time out.
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			t.Errorf("page script: %s", ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			t.Logf("page console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// see runs browser actions within browserWait, failing the test with what
// it was doing.
func see(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserWait)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var html string
		chromedp.Run(context.WithoutCancel(ctx), chromedp.OuterHTML("main", &html, chromedp.ByQuery))
		t.Fatalf("browser: %s: %v\npage main:\n%s", what, err, short(html, 3000))
	}
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// screenshot saves the page as a test artifact, and into docs/ with
// -update-docs.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	see(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot(&png))
	p := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	if *updateDocs {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGuestBrowser loads the live page of a running testbed in a real browser:
// the index lists it, its page shows its machines, links and partition,
// a machine's page shows a console line that appears after it loaded, and
// the page says "ended" with the result when the testbed ends, and that
// it no longer exists afterwards. Then it opens the report of a scenario
// that fails on purpose, which shows the failing step and the console of
// the failing machine around that moment.
func TestGuestBrowser(t *testing.T) {
	testenv.NeedVM(t)
	ctx := browser(t)
	parent := t.TempDir()
	srv, err := webui.New(webui.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := webui.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	go srv.Serve(sctx, ln)
	base := "http://" + ln.Addr().String()

	var bed string
	t.Run("live", func(t *testing.T) {
		tb := shakedown.New(t, shakedown.Options{OutputDir: parent, QuietConsole: true})
		bed = filepath.Base(tb.OutputDir())
		lan := tb.Network("lan", shakedown.NetworkOptions{Capture: true})
		web := tb.Machine("web", shakedown.MachineConfig{Networks: []string{"lan"}})
		db := tb.Machine("db", shakedown.MachineConfig{Networks: []string{"lan"}})
		lan.Host("api", shakedown.HostOptions{})
		tb.StartAll()
		tb.Partition([]shakedown.Peer{web}, []shakedown.Peer{db})
		web.Fail("ping -c1 -W1 db")

		var listed string
		see(t, ctx, "the index lists the testbed",
			chromedp.Navigate(srv.URL(ln.Addr())),
			chromedp.WaitVisible(`a.bed-link`, chromedp.ByQuery),
			chromedp.Text(`a.bed-link`, &listed, chromedp.ByQuery))
		if listed != bed {
			t.Fatalf("index lists %q, want %q", listed, bed)
		}
		var states, links string
		see(t, ctx, "the testbed's page shows its machines up and the partition",
			chromedp.Click(`a.bed-link`, chromedp.ByQuery),
			chromedp.WaitVisible(`tr[data-machine="web"] .badge.up`, chromedp.ByQuery),
			chromedp.WaitVisible(`tr[data-machine="db"] .badge.up`, chromedp.ByQuery),
			chromedp.WaitVisible(`tr[data-network="lan"] .badge.partitioned`, chromedp.ByQuery),
			chromedp.WaitVisible(`img.topology`, chromedp.ByQuery),
			chromedp.Text(`table.machines`, &states, chromedp.ByQuery),
			chromedp.Text(`table.networks`, &links, chromedp.ByQuery))
		for _, want := range []string{"shakedown ssh " + bed + "/web", "shakedown ssh " + bed + "/db"} {
			if !strings.Contains(states, want) {
				t.Errorf("machines table lacks %q:\n%s", want, states)
			}
		}
		for _, want := range []string{"api (host)", "partition group 1", "partition group 2", "192.168.1.1", "pcap so far"} {
			if !strings.Contains(links, want) {
				t.Errorf("networks table lacks %q:\n%s", want, links)
			}
		}
		var steps string
		see(t, ctx, "the steps", chromedp.Text(`table.steps`, &steps, chromedp.ByQuery))
		for _, want := range []string{"boot", "ping -c1 -W1 db", "network lan: partition"} {
			if !strings.Contains(steps, want) {
				t.Errorf("steps lack %q:\n%s", want, steps)
			}
		}
		screenshot(t, ctx, "web-live.png")

		see(t, ctx, "the link to a machine opens its page with its console",
			chromedp.Click(`tr[data-machine="web"] a.machine-link`, chromedp.ByQuery),
			chromedp.WaitVisible(`#console`, chromedp.ByQuery),
			chromedp.WaitVisible(`h1 .badge.up`, chromedp.ByQuery))
		marker := fmt.Sprintf("live-line-%d", time.Now().UnixNano())
		web.Succeed("echo " + marker + " > /dev/console")
		see(t, ctx, "the console line written after the page loaded",
			chromedp.Poll(fmt.Sprintf(`document.querySelector("#console").textContent.includes(%q)`, marker), nil,
				chromedp.WithPollingTimeout(browserWait)))
		var shot string
		see(t, ctx, "a screenshot taken from the page",
			chromedp.Click(`button.shoot`, chromedp.ByQuery),
			chromedp.WaitVisible(`.shots figure img`, chromedp.ByQuery),
			chromedp.Text(`.shots figcaption`, &shot, chromedp.ByQuery))
		if _, err := os.Stat(filepath.Join(tb.OutputDir(), shot)); !strings.HasPrefix(shot, "web-web-") || err != nil {
			t.Errorf("screenshot %q: %v", shot, err)
		}
		screenshot(t, ctx, "web-machine.png")
	})
	if t.Failed() {
		return
	}

	var ended string
	see(t, ctx, "the open page says the testbed ended, and how",
		chromedp.WaitVisible(`#banner.ended`, chromedp.ByQuery),
		chromedp.Text(`#banner`, &ended, chromedp.ByQuery))
	if !strings.Contains(ended, "ended") || !strings.Contains(ended, "passed") {
		t.Errorf("banner at the end: %q", ended)
	}
	var gone string
	see(t, ctx, "a page of a testbed that no longer exists says so",
		chromedp.Navigate(base+"/t/"+bed+"/"),
		chromedp.WaitVisible(`#banner.gone`, chromedp.ByQuery),
		chromedp.Text(`#banner`, &gone, chromedp.ByQuery))
	if !strings.Contains(gone, "no longer exists") {
		t.Errorf("banner of a gone testbed: %q", gone)
	}

	t.Run("report", func(t *testing.T) {
		star := filepath.Join(t.TempDir(), "fails.star")
		os.WriteFile(star, []byte(`web = machine("web")

def test():
    web.succeed("true")
    def serve():
        web.succeed("echo report-marker-before > /dev/console; echo bad news >&2; exit 3")
    subtest("serve the page", serve)
`), 0o644)
		sc, err := scenario.Load(star)
		if err != nil {
			t.Fatal(err)
		}
		res := sc.Run(scenario.RunOptions{Testbed: shakedown.Options{OutputDir: t.TempDir(), QuietConsole: true}})
		if res.Passed() {
			t.Fatal("the scenario passed; it should fail")
		}
		report := filepath.Join(res.OutputDir, webui.ReportName)
		if _, err := os.Stat(report); err != nil {
			t.Fatalf("no report: %v", err)
		}
		var failure, excerpt, whole string
		see(t, ctx, "the report shows the failing step and the console around it",
			chromedp.Navigate("file://"+report),
			chromedp.WaitVisible(`#failure`, chromedp.ByQuery),
			chromedp.Text(`#failure`, &failure, chromedp.ByQuery),
			chromedp.Text(`#failure pre.excerpt`, &excerpt, chromedp.ByQuery))
		for _, want := range []string{"subtest: serve the page", "exit 3", "status 3", "bad news"} {
			if !strings.Contains(failure, want) {
				t.Errorf("failure box lacks %q:\n%s", want, failure)
			}
		}
		if !strings.Contains(excerpt, "report-marker-before") {
			t.Errorf("console excerpt lacks the line printed just before the failure:\n%s", excerpt)
		}
		screenshot(t, ctx, "web-report.png")
		see(t, ctx, "the report's link to a machine leads to its whole console",
			chromedp.Click(`tr[data-machine="web"] a.machine-link`, chromedp.ByQuery),
			chromedp.WaitVisible(`#machine-web pre.console`, chromedp.ByQuery),
			chromedp.Text(`#machine-web pre.console`, &whole, chromedp.ByQuery))
		if !strings.Contains(whole, "report-marker-before") || !strings.Contains(whole, "Linux version") {
			t.Errorf("machine section's console is not the whole console:\n%s", short(whole, 2000))
		}
	})
}
