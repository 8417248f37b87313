// Package cache owns shakedown's content-addressed on-disk cache of built and
// downloaded artifacts and their lifecycle: filling entries atomically,
// recording their use, listing them and collecting those unused for a
// while. It imports only the standard library and x/sys/unix.
package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInvalidName is returned when a kind or key could name a path outside the
// cache root or is not in the form the cache expects.
var ErrInvalidName = errors.New("invalid cache entry name")

// Cache is a directory of entries addressed by a kind (what the entry is,
// e.g. "deb" or "kernel") and a key (a hex digest of what it was made from).
// Entries are immutable once they exist: they appear atomically, complete, or
// not at all, so readers never need a lock.
//
// Every hit (Dir, File or Lookup finding an entry) records the entry's use,
// so that Collect removes what has not been used for a while, whichever
// package made it, and never what is used every day. The use time is the
// entry's mtime: entries are immutable, so nothing else changes it, while
// atime is updated rarely or never on relatime and noatime mounts.
type Cache struct {
	// Root is the absolute path of the cache directory.
	Root string
}

// Open returns the cache at dir. An empty dir means $SHAKEDOWN_CACHE, else
// $XDG_CACHE_HOME/shakedown, else $HOME/.cache/shakedown. Open creates the
// directory and checks that it is writable, because a cache that fails on
// its first write deep inside an image build gives a far worse error.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		var err error
		if dir, err = defaultDir(); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, notWritable(abs, err)
	}
	// A probe file is the only reliable test: access(2) says yes to root on
	// a read-only mount's neighbours and ignores ACLs and quotas.
	f, err := os.CreateTemp(abs, ".probe-")
	if err != nil {
		return nil, notWritable(abs, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return nil, notWritable(abs, err)
	}
	return &Cache{Root: abs}, nil
}

func defaultDir() (string, error) {
	if d := os.Getenv("SHAKEDOWN_CACHE"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache dir (%v): set SHAKEDOWN_CACHE to a writable directory", err)
	}
	return filepath.Join(base, "shakedown"), nil
}

func notWritable(dir string, err error) error {
	return fmt.Errorf("cache dir %s not writable: set SHAKEDOWN_CACHE or XDG_CACHE_HOME to a writable directory: %w", dir, err)
}

// Dir returns the path of the directory entry kind/key, calling fill to
// create it when it is absent. fill writes into tmp, a fresh empty directory
// inside the cache (mode 0755); when fill succeeds tmp is renamed into place
// in one step, and when it fails tmp is removed, so no half-written entry is
// ever visible. Concurrent callers for one entry, goroutines or separate
// processes, are serialized by a lock file: one fills, the others wait and
// then reuse its result. fill is not called when the entry already exists;
// returning it records its use.
//
// Files inside a directory entry are not fsynced (a kernel's modules are
// thousands of files); after a host crash an entry may need Remove.
func (c *Cache) Dir(kind, key string, fill func(tmp string) error) (string, error) {
	return c.fillEntry(kind, key, func(kindDir, pattern string) (string, error) {
		tmp, err := os.MkdirTemp(kindDir, pattern)
		if err != nil {
			return "", err
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return tmp, err
		}
		return tmp, fill(tmp)
	})
}

