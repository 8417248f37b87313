package deb

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/shakedown-dev/shakedown/image/decompress"
)

// A .deb is an ar archive of debian-binary ("2.0\n"), control.tar.* and
// data.tar.*. This reads it with the standard library and image/decompress
// rather than pault.ag/go/debian/deb, which does not build against current
// x/crypto (it imports the removed x/crypto/openpgp).

const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
)

// dataTar finds the data member of the .deb in r (of the given size) and
// returns a tar reader over its decompressed content. close releases the
// decompressor.
func dataTar(r io.ReaderAt, size int64) (tr *tar.Reader, close func(), err error) {
	return memberTar(r, size, "data.tar")
}

// memberTar finds the member of the .deb in r (of the given size) whose
// name starts with prefix, "data.tar" or "control.tar", and returns a tar
// reader over its decompressed content. close releases the decompressor.
func memberTar(r io.ReaderAt, size int64, prefix string) (tr *tar.Reader, close func(), err error) {
	magic := make([]byte, len(arMagic))
	if _, err := r.ReadAt(magic, 0); err != nil || string(magic) != arMagic {
		return nil, nil, fmt.Errorf("not a .deb: no ar archive header")
	}
	off := int64(len(arMagic))
	sawBinary := false
	for off < size {
		var h [arHeaderLen]byte
		if _, err := r.ReadAt(h[:], off); err != nil {
			return nil, nil, fmt.Errorf("not a .deb: truncated ar header at offset %d", off)
		}
		if string(h[58:60]) != "`\n" {
			return nil, nil, fmt.Errorf("not a .deb: bad ar header at offset %d", off)
		}
		// GNU ar ends names with '/'; dpkg does not.
		name := strings.TrimSuffix(strings.TrimSpace(string(h[0:16])), "/")
		n, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || n < 0 || off+arHeaderLen+n > size {
			return nil, nil, fmt.Errorf("not a .deb: bad size of ar member %q", name)
		}
		body := io.NewSectionReader(r, off+arHeaderLen, n)
		switch {
		case name == "debian-binary":
			v := make([]byte, min(n, 16))
			body.ReadAt(v, 0)
			if !bytes.HasPrefix(v, []byte("2.")) {
				return nil, nil, fmt.Errorf("unsupported .deb format version %q", bytes.TrimSpace(v))
			}
			sawBinary = true
		case strings.HasPrefix(name, prefix):
			if !sawBinary {
				return nil, nil, fmt.Errorf("not a .deb: %s member before debian-binary", prefix)
			}
			f, err := decompress.ByExt(strings.TrimPrefix(name, prefix))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			rc, err := decompress.NewReader(body, f)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			return tar.NewReader(rc), func() { rc.Close() }, nil
		}
		off += arHeaderLen + n + n%2 // members are padded to an even offset
	}
	return nil, nil, fmt.Errorf("not a .deb: no %s member", prefix)
}
