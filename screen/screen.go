// Package screen drives a machine's keyboard and reads its screens, on
// top of the root package's verbs, as the NixOS driver's send_key,
// send_chars, get_screen_text, wait_for_text, get_tty_text and
// wait_until_tty_matches do:
//
//   - keys go to QEMU's keyboard through QMP's send-key (Machine.QMPE);
//   - the display's text is read by OCR: a screenshot, scaled up and
//     inverted to dark on light, read by Debian's tesseract-ocr on the host;
//   - a virtual terminal's text is read in the guest from /dev/vcsN, folded
//     to the terminal's width, which is exact where OCR guesses.
//
// It imports the root package and internal/poll.
package screen

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/poll"
)

// ErrNoTesseract is returned by Text and WaitForText when the host has no
// tesseract.
var ErrNoTesseract = errors.New("tesseract not found: apt-get install tesseract-ocr (scripts/setup-debian.sh does)")

// SendKeys presses each key in turn, as QEMU's sendkey does: a key is a
// QEMU key name ("a", "ret", "spc", "f2", "backspace") or keys held
// together, joined by "-" ("ctrl-alt-delete", "alt-f2", "shift-a").
func SendKeys(m *shakedown.Machine, keys ...string) error {
	for _, k := range keys {
		var codes []map[string]string
		for _, c := range strings.Split(k, "-") {
			if c == "" {
				return fmt.Errorf("%w: key %q: want QEMU key names joined by -, such as ctrl-alt-delete", shakedown.ErrInvalid, k)
			}
			codes = append(codes, map[string]string{"type": "qcode", "data": qcodeAlias(c)})
		}
		if err := m.QMPE("send-key", map[string]any{"keys": codes}, nil); err != nil {
			return fmt.Errorf("send key %s: %w", k, err)
		}
	}
	return nil
}

// qcodeAlias maps the names the NixOS driver's scripts use that QMP
// spells otherwise.
func qcodeAlias(k string) string {
	switch k {
	case "backspace", "bksp":
		return "backspace"
	case "enter", "return":
		return "ret"
	case "space":
		return "spc"
	case "escape":
		return "esc"
	}
	return k
}

// SendChars types s on the keyboard (a US layout), one character after
// another: letters, digits, punctuation, space, tab and newline (ret).
func SendChars(m *shakedown.Machine, s string) error {
	var keys []string
	for _, r := range s {
		k, ok := charKey(r)
		if !ok {
			return fmt.Errorf("%w: send chars: %q has no key on a US keyboard", shakedown.ErrInvalid, r)
		}
		keys = append(keys, k)
	}
	return SendKeys(m, keys...)
}

// unshifted and shifted are the punctuation keys of a US keyboard.
var unshifted = map[rune]string{
	' ': "spc", '\n': "ret", '\t': "tab", '-': "minus", '=': "equal", '[': "bracket_left",
	']': "bracket_right", '\\': "backslash", ';': "semicolon", '\'': "apostrophe", '`': "grave_accent",
	',': "comma", '.': "dot", '/': "slash",
}

var shifted = map[rune]string{
	'!': "1", '@': "2", '#': "3", '$': "4", '%': "5", '^': "6", '&': "7", '*': "8", '(': "9", ')': "0",
	'_': "minus", '+': "equal", '{': "bracket_left", '}': "bracket_right", '|': "backslash",
	':': "semicolon", '"': "apostrophe", '~': "grave_accent", '<': "comma", '>': "dot", '?': "slash",
}

func charKey(r rune) (string, bool) {
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return string(r), true
	case r >= 'A' && r <= 'Z':
		return "shift-" + string(unicode.ToLower(r)), true
	}
	if k, ok := unshifted[r]; ok {
		return k, true
	}
	if k, ok := shifted[r]; ok {
		return "shift-" + k, true
	}
	return "", false
}

// Text reads the machine's display by OCR. Tesseract reads a text console
// well, not perfectly: match what you wait for loosely.
func Text(m *shakedown.Machine) (string, error) {
	tess, err := exec.LookPath("tesseract")
	if err != nil {
		return "", ErrNoTesseract
	}
	shot, err := m.ScreenshotE(fmt.Sprintf("ocr-%d", time.Now().UnixNano()))
	if err != nil {
		return "", err
	}
	defer os.Remove(shot)
	prepared := filepath.Join(filepath.Dir(shot), "."+filepath.Base(shot))
	if err := prepare(shot, prepared); err != nil {
		return "", fmt.Errorf("screen text: %w", err)
	}
	defer os.Remove(prepared)
	out, err := exec.Command(tess, prepared, "stdout", "--psm", "6").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("screen text: tesseract: %w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("screen text: tesseract: %w", err)
	}
	return string(out), nil
}

// ocrScale is how much the screen is enlarged for tesseract, which reads
// glyphs of 30 pixels or so far better than VGA's 16.
const ocrScale = 3

// prepare writes the screenshot at src as tesseract reads it best: gray,
// dark text on a light ground, enlarged.
func prepare(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return err
	}
	b := img.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx()*ocrScale, b.Dy()*ocrScale))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			g := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray)
			inv := color.Gray{Y: 255 - g.Y}
			for dy := range ocrScale {
				for dx := range ocrScale {
					out.SetGray(x*ocrScale+dx, y*ocrScale+dy, inv)
				}
			}
		}
	}
	w, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := png.Encode(w, out); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// WaitForText reads the display by OCR until re matches or ctx ends
// (give it a deadline: Testbed.Context has only the global one), and
// returns the text that matched; on timeout the error holds the last text
// read.
func WaitForText(ctx context.Context, m *shakedown.Machine, re *regexp.Regexp) (string, error) {
	return wait(ctx, m, "text matching "+re.String()+" on the screen", func() (string, error) { return Text(m) }, re)
}

// TTYText returns the text of virtual terminal tty (1 for /dev/tty1) as
// the guest holds it, one line per screen row.
func TTYText(m *shakedown.Machine, tty int) (string, error) {
	if tty < 1 || tty > 63 {
		return "", fmt.Errorf("%w: tty %d: want 1 to 63", shakedown.ErrInvalid, tty)
	}
	return m.SucceedE(fmt.Sprintf("fold -w \"$(stty -F /dev/tty%d size | cut -d' ' -f2)\" /dev/vcs%d", tty, tty))
}

// WaitForTTY reads virtual terminal tty until re matches or ctx ends, and
// returns its text.
func WaitForTTY(ctx context.Context, m *shakedown.Machine, tty int, re *regexp.Regexp) (string, error) {
	return wait(ctx, m, fmt.Sprintf("tty%d to match %s", tty, re), func() (string, error) { return TTYText(m, tty) }, re)
}

// wait polls read until re matches its text.
func wait(ctx context.Context, m *shakedown.Machine, what string, read func() (string, error), re *regexp.Regexp) (string, error) {
	began := time.Now()
	var text string
	last, err := poll.Until(ctx, func(context.Context) (bool, string, error) {
		t, err := read()
		if err != nil {
			return false, "", err
		}
		text = t
		return re.MatchString(t), strings.TrimSpace(t), nil
	})
	switch {
	case err == nil:
		return text, nil
	case ctx.Err() == nil:
		return "", fmt.Errorf("%s: waiting for %s: %w", m.Name(), what, err)
	}
	return "", fmt.Errorf("%s: %w: waited %v for %s; last read:\n%s", m.Name(), shakedown.ErrTimeout, time.Since(began).Round(time.Millisecond), what, last)
}
