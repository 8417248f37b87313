package elfdeps

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeRoot builds, with the host's gcc, a tiny package tree:
//
//	/usr/bin/prog           needs libfoo.so.1 (RUNPATH $ORIGIN/../lib/prog) and libc
//	/usr/lib/prog/libfoo.so.1 -> libfoo.so.1.0
//	/usr/lib/prog/libfoo.so.1.0  needs libbar.so.2
//	/usr/lib/x86_64-linux-gnu/libbar.so.2  needs libc
//	/usr/bin/static         a static program
//	/usr/bin/script         a shell script
//
// plus the host's libc and loader at their Debian paths. It returns the
// host directory standing for / and the Tree.
func fakeRoot(t *testing.T) (string, Tree) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc to build ELF fixtures: apt-get install gcc")
	}
	root := t.TempDir()
	src := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mkdir := func(d string) string {
		p := filepath.Join(root, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	mkdir("usr/bin")
	mkdir("usr/lib/prog")
	mkdir("usr/lib/x86_64-linux-gnu")
	bar := filepath.Join(root, "usr/lib/x86_64-linux-gnu/libbar.so.2")
	cc("-shared", "-fPIC", "-o", bar, "-Wl,-soname,libbar.so.2", write("bar.c", "int bar(void){return 2;}\n"))
	foo := filepath.Join(root, "usr/lib/prog/libfoo.so.1.0")
	cc("-shared", "-fPIC", "-o", foo, "-Wl,-soname,libfoo.so.1", write("foo.c", "int bar(void); int foo(void){return bar()+1;}\n"),
		"-L"+filepath.Dir(bar), "-l:libbar.so.2")
	if err := os.Symlink("libfoo.so.1.0", filepath.Join(root, "usr/lib/prog/libfoo.so.1")); err != nil {
		t.Fatal(err)
	}
	cc("-o", filepath.Join(root, "usr/bin/prog"), write("prog.c", "int foo(void); int main(void){return foo();}\n"),
		"-L"+filepath.Dir(foo), "-l:libfoo.so.1", "-Wl,-rpath-link,"+filepath.Dir(bar), "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib/prog")
	if err := exec.Command(gcc, "-static", "-o", filepath.Join(root, "usr/bin/static"), write("s.c", "int main(void){return 0;}\n")).Run(); err != nil {
		t.Logf("no static libc (%v): the static case is left out", err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/script"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The C library and loader of the host, at Debian's paths.
	mkdir("lib/x86_64-linux-gnu")
	mkdir("lib64")
	for _, lib := range []string{"libc.so.6", "ld-linux-x86-64.so.2"} {
		data, err := os.ReadFile(filepath.Join("/lib/x86_64-linux-gnu", lib))
		if err != nil {
			t.Skipf("host has no Debian multiarch %s: %v", lib, err)
		}
		if err := os.WriteFile(filepath.Join(root, "lib/x86_64-linux-gnu", lib), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	return root, scan(t, root)
}

// scan makes the Tree of the host directory root.
func scan(t *testing.T, root string) Tree {
	t.Helper()
	tree := Tree{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		target := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ = os.Readlink(p)
		}
		tree["/"+filepath.ToSlash(rel)] = target
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func reader(root string) func(string) (*Info, error) {
	return func(g string) (*Info, error) { return ReadFile(filepath.Join(root, g)) }
}

func TestRead(t *testing.T) {
	root, _ := fakeRoot(t)
	info, err := ReadFile(filepath.Join(root, "usr/bin/prog"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Interp != "/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("Interp: got %q, want /lib64/ld-linux-x86-64.so.2", info.Interp)
	}
	if want := []string{"libfoo.so.1", "libc.so.6"}; !slices.Equal(info.Needed, want) {
		t.Errorf("Needed: got %q, want %q", info.Needed, want)
	}
	if want := []string{"$ORIGIN/../lib/prog"}; !slices.Equal(info.RunPath, want) || len(info.RPath) != 0 {
		t.Errorf("RunPath, RPath: got %q, %q, want %q, none", info.RunPath, info.RPath, want)
	}
	if _, err := ReadFile(filepath.Join(root, "usr/bin/script")); !errors.Is(err, ErrNotELF) {
		t.Errorf("script: got %v, want ErrNotELF", err)
	}
	if info, err := ReadFile(filepath.Join(root, "usr/bin/static")); err == nil && info.Dynamic() {
		t.Errorf("static program: got %+v, want not dynamic", info)
	}
}

func TestClosure(t *testing.T) {
	root, tree := fakeRoot(t)
	got, err := Closure(tree, []string{"/usr/bin/prog", "/usr/bin/script", "/usr/bin/static"}, reader(root))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/lib/x86_64-linux-gnu/libc.so.6",
		"/lib64/ld-linux-x86-64.so.2",
		"/usr/lib/prog/libfoo.so.1",
		"/usr/lib/prog/libfoo.so.1.0",
		"/usr/lib/x86_64-linux-gnu/libbar.so.2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestClosureMissing(t *testing.T) {
	root, tree := fakeRoot(t)
	for _, tc := range []struct {
		name, remove, object, library string
	}{
		{"library", "/usr/lib/x86_64-linux-gnu/libbar.so.2", "/usr/lib/prog/libfoo.so.1", "libbar.so.2"},
		{"runpath target", "/usr/lib/prog/libfoo.so.1.0", "/usr/bin/prog", "libfoo.so.1"},
		{"loader", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/usr/bin/prog", "/lib64/ld-linux-x86-64.so.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := Tree{}
			for k, v := range tree {
				tr[k] = v
			}
			delete(tr, tc.remove)
			_, err := Closure(tr, []string{"/usr/bin/prog"}, reader(root))
			var me *MissingError
			if !errors.As(err, &me) || !errors.Is(err, ErrMissingLibrary) {
				t.Fatalf("got %v, want a *MissingError", err)
			}
			// Several objects may miss the same library (libc.so.6 has a
			// PT_INTERP too); the one asked about must be among them.
			if want := tc.object + " needs " + tc.library; !strings.Contains(err.Error(), want) {
				t.Errorf("got %q, want it to say %q", err, want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tree := Tree{
		"/lib64":            "usr/lib64", // relative, in a directory component
		"/usr/lib64/ld.so":  "",
		"/a":                "/b",
		"/b":                "c/../d",
		"/d":                "",
		"/loop":             "/loop",
		"/dangling":         "/nowhere",
		"/usr/lib64/nested": "../lib64/ld.so",
	}
	for _, tc := range []struct {
		in, file string
		links    []string
		ok       bool
	}{
		{"/d", "/d", nil, true},
		{"/a", "/d", []string{"/a", "/b"}, true},
		{"/lib64/ld.so", "/usr/lib64/ld.so", []string{"/lib64"}, true},
		{"/lib64/nested", "/usr/lib64/ld.so", []string{"/lib64", "/usr/lib64/nested"}, true},
		{"/loop", "", nil, false},
		{"/dangling", "", nil, false},
		{"/usr", "", nil, false}, // a directory
	} {
		file, links, ok := tree.Resolve(tc.in)
		if file != tc.file || ok != tc.ok || !slices.Equal(links, tc.links) {
			t.Errorf("Resolve(%s): got %q %q %v, want %q %q %v", tc.in, file, links, ok, tc.file, tc.links, tc.ok)
		}
	}
}
