package rundir

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMakeSweepLive(t *testing.T) {
	parent := t.TempDir()
	live, err := Make(parent, "TestX/sub case")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release(false)
	if b := filepath.Base(live.Path); !strings.HasPrefix(b, "TestX_sub_case-") {
		t.Errorf("got run dir %s, want it named after the test", b)
	}
	// A killed process's dir: lock file present, nobody holds it.
	dead := filepath.Join(parent, "dead")
	os.MkdirAll(dead, 0o755)
	os.WriteFile(filepath.Join(dead, LockName), nil, 0o644)
	// A failed test's kept artifacts: no lock file.
	kept := filepath.Join(parent, "kept")
	os.MkdirAll(kept, 0o755)

	if got, err := Live(parent); err != nil || !slices.Equal(got, []string{live.Path}) {
		t.Errorf("Live = %v, %v; want only %s", got, err, live.Path)
	}
	if removed := Sweep(parent); !slices.Equal(removed, []string{dead}) {
		t.Errorf("swept %v, want only %s", removed, dead)
	}
	for _, d := range []string{live.Path, kept} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v, want it kept", d, err)
		}
	}
}

func TestRelease(t *testing.T) {
	for _, remove := range []bool{false, true} {
		d, err := Make(t.TempDir(), "T")
		if err != nil {
			t.Fatal(err)
		}
		d.Release(remove)
		d.Release(remove) // twice is harmless
		_, statErr := os.Stat(d.Path)
		if gone := os.IsNotExist(statErr); gone != remove {
			t.Errorf("Release(%v): directory gone = %v", remove, gone)
		}
		if Held(d.Path) {
			t.Errorf("Release(%v): still held", remove)
		}
		if !remove {
			if _, err := os.Stat(filepath.Join(d.Path, LockName)); !os.IsNotExist(err) {
				t.Errorf("kept directory still has its lock file (a sweeper could take it): %v", err)
			}
		}
	}
}

func TestNameLength(t *testing.T) {
	d, err := Make(t.TempDir(), strings.Repeat("a", 200))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release(true)
	if n := len(filepath.Base(d.Path)); n > maxBase+12 {
		t.Errorf("got a %d-character name, want at most %d", n, maxBase+12)
	}
}
