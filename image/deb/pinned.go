package deb

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// Pinned is a Source that answers from a fixed set of packages (a lock
// file's) before it asks Next, and records every package it hands out, so
// that a build can write down exactly what it used. Downloads go to Next:
// a pinned package is fetched as exactly that name, version and SHA-256.
//
// A bare name resolves to its pin when there is one; "name=version"
// resolves to the pin only when the versions agree, else through Next, so
// that an explicit version in a spec beats a stale lock. Use NewPinned; a
// Pinned is safe for concurrent use.
type Pinned struct {
	// Next resolves what has no pin, and downloads everything.
	Next Source

	pins map[string]Package
	mu   sync.Mutex
	used map[string]Package
}

// NewPinned returns a Pinned that resolves the names of pins to them and
// everything else through next.
func NewPinned(next Source, pins []Package) *Pinned {
	s := &Pinned{Next: next, pins: map[string]Package{}, used: map[string]Package{}}
	for _, p := range pins {
		s.pins[p.Name] = p
	}
	return s
}

// Resolve implements Source.
func (s *Pinned) Resolve(ctx context.Context, name string) (Package, error) {
	pkg, ver, exact := strings.Cut(name, "=")
	p, ok := s.pins[pkg]
	if !ok || exact && p.Version != ver {
		var err error
		if p, err = s.Next.Resolve(ctx, name); err != nil {
			return Package{}, err
		}
	}
	s.mu.Lock()
	s.used[p.Name] = p
	s.mu.Unlock()
	return p, nil
}

// Pin reports the pin of the package name, if there is one.
func (s *Pinned) Pin(name string) (Package, bool) {
	p, ok := s.pins[name]
	return p, ok
}

// Download implements Source by handing p to Next.
func (s *Pinned) Download(ctx context.Context, p Package, dstDir string) (string, error) {
	return s.Next.Download(ctx, p, dstDir)
}

// Prefetch passes names on to Next when it is a Prefetcher, leaving out
// the pinned ones.
func (s *Pinned) Prefetch(ctx context.Context, names []string) {
	pf, ok := s.Next.(Prefetcher)
	if !ok {
		return
	}
	var rest []string
	for _, n := range names {
		if _, ok := s.pins[n]; !ok {
			rest = append(rest, n)
		}
	}
	if len(rest) > 0 {
		pf.Prefetch(ctx, rest)
	}
}

// Used returns the packages Resolve has handed out, sorted by name.
func (s *Pinned) Used() []Package {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Package, 0, len(s.used))
	for _, p := range s.used {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Package) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Prefetcher is a Source that can resolve many names in one go, so that a
// later Resolve of each is cheap. Prefetch is only a hint: it reports no
// errors, and Resolve reports them for each name as usual.
type Prefetcher interface {
	Prefetch(ctx context.Context, names []string)
}
