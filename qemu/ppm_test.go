package qemu

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenPPM is a 3x2 image with a comment in the header: red, green, blue
// on the first row; black, white, mid grey on the second.
var goldenPPM = []byte("P6\n# written by hand\n3 2\n255\n" +
	"\xff\x00\x00" + "\x00\xff\x00" + "\x00\x00\xff" +
	"\x00\x00\x00" + "\xff\xff\xff" + "\x80\x80\x80")

// goldenPixels are goldenPPM's pixels, row by row.
var goldenPixels = [][]color.RGBA{
	{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}},
	{{0, 0, 0, 255}, {255, 255, 255, 255}, {128, 128, 128, 255}},
}

// checkPixels compares img with want, pixel by pixel, at 8 bits.
func checkPixels(t *testing.T, img image.Image, want [][]color.RGBA) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != len(want[0]) || b.Dy() != len(want) {
		t.Fatalf("got size %dx%d, want %dx%d", b.Dx(), b.Dy(), len(want[0]), len(want))
	}
	for y, row := range want {
		for x, w := range row {
			got := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
			if got != w {
				t.Errorf("pixel (%d,%d): got %v, want %v", x, y, got, w)
			}
		}
	}
}

func TestDecodePPM(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]color.RGBA
	}{
		{"golden", string(goldenPPM), goldenPixels},
		{
			// What QEMU 7.2's screendump writes, in miniature.
			name: "qemu header",
			in:   "P6\n2 1\n255\n\x01\x02\x03\x04\x05\x06",
			want: [][]color.RGBA{{{1, 2, 3, 255}, {4, 5, 6, 255}}},
		},
		{
			name: "comments and odd whitespace everywhere",
			in:   "P6#c0\n\t1#c1\r 1 #c2\n\f15#c3\n\x0f\x00\x05",
			want: [][]color.RGBA{{{255, 0, 85, 255}}},
		},
		{
			name: "maxval below 255 scales",
			in:   "P6 2 1 1 \x01\x00\x01\x00\x01\x00",
			want: [][]color.RGBA{{{255, 0, 255, 255}, {0, 255, 0, 255}}},
		},
		{
			name: "16-bit maxval 65535",
			in:   "P6 1 1 65535\n\xff\xff\x80\x00\x00\x00",
			want: [][]color.RGBA{{{255, 128, 0, 255}}},
		},
		{
			name: "16-bit maxval 1023 scales",
			in:   "P6 1 1 1023\n\x03\xff\x00\x00\x02\x00",
			want: [][]color.RGBA{{{255, 0, 128, 255}}},
		},
		{
			name: "trailing data ignored",
			in:   "P6 1 1 255\n\x01\x02\x03P6 1 1 255\n",
			want: [][]color.RGBA{{{1, 2, 3, 255}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := DecodePPM(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("DecodePPM: got error %v, want nil", err)
			}
			checkPixels(t, img, tt.want)
		})
	}
}

