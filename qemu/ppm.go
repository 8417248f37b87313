package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
)

// ErrInvalidPPM is wrapped by DecodePPM's errors for input that is not a
// well-formed binary (P6) PPM image, as opposed to I/O errors.
var ErrInvalidPPM = errors.New("invalid ppm")

// maxPPMPixels caps the image size DecodePPM accepts, so that a corrupt
// header cannot make it allocate without bound. 2^26 pixels is 8192x8192,
// well above any screen QEMU can emulate.
const maxPPMPixels = 1 << 26

// DecodePPM decodes a binary PPM (P6) image, the format QEMU's screendump
// writes. Header comments are allowed. A maxval of 255 or less gives an
// *image.RGBA scaled to 8 bits; a maxval above 255 (two bytes per sample,
// big-endian) gives an *image.RGBA64. Bytes after the raster are not read
// beyond what buffering takes.
func DecodePPM(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, 2)
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("decode ppm: magic: %w", eofInvalid(err))
	}
	if string(magic) != "P6" {
		return nil, fmt.Errorf("decode ppm: magic %q, want \"P6\" (only binary PPM is supported): %w", magic, ErrInvalidPPM)
	}
	var dims [3]int
	for i, name := range []string{"width", "height", "maxval"} {
		n, err := headerNumber(br)
		if err != nil {
			return nil, fmt.Errorf("decode ppm: %s: %w", name, err)
		}
		dims[i] = n
	}
	w, h, maxval := dims[0], dims[1], dims[2]
	switch {
	case w == 0 || h == 0:
		return nil, fmt.Errorf("decode ppm: empty image %dx%d: %w", w, h, ErrInvalidPPM)
	case w > maxPPMPixels || h > maxPPMPixels || w*h > maxPPMPixels:
		return nil, fmt.Errorf("decode ppm: image %dx%d exceeds %d pixels: %w", w, h, maxPPMPixels, ErrInvalidPPM)
	case maxval == 0 || maxval > 65535:
		return nil, fmt.Errorf("decode ppm: maxval %d, want 1 to 65535: %w", maxval, ErrInvalidPPM)
	}
	// Exactly one whitespace byte separates the header from the raster; a
	// comment before it ends with the newline that serves as the separator.
	c, err := headerByte(br)
	if err != nil {
		return nil, fmt.Errorf("decode ppm: after maxval: %w", eofInvalid(err))
	}
	if !isSpace(c) {
		return nil, fmt.Errorf("decode ppm: byte %q after maxval, want whitespace: %w", c, ErrInvalidPPM)
	}

	sampleSize := 1
	if maxval > 255 {
		sampleSize = 2
	}
	want := w * h * 3 * sampleSize
	// Read before allocating the image, and through a growing buffer, so
	// that a truncated file claiming a huge size costs only what it holds.
	var raster bytes.Buffer
	n, err := io.Copy(&raster, io.LimitReader(br, int64(want)))
	if err != nil {
		return nil, fmt.Errorf("decode ppm: raster: %w", err)
	}
	if int(n) != want {
		return nil, fmt.Errorf("decode ppm: raster truncated: got %d bytes, want %d for %dx%d maxval %d: %w", n, want, w, h, maxval, ErrInvalidPPM)
	}
	pix := raster.Bytes()

	rect := image.Rect(0, 0, w, h)
	if sampleSize == 1 {
		img := image.NewRGBA(rect)
		for i, j := 0, 0; i < len(pix); i, j = i+3, j+4 {
			for k := range 3 {
				v := int(pix[i+k])
				if v > maxval {
					return nil, sampleError(i+k, v, maxval)
				}
				img.Pix[j+k] = uint8(v * 255 / maxval)
			}
			img.Pix[j+3] = 0xff
		}
		return img, nil
	}
	img := image.NewRGBA64(rect)
	for i, j := 0, 0; i < len(pix); i, j = i+6, j+8 {
		for k := range 3 {
			v := int(pix[i+2*k])<<8 | int(pix[i+2*k+1])
			if v > maxval {
				return nil, sampleError(i+2*k, v, maxval)
			}
			v = v * 65535 / maxval
			img.Pix[j+2*k] = uint8(v >> 8)
			img.Pix[j+2*k+1] = uint8(v)
		}
		img.Pix[j+6], img.Pix[j+7] = 0xff, 0xff
	}
	return img, nil
}

// sampleError reports a sample above maxval, which the format forbids.
func sampleError(offset, v, maxval int) error {
	return fmt.Errorf("decode ppm: raster byte %d: sample %d exceeds maxval %d: %w", offset, v, maxval, ErrInvalidPPM)
}

// eofInvalid turns running out of input inside the header into a format
// error that still says it was an EOF.
func eofInvalid(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("unexpected end of input: %w", ErrInvalidPPM)
	}
	return err
}

// isSpace reports whether c is whitespace as netpbm defines it.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// headerByte reads one header byte, turning a comment ("#" through the
// end of the line) into the newline that ends it, as netpbm does.
func headerByte(br *bufio.Reader) (byte, error) {
	c, err := br.ReadByte()
	if err != nil || c != '#' {
		return c, err
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c == '\n' || c == '\r' {
			return c, nil
		}
	}
}

// headerNumber skips whitespace and comments and reads a decimal number,
// leaving the byte after it unread.
func headerNumber(br *bufio.Reader) (int, error) {
	c, err := headerByte(br)
	for err == nil && isSpace(c) {
		c, err = headerByte(br)
	}
	if err != nil {
		return 0, eofInvalid(err)
	}
	if c < '0' || c > '9' {
		return 0, fmt.Errorf("byte %q, want a decimal digit: %w", c, ErrInvalidPPM)
	}
	n := 0
	for {
		n = n*10 + int(c-'0')
		if n > 1<<30 {
			return 0, fmt.Errorf("number too large: %w", ErrInvalidPPM)
		}
		c, err = br.ReadByte()
		if err == io.EOF {
			return n, nil // the caller meets the EOF at the next byte
		}
		if err != nil {
			return 0, err
		}
		if c < '0' || c > '9' {
			// The terminator belongs to the caller (it may be the raster
			// separator after maxval).
			if err := br.UnreadByte(); err != nil {
				return 0, err
			}
			return n, nil
		}
	}
}

// PPMToPNG converts the PPM image at ppmPath, such as a screendump, into
// a PNG at pngPath. On error no file is left at pngPath.
func PPMToPNG(ppmPath, pngPath string) (err error) {
	in, err := os.Open(ppmPath)
	if err != nil {
		return fmt.Errorf("ppm to png: %w", err)
	}
	defer in.Close()
	img, err := DecodePPM(in)
	if err != nil {
		return fmt.Errorf("ppm to png %s: %w", ppmPath, err)
	}
	out, err := os.Create(pngPath)
	if err != nil {
		return fmt.Errorf("ppm to png: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("ppm to png: %w", cerr)
		}
		if err != nil {
			os.Remove(pngPath)
		}
	}()
	// Screens are mostly flat colour, which even the fastest level
	// compresses well, and screenshots are taken on failure paths where
	// speed matters more than bytes.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(out, img); err != nil {
		return fmt.Errorf("ppm to png %s: encode: %w", pngPath, err)
	}
	return nil
}
