package cache

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const key = "0123456789abcdef"

func newCache(t *testing.T) *Cache {
	t.Helper()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

func TestDirFillOnceThenReuse(t *testing.T) {
	c := newCache(t)
	calls := 0
	fill := func(tmp string) error {
		calls++
		return os.WriteFile(filepath.Join(tmp, "a"), []byte("hello"), 0o644)
	}
	p1, err := c.Dir("test", key, fill)
	if err != nil {
		t.Fatalf("Dir: %v", err)
	}
	p2, err := c.Dir("test", key, fill)
	if err != nil {
		t.Fatalf("Dir again: %v", err)
	}
	if calls != 1 {
		t.Errorf("fill called %d times, want 1", calls)
	}
	if p1 != p2 {
		t.Errorf("got paths %s and %s, want the same", p1, p2)
	}
	b, err := os.ReadFile(filepath.Join(p1, "a"))
	if err != nil || string(b) != "hello" {
		t.Errorf("got %q, %v, want \"hello\"", b, err)
	}
	if p, ok := c.Lookup("test", key); !ok || p != p1 {
		t.Errorf("Lookup: got %s, %v, want %s, true", p, ok, p1)
	}
	fi, err := os.Stat(p1)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("entry mode: got %v, %v, want 0755", fi.Mode().Perm(), err)
	}
}

func TestFileFillOnceThenReuse(t *testing.T) {
	c := newCache(t)
	calls := 0
	fill := func(f *os.File) error {
		calls++
		_, err := f.WriteString("content")
		return err
	}
	p, err := c.File("test", key, fill)
	if err != nil {
		t.Fatalf("File: %v", err)
	}
	if _, err := c.File("test", key, fill); err != nil {
		t.Fatalf("File again: %v", err)
	}
	if calls != 1 {
		t.Errorf("fill called %d times, want 1", calls)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "content" {
		t.Errorf("got %q, %v, want \"content\"", b, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("entry mode: got %v, %v, want 0644", fi.Mode().Perm(), err)
	}
}

func TestFailingFillLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		run  func(c *Cache) error
	}{
		{"dir", func(c *Cache) error {
			_, err := c.Dir("test", key, func(tmp string) error {
				os.WriteFile(filepath.Join(tmp, "half"), []byte("x"), 0o644)
				return boom
			})
			return err
		}},
		{"file", func(c *Cache) error {
			_, err := c.File("test", key, func(f *os.File) error {
				f.WriteString("half")
				return boom
			})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			err := tt.run(c)
			if !errors.Is(err, boom) {
				t.Fatalf("got error %v, want one wrapping %v", err, boom)
			}
			if p, ok := c.Lookup("test", key); ok {
				t.Errorf("Lookup: got entry %s after failed fill, want none", p)
			}
			left, _ := filepath.Glob(filepath.Join(c.Root, "test", ".*.tmp-*"))
			if len(left) > 0 {
				t.Errorf("got temp entries %v after failed fill, want none", left)
			}
			// A later fill must work.
			if _, err := c.Dir("test", key, func(string) error { return nil }); err != nil {
				t.Errorf("Dir after failure: %v", err)
			}
		})
	}
}

func TestConcurrentGoroutinesFillOnce(t *testing.T) {
	c := newCache(t)
	var calls atomic.Int32
	var wg sync.WaitGroup
	paths := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = c.Dir("test", key, func(tmp string) error {
				calls.Add(1)
				time.Sleep(20 * time.Millisecond) // widen the race window
				return os.WriteFile(filepath.Join(tmp, "a"), []byte("x"), 0o644)
			})
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("fill called %d times, want 1", n)
	}
	for i := range 20 {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Errorf("caller %d: got %s, %v, want %s, nil", i, paths[i], errs[i], paths[0])
		}
	}
}

// TestConcurrentProcessesFillOnce runs this test binary several times as
// child processes that race to fill one entry; each fill appends to a log
// outside the entry, which must end with exactly one line.
func TestConcurrentProcessesFillOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes; skipped with -short")
	}
	c := newCache(t)
	log := filepath.Join(t.TempDir(), "fills")
	var cmds []*exec.Cmd
	for range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessFill$")
		cmd.Env = append(os.Environ(), "CACHE_HELPER_ROOT="+c.Root, "CACHE_HELPER_LOG="+log)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start helper: %v", err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	}
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Errorf("got %d fills across processes, want 1", n)
	}
}

