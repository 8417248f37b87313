package shakedown

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRunDirs(t *testing.T) {
	parent := t.TempDir()
	live, lock, err := makeRunDir(parent, "TestX/sub case")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if b := filepath.Base(live); b[:len("TestX_sub_case-")] != "TestX_sub_case-" {
		t.Errorf("got run dir %s, want it named after the test", b)
	}
	// A killed process's dir: lock file present, nobody holds it.
	dead := filepath.Join(parent, "dead")
	os.MkdirAll(dead, 0o755)
	os.WriteFile(filepath.Join(dead, lockName), nil, 0o644)
	// A failed test's kept artifacts: no lock file.
	kept := filepath.Join(parent, "kept")
	os.MkdirAll(kept, 0o755)

	if removed := SweepRunDirs(parent); !slices.Equal(removed, []string{dead}) {
		t.Errorf("swept %v, want only %s", removed, dead)
	}
	for _, d := range []string{live, kept} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v, want it kept", d, err)
		}
	}
}
