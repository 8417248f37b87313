package deb

import (
	"context"
	"io/fs"
	"path/filepath"
	"sync"
	"time"
)

// DefaultPollInterval is how often Watched measures a download in
// progress: often enough for a live display, rare enough to cost nothing.
const DefaultPollInterval = 200 * time.Millisecond

// DownloadProgress is one report on a download through a Watched source.
type DownloadProgress struct {
	// Package is what is being downloaded.
	Package Package
	// Bytes is how much of it has reached the destination directory so
	// far; Total is its size from the index (Package.Size), 0 if the
	// index gives none.
	Bytes, Total int64
	// Done is set on the last report of a download, whose Err says
	// whether it failed.
	Done bool
	Err  error
}

// Watched is a Source that reports the progress of Next's downloads, for
// a person waiting on a cold cache: a report when a download begins, one
// whenever the bytes in the destination directory have grown since the
// last measurement (taken every Interval), and a last one with Done set.
// It measures the directory rather than asking Next, so any Source that
// writes its file in place is watched, apt-get download included. Reports
// of one download come in order from the goroutine calling Download;
// concurrent downloads report concurrently.
type Watched struct {
	// Next resolves names and downloads.
	Next Source
	// Progress receives the reports; nil reports nothing.
	Progress func(DownloadProgress)
	// Interval is the time between measurements; 0 means
	// DefaultPollInterval.
	Interval time.Duration
}

// Resolve implements Source by asking Next.
func (w *Watched) Resolve(ctx context.Context, name string) (Package, error) {
	return w.Next.Resolve(ctx, name)
}

// Prefetch passes names on to Next when it is a Prefetcher.
func (w *Watched) Prefetch(ctx context.Context, names []string) {
	if pf, ok := w.Next.(Prefetcher); ok {
		pf.Prefetch(ctx, names)
	}
}

// Download implements Source: Next downloads while a goroutine, stopped
// before Download returns, measures dstDir.
func (w *Watched) Download(ctx context.Context, p Package, dstDir string) (string, error) {
	if w.Progress == nil {
		return w.Next.Download(ctx, p, dstDir)
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	var mu sync.Mutex // orders the poller's reports before the last one
	last := int64(0)
	report := func(n int64, done bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if !done && n == last {
			return
		}
		last = n
		w.Progress(DownloadProgress{Package: p, Bytes: n, Total: p.Size, Done: done, Err: err})
	}
	w.Progress(DownloadProgress{Package: p, Total: p.Size})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				report(dirSize(dstDir), false, nil)
			}
		}
	}()
	path, err := w.Next.Download(ctx, p, dstDir)
	close(stop)
	wg.Wait()
	report(dirSize(dstDir), true, err)
	return path, err
}

// dirSize sums the sizes of the regular files under dir; what cannot be
// read counts as nothing, as files come and go during a download.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}
