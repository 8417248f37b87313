// Package decompress owns reading the compressed data that images are made
// from (.deb members, kernel modules, a kernel's payload): it tells the
// formats apart by file extension or by magic bytes and returns one
// io.ReadCloser for each. It imports the standard library,
// klauspost/compress/zstd and xi2/xz, and nothing of shakedown's.
//
// One xz decoder serves every caller: xi2/xz, a port of the Linux kernel's
// own XZ decoder. It is unmaintained, but it decodes the x86 BCJ filter
// that Debian's kernels compress their payload with (xz --x86 --lzma2),
// which ulikunitz/xz, the maintained alternative, does not: its reader
// supports the LZMA2 filter alone, and fails on testdata/sample-x86.xz with
// "xz: unsupported filter count" (checked with v0.5.17).
package decompress

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/klauspost/compress/zstd"
	"github.com/xi2/xz"
)

// ErrUnsupported is returned for data or a file name in a compression
// format this package does not read; the message names the format.
var ErrUnsupported = errors.New("unsupported compression format")

// Format is a compression format; the zero value is None.
type Format string

// The formats NewReader reads.
const (
	// None is data stored as is.
	None  Format = ""
	Gzip  Format = "gzip"
	XZ    Format = "xz"
	Zstd  Format = "zstd"
	Bzip2 Format = "bzip2"
)

// String returns the format's name, "uncompressed" for None.
func (f Format) String() string {
	if f == None {
		return "uncompressed"
	}
	return string(f)
}

// formats lists each format with its file extension and magic bytes.
var formats = []struct {
	f     Format
	ext   string
	magic []byte
}{
	{Gzip, ".gz", []byte{0x1f, 0x8b}},
	{XZ, ".xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, ".zst", []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, ".bz2", []byte("BZh")},
}

// unsupported are formats a kernel payload or a .deb may come in that
// this package does not read, recognized only to name them in errors.
var unsupported = []struct {
	name  string
	magic []byte
}{
	{"lzma", []byte{0x5d, 0x00, 0x00}},
	{"lzo", []byte{0x89, 'L', 'Z', 'O'}},
	{"lz4", []byte{0x02, 0x21, 0x4c, 0x18}}, // legacy frame, as the kernel writes
	{"lz4", []byte{0x04, 0x22, 0x4d, 0x18}},
}

// Ext returns the file name extension of f, such as ".xz"; "" for None.
func (f Format) Ext() string {
	for _, k := range formats {
		if k.f == f {
			return k.ext
		}
	}
	return ""
}

// ByExt returns the format that a file name extension names: ".gz", ".xz",
// ".zst" or ".bz2", and "" for None. Any other extension is ErrUnsupported.
func ByExt(ext string) (Format, error) {
	if ext == "" {
		return None, nil
	}
	for _, k := range formats {
		if k.ext == ext {
			return k.f, nil
		}
	}
	return None, fmt.Errorf("%w %q: want .gz, .xz, .zst or .bz2", ErrUnsupported, ext)
}

// Detect returns the format of compressed data from its first bytes (six
// are enough). Data in no format NewReader reads is ErrUnsupported, whose
// message names lzma, lzo and lz4 and otherwise quotes the bytes; data
// that is not compressed at all is reported the same way, since no magic
// marks it.
func Detect(head []byte) (Format, error) {
	for _, k := range formats {
		if bytes.HasPrefix(head, k.magic) {
			return k.f, nil
		}
	}
	for _, u := range unsupported {
		if bytes.HasPrefix(head, u.magic) {
			return None, fmt.Errorf("%w %s", ErrUnsupported, u.name)
		}
	}
	return None, fmt.Errorf("%w (unknown magic % x)", ErrUnsupported, head[:min(len(head), 6)])
}

// Options tunes a decoder. The zero value decodes with the libraries'
// default limits.
type Options struct {
	// MaxMemory bounds the history a stream may ask the decoder to keep,
	// in bytes: zstd's window and xz's dictionary (up to 4 GiB). A stream
	// that needs more fails instead of allocating it, so that corrupt or
	// hostile input cannot exhaust memory. Zero keeps the defaults (zstd
	// 512 MiB, xz 64 MiB); gzip and bzip2 use fixed, small windows.
	MaxMemory uint64
}

// NewReader returns a reader of the decompressed content of r, which is in
// format f, with the zero Options.
func NewReader(r io.Reader, f Format) (io.ReadCloser, error) {
	return Options{}.NewReader(r, f)
}

// NewReader returns a reader of the decompressed content of r, which is in
// format f; None gives r's content as is. The caller must Close the
// reader: that releases the decoder's buffers (zstd's in particular) but
// does not close r. A zstd decoder runs in the caller's goroutine
// (concurrency 1): images decode many small streams, often several at
// once, where decoder goroutines cost more than they save, and a reader
// that is never closed then leaks memory but no goroutine.
func (o Options) NewReader(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case None:
		return io.NopCloser(r), nil
	case Gzip:
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("decompress gzip: %w", err)
		}
		return z, nil
	case XZ:
		var dictMax uint32 // 0: xz.DefaultDictMax
		if o.MaxMemory > 0 {
			dictMax = uint32(min(o.MaxMemory, math.MaxUint32))
		}
		z, err := xz.NewReader(r, dictMax)
		if err != nil {
			return nil, fmt.Errorf("decompress xz: %w", err)
		}
		return io.NopCloser(z), nil
	case Zstd:
		opts := []zstd.DOption{zstd.WithDecoderConcurrency(1)}
		if o.MaxMemory > 0 {
			opts = append(opts, zstd.WithDecoderMaxMemory(o.MaxMemory))
		}
		z, err := zstd.NewReader(r, opts...)
		if err != nil {
			return nil, fmt.Errorf("decompress zstd: %w", err)
		}
		return z.IOReadCloser(), nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupported, string(f))
}
