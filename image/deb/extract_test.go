package deb

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var sampleEntries = []tarEntry{
	{name: "./", typ: tar.TypeDir, mode: 0o755},
	{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
	{name: "./bin/busybox", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/true\n"},
	{name: "./bin/sh", typ: tar.TypeSymlink, linkname: "busybox"},
	{name: "./bin/sh-hard", typ: tar.TypeLink, linkname: "./bin/busybox"},
	{name: "./bin/suid", typ: tar.TypeReg, mode: 0o4755, body: "x"},
	{name: "./usr/share/doc/test/copyright", typ: tar.TypeReg, mode: 0o644, body: "GPL"},
	{name: "./etc/ro/", typ: tar.TypeDir, mode: 0o555},
	{name: "./etc/ro/conf", typ: tar.TypeReg, mode: 0o444, body: "conf"},
	{name: "./lib/abs", typ: tar.TypeSymlink, linkname: "/usr/lib/x"},
}

func writeDeb(t *testing.T, ext string, entries []tarEntry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test_1.0_all.deb")
	if err := os.WriteFile(p, makeDeb(t, ext, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExtract(t *testing.T) {
	for _, ext := range []string{".gz", ".zst", ".xz", ""} {
		t.Run("data.tar"+ext, func(t *testing.T) {
			deb := writeDeb(t, ext, sampleEntries)
			dst := t.TempDir()
			if err := Extract(deb, dst, nil); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			checks := []struct {
				path string
				mode os.FileMode // from Lstat
				body string
				link string
			}{
				{"bin", os.ModeDir | 0o755, "", ""},
				{"bin/busybox", 0o755, "#!/bin/true\n", ""},
				{"bin/sh", os.ModeSymlink | 0o777, "", "busybox"},
				{"bin/sh-hard", 0o755, "#!/bin/true\n", ""},
				{"bin/suid", os.ModeSetuid | 0o755, "x", ""},
				{"usr/share/doc/test/copyright", 0o644, "GPL", ""},
				{"etc/ro", os.ModeDir | 0o555, "", ""},
				{"etc/ro/conf", 0o444, "conf", ""},
				{"lib/abs", os.ModeSymlink | 0o777, "", "/usr/lib/x"},
			}
			for _, c := range checks {
				p := filepath.Join(dst, c.path)
				fi, err := os.Lstat(p)
				if err != nil {
					t.Errorf("%s: %v", c.path, err)
					continue
				}
				if fi.Mode() != c.mode {
					t.Errorf("%s: got mode %v, want %v", c.path, fi.Mode(), c.mode)
				}
				if c.body != "" {
					if b, _ := os.ReadFile(p); string(b) != c.body {
						t.Errorf("%s: got content %q, want %q", c.path, b, c.body)
					}
				}
				if c.link != "" {
					if l, _ := os.Readlink(p); l != c.link {
						t.Errorf("%s: got link %q, want %q", c.path, l, c.link)
					}
				}
			}
			os.Chmod(filepath.Join(dst, "etc/ro"), 0o755) // let TempDir clean up
		})
	}
}

func TestExtractKeep(t *testing.T) {
	deb := writeDeb(t, ".gz", sampleEntries)
	dst := t.TempDir()
	var seen []string
	keep := func(p string) bool {
		seen = append(seen, p)
		return p == "bin/busybox" || p == "bin/sh"
	}
	if err := Extract(deb, dst, keep); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	var got []string
	filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
		if rel, _ := filepath.Rel(dst, p); rel != "." {
			got = append(got, rel)
		}
		return nil
	})
	if want := "bin,bin/busybox,bin/sh"; strings.Join(got, ",") != want {
		t.Errorf("got files %v, want %s", got, want)
	}
	for _, p := range seen {
		if strings.HasPrefix(p, "./") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
			t.Errorf("keep got path %q, want it cleaned (no ./, leading or trailing /)", p)
		}
	}
}

func TestExtractRejects(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		keep    func(string) bool
		want    string
	}{
		{"dotdot", []tarEntry{{name: "./../evil", typ: tar.TypeReg, mode: 0o644, body: "x"}}, nil, "leaves the archive root"},
		{"through symlink", []tarEntry{
			{name: "./lib", typ: tar.TypeSymlink, linkname: "/tmp"},
			{name: "./lib/evil", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, nil, "lib/evil"},
		{"relative symlink out", []tarEntry{
			{name: "./lib", typ: tar.TypeSymlink, linkname: "../.."},
			{name: "./lib/evil", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, nil, "lib/evil"},
		{"hard link to dropped file", []tarEntry{
			{name: "./a", typ: tar.TypeReg, mode: 0o644, body: "x"},
			{name: "./b", typ: tar.TypeLink, linkname: "./a"},
		}, func(p string) bool { return p == "b" }, "keep both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deb := writeDeb(t, ".gz", tt.entries)
			err := Extract(deb, t.TempDir(), tt.keep)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestExtractNotADeb(t *testing.T) {
	good := makeDeb(t, ".gz", sampleEntries)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no ar archive header"},
		{"text", []byte("hello world, not a deb"), "no ar archive header"},
		{"truncated", good[:len(good)/2], "ar member"},
		{"header only", []byte(arMagic), "no data.tar member"},
		{"unsupported compression", makeDeb(t, ".lzma", sampleEntries), `data.tar.lzma: unsupported compression format ".lzma"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.deb")
			os.WriteFile(p, tt.data, 0o644)
			err := Extract(p, t.TempDir(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("got error %v, want one naming %s and containing %q", err, p, tt.want)
			}
		})
	}
}
