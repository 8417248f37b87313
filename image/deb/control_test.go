package deb

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestControlFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.deb")
	if err := os.WriteFile(path, makeDeb(t, ".gz", nil), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ControlFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Package: test\nVersion: 1.0\nArchitecture: all\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bad := filepath.Join(t.TempDir(), "bad.deb")
	os.WriteFile(bad, []byte("not an ar archive"), 0o644)
	if _, err := ControlFile(bad); err == nil || !strings.Contains(err.Error(), "not a .deb") {
		t.Errorf("ControlFile of a non-.deb: got %v, want not a .deb", err)
	}
}

func TestInstalled(t *testing.T) {
	status := `Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 2.36-9+deb12u9
Description: GNU C Library
 continued here

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: base-files
Status: install ok installed
Essential: yes
Architecture: amd64
Version: 12.4+deb12u11
`
	got, err := Installed([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Name: "libc6", Version: "2.36-9+deb12u9", Architecture: "amd64"},
		{Name: "base-files", Version: "12.4+deb12u11", Architecture: "amd64"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "Package: x\nStatus: deinstall ok config-files\nVersion: 1\n", "Status: install ok installed\nVersion: 1\n"} {
		if _, err := Installed([]byte(bad)); err == nil {
			t.Errorf("Installed(%q): no error", bad)
		}
	}
}