func TestDecodePPM16BitPrecision(t *testing.T) {
	img, err := DecodePPM(strings.NewReader("P6 1 1 65535\n\x12\x34\x56\x78\x9a\xbc"))
	if err != nil {
		t.Fatalf("DecodePPM: %v", err)
	}
	got := color.RGBA64Model.Convert(img.At(0, 0)).(color.RGBA64)
	want := color.RGBA64{R: 0x1234, G: 0x5678, B: 0x9abc, A: 0xffff}
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDecodePPMMalformed(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantMsg string // a substring of the error
	}{
		{"empty", "", "unexpected end of input"},
		{"ascii ppm", "P3 1 1 255\n1 2 3\n", `magic "P3"`},
		{"png", "\x89PNG\r\n", "magic"},
		{"no width", "P6\n", "width: unexpected end"},
		{"letter width", "P6 x 1 255\n", `width: byte 'x'`},
		{"negative height", "P6 1 -1 255\n", `height: byte '-'`},
		{"zero width", "P6 0 1 255\n", "empty image 0x1"},
		{"zero maxval", "P6 1 1 0\n", "maxval 0"},
		{"maxval too big", "P6 1 1 65536\n", "maxval 65536"},
		{"huge number", "P6 99999999999999999999 1 255\n", "too large"},
		{"huge image", "P6 100000 100000 255\n", "exceeds"},
		{"no separator", "P6 1 1 255", "after maxval: unexpected end"},
		{"bad separator", "P6 1 1 255x\x00\x00\x00", `byte 'x' after maxval`},
		{"truncated raster", "P6 2 2 255\n\x00\x00\x00", "got 3 bytes, want 12"},
		{"truncated 16-bit raster", "P6 1 1 65535\n\x00\x00\x00", "got 3 bytes, want 6"},
		{"sample above maxval", "P6 1 1 15\n\x00\x10\x00", "sample 16 exceeds maxval 15"},
		{"16-bit sample above maxval", "P6 1 1 1000\n\x00\x00\x03\xe9\x00\x00", "sample 1001 exceeds maxval 1000"},
		{"unterminated comment", "P6 1 1 # no end", "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := DecodePPM(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got image %v, want error containing %q", img.Bounds(), tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantMsg)
			}
			if !errors.Is(err, ErrInvalidPPM) {
				t.Errorf("got error %v, want it to wrap ErrInvalidPPM", err)
			}
		})
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDecodePPMReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := DecodePPM(&failingReader{data: goldenPPM[:30], err: boom})
	if !errors.Is(err, boom) {
		t.Errorf("got error %v, want it to wrap the reader's error", err)
	}
	if errors.Is(err, ErrInvalidPPM) {
		t.Errorf("got error %v wrapping ErrInvalidPPM, want an I/O error only", err)
	}
}

func TestPPMToPNG(t *testing.T) {
	dir := t.TempDir()
	ppmPath := filepath.Join(dir, "screen.ppm")
	pngPath := filepath.Join(dir, "screen.png")
	if err := os.WriteFile(ppmPath, goldenPPM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PPMToPNG(ppmPath, pngPath); err != nil {
		t.Fatalf("PPMToPNG: %v", err)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode written png: %v", err)
	}
	checkPixels(t, img, goldenPixels)
}

func TestPPMToPNGErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.ppm")
	if err := os.WriteFile(bad, []byte("P6 2 2 255\n\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.ppm")
	if err := os.WriteFile(good, goldenPPM, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ppm     string
		png     string
		wantErr error
	}{
		{"missing input", filepath.Join(dir, "absent.ppm"), filepath.Join(dir, "a.png"), os.ErrNotExist},
		{"malformed input", bad, filepath.Join(dir, "b.png"), ErrInvalidPPM},
		{"unwritable output", good, filepath.Join(dir, "no", "such", "dir.png"), os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := PPMToPNG(tt.ppm, tt.png)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want one wrapping %v", err, tt.wantErr)
			}
			if _, err := os.Stat(tt.png); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat %s after failure: got %v, want not exist", tt.png, err)
			}
		})
	}
}

func FuzzDecodePPM(f *testing.F) {
	for _, seed := range []string{
		string(goldenPPM),
		"P6 1 1 65535\n\xff\xff\x80\x00\x00\x00",
		"P6#c\n1 1 1\n\x01\x00\x01",
		"P6 2 2 255\n\x00",
		"P6 100000 100000 255\n",
		"P3 1 1 255\n1 2 3\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodePPM(bytes.NewReader(data))
		if err != nil {
			if img != nil {
				t.Errorf("got image and error %v, want only the error", err)
			}
			if !errors.Is(err, ErrInvalidPPM) {
				t.Errorf("got error %v on in-memory input, want it to wrap ErrInvalidPPM", err)
			}
			return
		}
		// A decoded image must survive a PNG round trip unchanged.
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatalf("png encode: %v", err)
		}
		back, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("png decode: %v", err)
		}
		b := img.Bounds()
		if back.Bounds() != b {
			t.Fatalf("png round trip: got bounds %v, want %v", back.Bounds(), b)
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r1, g1, b1, a1 := img.At(x, y).RGBA()
				r2, g2, b2, a2 := back.At(x, y).RGBA()
				if [4]uint32{r1, g1, b1, a1} != [4]uint32{r2, g2, b2, a2} {
					t.Fatalf("png round trip at (%d,%d): got %v, want %v", x, y, back.At(x, y), img.At(x, y))
				}
			}
		}
	})
}
