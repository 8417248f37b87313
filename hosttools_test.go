package shakedown_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown"
)

// TestHostTools checks that scripts/setup-debian.sh installs the package of
// every host tool, and, in CI (which ran it), that each tool is found.
func TestHostTools(t *testing.T) {
	script, err := os.ReadFile("scripts/setup-debian.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^pkgs=\(([^)]*)\)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("scripts/setup-debian.sh: no pkgs=(...) line")
	}
	pkgs := strings.Fields(string(m[1]))
	for _, tool := range shakedown.HostTools() {
		if !slices.Contains(pkgs, tool.Package) {
			t.Errorf("%s: setup-debian.sh does not install %s (it installs %v)", tool.Name, tool.Package, pkgs)
		}
		path, err := tool.Find()
		switch {
		case err == nil:
			t.Logf("%s: %s", tool.Name, path)
		case os.Getenv("CI") == "true":
			t.Errorf("%s: %v", tool.Name, err)
		default:
			t.Logf("%s: %v (needed for %s)", tool.Name, err, tool.Need)
		}
	}
	// The error names the package to install.
	missing := shakedown.HostTool{Name: "shakedown-no-such-tool", Package: "shakedown-no-such-package"}
	if _, err := missing.Find(); err == nil || !strings.Contains(err.Error(), "apt-get install shakedown-no-such-package") {
		t.Errorf("Find of a missing tool: got %v, want an error naming apt-get install shakedown-no-such-package", err)
	}
}