func TestHelperProcessFill(t *testing.T) {
	root := os.Getenv("CACHE_HELPER_ROOT")
	if root == "" {
		t.Skip("helper for TestConcurrentProcessesFillOnce")
	}
	c := &Cache{Root: root}
	_, err := c.Dir("test", key, func(tmp string) error {
		f, err := os.OpenFile(os.Getenv("CACHE_HELPER_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintln(f, os.Getpid())
		f.Close()
		time.Sleep(100 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRemove(t *testing.T) {
	c := newCache(t)
	if _, err := c.File("test", key, func(f *os.File) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("test", key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, ok := c.Lookup("test", key); ok {
		t.Errorf("Lookup after Remove: got present, want absent")
	}
	if err := c.Remove("test", key); err != nil {
		t.Errorf("Remove of absent entry: got %v, want nil", err)
	}
}

func TestInvalidNames(t *testing.T) {
	c := newCache(t)
	tests := []struct{ kind, key string }{
		{"", key},
		{"..", key},
		{"a/b", key},
		{".lock", key},
		{"Deb", key},
		{"test", ""},
		{"test", ".."},
		{"test", "../../etc"},
		{"test", "ABCDEF"},
		{"test", "abc/def"},
		{"test", strings.Repeat("a", 129)},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"_"+tt.key, func(t *testing.T) {
			_, err := c.Dir(tt.kind, tt.key, func(string) error {
				t.Error("fill called for an invalid name")
				return nil
			})
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("got %v, want ErrInvalidName", err)
			}
			if _, ok := c.Lookup(tt.kind, tt.key); ok {
				t.Errorf("Lookup: got present, want absent")
			}
		})
	}
}

func TestOpenNotWritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	roDir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(roDir, 0o555); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		root bool // whether the case also fails for root
	}{
		{"under a file", filepath.Join(file, "cache"), true},
		{"read-only dir", roDir, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.root && os.Geteuid() == 0 {
				t.Skip("root can write to a mode 0555 directory")
			}
			_, err := Open(tt.dir)
			if err == nil {
				t.Fatalf("Open(%s): got nil error, want not writable", tt.dir)
			}
			for _, want := range []string{tt.dir, "not writable", "SHAKEDOWN_CACHE", "XDG_CACHE_HOME"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got error %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestOpenDefaultDir(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		name                 string
		shakedown, xdg, home string
		want                 string
	}{
		{"SHAKEDOWN_CACHE", filepath.Join(tmp, "s"), filepath.Join(tmp, "x"), tmp, filepath.Join(tmp, "s")},
		{"XDG_CACHE_HOME", "", filepath.Join(tmp, "x"), tmp, filepath.Join(tmp, "x", "shakedown")},
		{"HOME", "", "", tmp, filepath.Join(tmp, ".cache", "shakedown")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SHAKEDOWN_CACHE", tt.shakedown)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			c, err := Open("")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if c.Root != tt.want {
				t.Errorf("got root %s, want %s", c.Root, tt.want)
			}
		})
	}
}

// setUsed sets the use time of the entry at p, as if it was last used then.
func setUsed(t testing.TB, p string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}

// TestHitRecordsUse checks that every way of finding an existing entry
// marks it used now, so that gc does not take an entry used every day for
// one unused for a month (a Debian rootfs tarball costs a minute to make).
func TestHitRecordsUse(t *testing.T) {
	noFill := func(t *testing.T) func(string) error {
		return func(string) error { t.Error("fill called on a hit"); return nil }
	}
	tests := []struct {
		name string
		fill func(c *Cache) (string, error)
		hit  func(t *testing.T, c *Cache) string
	}{
		{"Dir", func(c *Cache) (string, error) { return c.Dir("test", key, func(string) error { return nil }) },
			func(t *testing.T, c *Cache) string {
				p, err := c.Dir("test", key, noFill(t))
				if err != nil {
					t.Fatal(err)
				}
				return p
			}},
		{"File", func(c *Cache) (string, error) { return c.File("test", key, func(*os.File) error { return nil }) },
			func(t *testing.T, c *Cache) string {
				p, err := c.File("test", key, func(*os.File) error { t.Error("fill called on a hit"); return nil })
				if err != nil {
					t.Fatal(err)
				}
				return p
			}},
		{"Lookup", func(c *Cache) (string, error) { return c.File("test", key, func(*os.File) error { return nil }) },
			func(t *testing.T, c *Cache) string {
				p, ok := c.Lookup("test", key)
				if !ok {
					t.Fatal("Lookup: got absent, want the entry")
				}
				return p
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			p, err := tt.fill(c)
			if err != nil {
				t.Fatal(err)
			}
			setUsed(t, p, time.Now().Add(-30*24*time.Hour))
			if got := tt.hit(t, c); got != p {
				t.Fatalf("got path %s, want %s", got, p)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if age := time.Since(fi.ModTime()); age > time.Minute {
				t.Errorf("got entry last used %v ago, want now", age.Round(time.Hour))
			}
		})
	}
}
