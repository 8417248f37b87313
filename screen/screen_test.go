package screen

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestCharKey(t *testing.T) {
	for _, tc := range []struct {
		r    rune
		want string
		ok   bool
	}{
		{'a', "a", true}, {'Z', "shift-z", true}, {'7', "7", true}, {' ', "spc", true},
		{'\n', "ret", true}, {'\t', "tab", true}, {'-', "minus", true}, {'_', "shift-minus", true},
		{'|', "shift-backslash", true}, {'>', "shift-dot", true}, {'"', "shift-apostrophe", true},
		{'~', "shift-grave_accent", true}, {'é', "", false}, {'\r', "", false},
	} {
		got, ok := charKey(tc.r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("charKey(%q) = %q, %v; want %q, %v", tc.r, got, ok, tc.want, tc.ok)
		}
	}
}

func TestQcodeAlias(t *testing.T) {
	for in, want := range map[string]string{"enter": "ret", "return": "ret", "space": "spc", "escape": "esc", "bksp": "backspace", "ctrl": "ctrl", "f2": "f2"} {
		if got := qcodeAlias(in); got != want {
			t.Errorf("qcodeAlias(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPrepare: the screen is scaled up ocrScale times, gray and inverted,
// so that light text on black reads as dark on white.
func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, color.RGBA{0, 0, 0, 255})
	img.Set(1, 0, color.RGBA{255, 255, 255, 255})
	src, dst := filepath.Join(dir, "in.png"), filepath.Join(dir, "out.png")
	f, _ := os.Create(src)
	png.Encode(f, img)
	f.Close()
	if err := prepare(src, dst); err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(dst)
	out, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := out.Bounds(); b.Dx() != 2*ocrScale || b.Dy() != ocrScale {
		t.Fatalf("size %v", b)
	}
	gray := func(x, y int) uint8 { return color.GrayModel.Convert(out.At(x, y)).(color.Gray).Y }
	if gray(0, 0) != 255 || gray(ocrScale-1, ocrScale-1) != 255 || gray(ocrScale, 0) != 0 {
		t.Errorf("pixels %d %d %d: want black→white, white→black", gray(0, 0), gray(ocrScale-1, ocrScale-1), gray(ocrScale, 0))
	}
}
