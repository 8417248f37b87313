package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Entry is an entry of the cache, as Entries lists it.
type Entry struct {
	// Kind and Key address the entry (see Cache).
	Kind, Key string
	// Path is the entry's file or directory.
	Path string
	// Size is what the entry occupies on disk in bytes: allocated blocks,
	// so that a sparse disk image counts what it holds, and for a
	// directory entry everything in it.
	Size int64
	// Used is when the entry was last used: filled, or found by Dir,
	// File or Lookup.
	Used time.Time
	// Leftover marks, in what Collect removed, a temp entry or a removal
	// that a process left half done when it died; Path names it.
	Leftover bool
}

// Entries lists the entries of every kind in the cache, sorted by kind and
// key. Listing is not a use. Left out are fills in progress, entries being
// removed, and whatever else lies in the cache directory without being
// named like an entry (a kind directory holding keys in lowercase hex).
func (c *Cache) Entries() ([]Entry, error) {
	kinds, err := os.ReadDir(c.Root)
	if err != nil {
		return nil, fmt.Errorf("list cache %s: %w", c.Root, err)
	}
	var out []Entry
	for _, k := range kinds {
		if !k.IsDir() || !validKind(k.Name()) {
			continue
		}
		es, err := c.list(k.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return out, nil
}

// list returns the entries of one kind, sorted by key.
func (c *Cache) list(kind string) ([]Entry, error) {
	dir := filepath.Join(c.Root, kind)
	names, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("list cache kind %s: %w", kind, err)
	}
	var out []Entry
	for _, n := range names {
		if !validKey(n.Name()) {
			continue // .lock, temp entries, entries being removed
		}
		e, err := stat(kind, n.Name(), filepath.Join(dir, n.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list cache entry %s/%s: %w", kind, n.Name(), err)
		}
		out = append(out, e)
	}
	return out, nil
}

// stat describes the entry kind/key at path.
func stat(kind, key, path string) (Entry, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Kind: kind, Key: key, Path: path, Used: fi.ModTime(), Size: allocated(fi)}
	if !fi.IsDir() {
		return e, nil
	}
	e.Size, err = dirSize(path)
	return e, err
}

// dirSize is what the directory tree at root occupies on disk.
func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += allocated(fi)
		return nil
	})
	return n, err
}

// allocated is the disk space of a file: its blocks, where the system says.
func allocated(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// Collect removes every entry, of every kind, last used before cutoff (in
// a command, time.Now() less the age wanted) and returns what it removed,
// in Entries' order, then the leftovers below. An entry used after Collect listed it is kept: each
// is renamed aside under its lock and its use time checked once more, so
// a use recorded before the rename keeps it, and one after finds it absent
// and waits for the lock. That leaves one race, and only for entries about
// as old as the cutoff: a process that found the entry just before the
// rename but opens it just after. Files already open (a running machine's
// disk) stay readable after removal, as always on Unix.
//
// Collect also removes what processes that died left behind, half-filled
// temp entries and half-removed ones, whatever their age, unless a living
// process holds their entry's lock; those are returned too, marked
// Leftover. Errors do not stop it: it returns what it
// removed with all the errors joined.
func (c *Cache) Collect(cutoff time.Time) ([]Entry, error) {
	all, err := c.Entries()
	if err != nil {
		return nil, err
	}
	var removed []Entry
	var errs []error
	for _, e := range all {
		if !e.Used.Before(cutoff) {
			continue
		}
		ok, err := c.collect(e, cutoff)
		if err != nil {
			errs = append(errs, fmt.Errorf("collect cache entry %s/%s: %w", e.Kind, e.Key, err))
		}
		if ok {
			removed = append(removed, e)
		}
	}
	left, err := c.leftovers()
	removed = append(removed, left...)
	return removed, errors.Join(append(errs, err)...)
}

// collect removes e, unless it was used at or after cutoff.
func (c *Cache) collect(e Entry, cutoff time.Time) (bool, error) {
	unlock, err := c.lock(e.Kind, e.Key)
	if err != nil {
		return false, err
	}
	defer unlock()
	return removeLocked(e.Path, cutoff)
}

// leftovers removes the temp entries (".KEY.tmp-*") and half-removed
// entries ("KEY.removing") of every kind whose lock no one holds, and
// returns them.
func (c *Cache) leftovers() ([]Entry, error) {
	kinds, err := os.ReadDir(c.Root)
	if err != nil {
		return nil, fmt.Errorf("list cache %s: %w", c.Root, err)
	}
	var removed []Entry
	var errs []error
	for _, k := range kinds {
		if !k.IsDir() || !validKind(k.Name()) {
			continue
		}
		kind := k.Name()
		names, err := os.ReadDir(filepath.Join(c.Root, kind))
		if err != nil {
			errs = append(errs, fmt.Errorf("list cache kind %s: %w", kind, err))
			continue
		}
		for _, n := range names {
			key, ok := leftoverKey(n.Name())
			if !ok {
				continue
			}
			e, err := c.removeLeftover(kind, key, filepath.Join(c.Root, kind, n.Name()))
			if err != nil {
				errs = append(errs, fmt.Errorf("collect cache leftover %s/%s: %w", kind, n.Name(), err))
			}
			if e != nil {
				removed = append(removed, *e)
			}
		}
	}
	return removed, errors.Join(errs...)
}

// leftoverKey returns the key of a temp or half-removed entry's name.
func leftoverKey(name string) (string, bool) {
	if key, ok := strings.CutSuffix(name, removingSuffix); ok && validKey(key) {
		return key, true
	}
	if rest, ok := strings.CutPrefix(name, "."); ok {
		if i := strings.Index(rest, ".tmp-"); i > 0 && validKey(rest[:i]) {
			return rest[:i], true
		}
	}
	return "", false
}

// removeLeftover removes the leftover at path of entry kind/key when no
// one holds the entry's lock: a living filler or remover does, and its
// temp is not garbage.
func (c *Cache) removeLeftover(kind, key, path string) (*Entry, error) {
	unlock, ok, err := c.tryLock(kind, key)
	if err != nil || !ok {
		return nil, err
	}
	defer unlock()
	e, err := stat(kind, key, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(path); err != nil {
		return nil, err
	}
	e.Leftover = true
	return &e, nil
}