// File is Dir for an entry that is a single file: fill writes to f, a temp
// file in the cache (mode 0644, which fill may change), which is then synced,
// closed and renamed into place. fill must not close f.
func (c *Cache) File(kind, key string, fill func(f *os.File) error) (string, error) {
	return c.fillEntry(kind, key, func(kindDir, pattern string) (string, error) {
		f, err := os.CreateTemp(kindDir, pattern)
		if err != nil {
			return "", err
		}
		tmp := f.Name()
		err = f.Chmod(0o644)
		if err == nil {
			err = fill(f)
		}
		if err == nil {
			// Sync before rename: otherwise a crash can leave a complete-looking
			// name on top of empty or partial content.
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		return tmp, err
	})
}

// Lookup reports the path of the existing entry kind/key without creating
// it, and records its use when it exists. An invalid kind or key is
// reported as absent.
func (c *Cache) Lookup(kind, key string) (string, bool) {
	p, err := c.path(kind, key)
	if err != nil {
		return "", false
	}
	if !use(p) {
		return "", false
	}
	return p, true
}

// use records that the entry at p is used now, by setting its mtime, and
// reports whether the entry exists. An entry being removed (renamed aside)
// is absent: the caller then fills it again under the lock, after the
// removal. A cache this process may read but not mark (another user's, a
// read-only mount) still serves its entries; they just age as if unused.
func use(p string) bool {
	err := os.Chtimes(p, time.Time{}, time.Now()) // zero atime: left as is
	if err == nil {
		return true
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	_, err = os.Lstat(p)
	return err == nil
}

// Remove deletes the entry kind/key, for example when a cached file proves
// corrupt. Removing an absent entry is not an error. The entry is first
// renamed aside so that it vanishes at once rather than file by file.
func (c *Cache) Remove(kind, key string) error {
	p, err := c.path(kind, key)
	if err != nil {
		return err
	}
	unlock, err := c.lock(kind, key)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := removeLocked(p, time.Time{}); err != nil {
		return fmt.Errorf("remove cache entry %s/%s: %w", kind, key, err)
	}
	return nil
}

// removingSuffix marks an entry renamed aside to be deleted.
const removingSuffix = ".removing"

// removeLocked deletes the entry at p, whose lock the caller holds, unless
// it was used at or after keepIfUsed (the zero time keeps nothing), and
// reports whether it did. The entry is first renamed aside, so that it
// vanishes at once rather than file by file, and so that its use time is
// final when it is checked: a use recorded later finds no entry and waits
// for the lock. An absent entry is not an error.
func removeLocked(p string, keepIfUsed time.Time) (bool, error) {
	doomed := p + removingSuffix
	os.RemoveAll(doomed) // left by a removal that died half way
	if err := os.Rename(p, doomed); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if !keepIfUsed.IsZero() {
		fi, err := os.Lstat(doomed)
		if err == nil && !fi.ModTime().Before(keepIfUsed) {
			// Used since it was listed: put it back.
			return false, os.Rename(doomed, p)
		}
	}
	return true, os.RemoveAll(doomed)
}

// fillEntry runs the shared part of Dir and File. create makes a temp entry
// in kindDir named by pattern, fills it and returns its path (also on error,
// so that it can be removed).
func (c *Cache) fillEntry(kind, key string, create func(kindDir, pattern string) (string, error)) (string, error) {
	p, err := c.path(kind, key)
	if err != nil {
		return "", err
	}
	// Fast path without the lock: an entry that exists is complete.
	if use(p) {
		return p, nil
	}
	unlock, err := c.lock(kind, key)
	if err != nil {
		return "", err
	}
	defer unlock()
	if use(p) {
		return p, nil // another caller filled it while we waited
	}
	kindDir := filepath.Dir(p)
	// Holding the lock, any temp entry for this key is left over from a
	// process that died while filling: clear it so the cache does not grow.
	stale, _ := filepath.Glob(filepath.Join(kindDir, tmpPrefix(key)+"*"))
	for _, s := range stale {
		os.RemoveAll(s)
	}
	tmp, err := create(kindDir, tmpPrefix(key)+"*")
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return "", fmt.Errorf("fill cache entry %s/%s: %w", kind, key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("fill cache entry %s/%s: %w", kind, key, err)
	}
	use(p) // a fill is a use: the temp's mtime is when its last file was made
	return p, nil
}

func tmpPrefix(key string) string { return "." + key + ".tmp-" }

// path validates kind and key and returns the entry's path. Kinds are short
// lowercase words and keys lowercase hex, so no entry can name "..", a path
// separator or a temp or lock file.
func (c *Cache) path(kind, key string) (string, error) {
	if !validKind(kind) {
		return "", fmt.Errorf("cache kind %q: %w: use lowercase letters, digits and '-'", kind, ErrInvalidName)
	}
	if !validKey(key) {
		return "", fmt.Errorf("cache key %q: %w: hash the inputs (e.g. sha256) and hex-encode the digest in lowercase", key, ErrInvalidName)
	}
	return filepath.Join(c.Root, kind, key), nil
}

func validKind(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validKey(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// inProcess serializes goroutines of this process on an entry before they
// take the file lock, so that waiters block on a mutex rather than each
// holding an OS thread in flock(2).
var inProcess sync.Map // entry path -> *sync.Mutex

// lock takes the exclusive lock of entry kind/key: an in-process mutex, then
// an flock on kind/.lock/key, which excludes other processes. Lock files are
// never deleted: unlinking one while another process waits on it would let
// two holders in.
func (c *Cache) lock(kind, key string) (unlock func(), err error) {
	unlock, _, err = c.takeLock(kind, key, true)
	return unlock, err
}

// tryLock is lock without waiting: ok is false when another goroutine or
// process holds the lock.
func (c *Cache) tryLock(kind, key string) (unlock func(), ok bool, err error) {
	return c.takeLock(kind, key, false)
}

func (c *Cache) takeLock(kind, key string, wait bool) (unlock func(), ok bool, err error) {
	lockDir := filepath.Join(c.Root, kind, ".lock")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, false, fmt.Errorf("lock cache entry %s/%s: %w", kind, key, err)
	}
	name := filepath.Join(lockDir, key)
	m, _ := inProcess.LoadOrStore(name, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	how := unix.LOCK_EX
	if wait {
		mu.Lock()
	} else {
		if !mu.TryLock() {
			return nil, false, nil
		}
		how |= unix.LOCK_NB
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		mu.Unlock()
		return nil, false, fmt.Errorf("lock cache entry %s/%s: %w", kind, key, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		mu.Unlock()
		if err == unix.EWOULDBLOCK {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock cache entry %s/%s: %w", kind, key, err)
	}
	return func() {
		// Closing the file releases the flock.
		f.Close()
		mu.Unlock()
	}, true, nil
}
