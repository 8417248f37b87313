package deb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// steppedSource writes a package's file in chunks with a pause after
// each, as a slow download does, and then returns fail.
type steppedSource struct {
	*fakeSource
	chunks int
	pause  time.Duration
	fail   error
}

func (s *steppedSource) Download(ctx context.Context, p Package, dstDir string) (string, error) {
	content := s.files[p.Name]
	path := filepath.Join(dstDir, p.Name+"_"+p.Version+"_"+p.Architecture+".deb")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	step := (len(content) + s.chunks - 1) / s.chunks
	for off := 0; off < len(content); off += step {
		if _, err := f.Write(content[off:min(off+step, len(content))]); err != nil {
			return "", err
		}
		time.Sleep(s.pause)
	}
	return path, s.fail
}

// recorder collects progress reports, from any goroutine.
type recorder struct {
	mu  sync.Mutex
	got []DownloadProgress
}

func (r *recorder) add(p DownloadProgress) {
	r.mu.Lock()
	r.got = append(r.got, p)
	r.mu.Unlock()
}

func TestWatchedReportsGrowingDownload(t *testing.T) {
	content := make([]byte, 4000)
	for i := range content {
		content[i] = byte(i)
	}
	src := &steppedSource{fakeSource: newFakeSource("big", content), chunks: 4, pause: 60 * time.Millisecond}
	var rec recorder
	w := &Watched{Next: src, Progress: rec.add, Interval: 10 * time.Millisecond}
	c := newCache(t)
	_, path, err := Fetch(context.Background(), c, w, "big")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if b, _ := os.ReadFile(path); len(b) != len(content) {
		t.Fatalf("got %d bytes cached, want %d", len(b), len(content))
	}
	got := rec.got
	if len(got) < 4 {
		t.Fatalf("got %d reports, want a start, at least two while growing and a last one: %+v", len(got), got)
	}
	if first := got[0]; first.Bytes != 0 || first.Done || first.Total != 4000 {
		t.Errorf("first report: got %+v, want 0 of 4000 bytes, not done", first)
	}
	last := got[len(got)-1]
	if !last.Done || last.Err != nil || last.Bytes != 4000 || last.Total != 4000 {
		t.Errorf("last report: got %+v, want done, 4000 of 4000 bytes, no error", last)
	}
	growing := 0
	for i, p := range got {
		if p.Package.Name != "big" {
			t.Errorf("report %d: got package %q, want big", i, p.Package.Name)
		}
		if i > 0 && p.Bytes < got[i-1].Bytes {
			t.Errorf("report %d: got %d bytes after %d, want no shrinking", i, p.Bytes, got[i-1].Bytes)
		}
		if p.Done != (i == len(got)-1) {
			t.Errorf("report %d: got Done %v, want it only on the last", i, p.Done)
		}
		if p.Bytes > 0 && p.Bytes < 4000 {
			growing++
		}
	}
	if growing < 2 {
		t.Errorf("got %d reports of a partial file, want at least 2: %+v", growing, got)
	}

	// A cache hit downloads nothing and so reports nothing.
	rec.got = nil
	if _, _, err := Fetch(context.Background(), c, w, "big"); err != nil {
		t.Fatalf("Fetch again: %v", err)
	}
	if len(rec.got) != 0 {
		t.Errorf("cache hit: got %d reports, want none", len(rec.got))
	}
}

func TestWatchedReportsFailure(t *testing.T) {
	boom := errors.New("mirror went away")
	src := &steppedSource{fakeSource: newFakeSource("pkg", []byte("partial content")), chunks: 2, fail: boom}
	var rec recorder
	w := &Watched{Next: src, Progress: rec.add}
	if _, _, err := Fetch(context.Background(), newCache(t), w, "pkg"); !errors.Is(err, boom) {
		t.Fatalf("Fetch: got %v, want %v", err, boom)
	}
	last := rec.got[len(rec.got)-1]
	if !last.Done || !errors.Is(last.Err, boom) {
		t.Errorf("last report: got %+v, want done with %v", last, boom)
	}
}

func TestWatchedWithoutProgress(t *testing.T) {
	src := newFakeSource("pkg", []byte("content"))
	w := &Watched{Next: src}
	if _, _, err := Fetch(context.Background(), newCache(t), w, "pkg"); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if src.downloads != 1 {
		t.Errorf("got %d downloads, want 1", src.downloads)
	}
}
