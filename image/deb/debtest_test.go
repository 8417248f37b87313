package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// tarEntry is one member of a synthetic data archive.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	body     string
	linkname string
}

// makeDeb builds a .deb in memory: ar archive, debian-binary, a
// control.tar.gz and a data.tar compressed as ext (".gz", ".zst", ".xz"
// with the host's xz, or ""; ".lzma" names the member so but stores it
// plain, for the reader to refuse).
func makeDeb(t testing.TB, ext string, entries []tarEntry) []byte {
	t.Helper()
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Linkname: e.linkname, ModTime: mtime}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	var ctl bytes.Buffer
	ctw := tar.NewWriter(&ctl)
	control := "Package: test\nVersion: 1.0\nArchitecture: all\n"
	ctw.WriteHeader(&tar.Header{Name: "./control", Mode: 0o644, Size: int64(len(control)), Typeflag: tar.TypeReg})
	ctw.Write([]byte(control))
	ctw.Close()

	var ar bytes.Buffer
	ar.WriteString(arMagic)
	member := func(name string, body []byte) {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(body))
		ar.Write(body)
		if len(body)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	member("debian-binary", []byte("2.0\n"))
	member("control.tar.gz", gz(t, ctl.Bytes()))
	var body []byte
	switch ext {
	case ".gz":
		body = gz(t, data.Bytes())
	case ".zst":
		enc, _ := zstd.NewWriter(nil)
		body = enc.EncodeAll(data.Bytes(), nil)
	case ".xz":
		// As dpkg-deb does; no Go library in the module writes xz.
		if _, err := exec.LookPath("xz"); err != nil {
			t.Skip("no xz command to make a data.tar.xz")
		}
		cmd := exec.Command("xz", "--format=xz", "--stdout")
		cmd.Stdin = bytes.NewReader(data.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("makeDeb: xz: %v", err)
		}
		body = out
	case "", ".lzma":
		body = data.Bytes()
	default:
		t.Fatalf("makeDeb: unsupported ext %q", ext)
	}
	member("data.tar"+ext, body)
	return ar.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}
