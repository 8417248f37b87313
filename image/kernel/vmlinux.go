package kernel

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shakedown-dev/shakedown/image/decompress"
)

// ErrNoPVH means a kernel ELF has no PVH entry point (no Xen ELF note of
// type XEN_ELFNOTE_PHYS32_ENTRY), so QEMU cannot boot it directly: boot the
// bzImage instead.
var ErrNoPVH = errors.New("kernel has no PVH entry point note")

// Offsets in the x86 boot protocol's setup header
// (Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1
	offHeaderMagic   = 0x202 // "HdrS"
	offVersion       = 0x206 // boot protocol version, u16
	offKernelVersion = 0x20e // pointer to the version string, minus 0x200
	offPayloadOffset = 0x248 // u32, from protocol 2.08
	offPayloadLength = 0x24c // u32
	minHeaderLen     = 0x250
)

// xenElfnotePhys32Entry is the ELF note type (owner "Xen") whose
// description is the 32-bit PVH entry point; QEMU's -kernel loader looks
// for it to boot an ELF kernel directly.
const xenElfnotePhys32Entry = 18

// maxVmlinux bounds the decompressed kernel, so that a corrupt or hostile
// image cannot exhaust memory; real x86 kernels are well below 200 MiB.
const maxVmlinux = 1 << 30

// ExtractVmlinux returns the uncompressed kernel ELF inside a bzImage, for
// QEMU's PVH direct boot, which skips the in-guest decompression and real
// mode setup (seconds under TCG). The payload (setup header fields
// payload_offset and payload_length, boot protocol 2.08+) may be gzip, xz
// (including the x86 BCJ filter that kernels use), zstd or bzip2; lzma, lzo
// and lz4 are decompress.ErrUnsupported. A result without a PVH entry note
// is ErrNoPVH.
func ExtractVmlinux(bzImage []byte) ([]byte, error) {
	payload, err := bzPayload(bzImage)
	if err != nil {
		return nil, fmt.Errorf("extract vmlinux: %w", err)
	}
	out, err := decompressPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("extract vmlinux: %w", err)
	}
	if !bytes.HasPrefix(out, []byte(elf.ELFMAG)) {
		return nil, fmt.Errorf("extract vmlinux: payload is not an ELF file (starts % x)", out[:min(len(out), 4)])
	}
	ok, err := hasPVHNote(out)
	if err != nil {
		return nil, fmt.Errorf("extract vmlinux: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("extract vmlinux: %w (kernel built without CONFIG_PVH): boot the bzImage instead", ErrNoPVH)
	}
	return out, nil
}

// bzPayload returns the compressed kernel inside a bzImage.
func bzPayload(bz []byte) ([]byte, error) {
	if len(bz) < minHeaderLen {
		return nil, fmt.Errorf("not a bzImage: %d bytes is too short for the boot header", len(bz))
	}
	if string(bz[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return nil, fmt.Errorf("not a bzImage: no \"HdrS\" boot header magic at %#x", offHeaderMagic)
	}
	if v := binary.LittleEndian.Uint16(bz[offVersion:]); v < 0x208 {
		return nil, fmt.Errorf("bzImage boot protocol %d.%02d predates 2.08, which records the payload: boot the bzImage instead", v>>8, v&0xff)
	}
	setup := int64(bz[offSetupSects])
	if setup == 0 {
		setup = 4 // by the boot protocol, 0 means the historical 4
	}
	off := int64(binary.LittleEndian.Uint32(bz[offPayloadOffset:]))
	n := int64(binary.LittleEndian.Uint32(bz[offPayloadLength:]))
	start := (setup+1)*512 + off
	if n == 0 || start+n > int64(len(bz)) {
		return nil, fmt.Errorf("bzImage payload at %d, %d bytes long, lies outside the %d-byte image (truncated file?)", start, n, len(bz))
	}
	return bz[start : start+n], nil
}

// decompressPayload decompresses a kernel payload, recognized by its magic.
// The kernel's build appends the uncompressed size as 4 bytes to every
// format but gzip (whose trailer has it already; scripts/Makefile.lib's
// size_append); they are cut off here, since a decoder would take them
// for the start of another stream.
func decompressPayload(p []byte) ([]byte, error) {
	format, err := decompress.Detect(p)
	if err != nil {
		return nil, fmt.Errorf("payload: %w: boot the bzImage instead", err)
	}
	stream := p
	if format != decompress.Gzip {
		if len(p) < 8 {
			return nil, fmt.Errorf("%s payload: truncated", format)
		}
		stream = p[:len(p)-4]
	}
	r, err := decompress.Options{MaxMemory: maxVmlinux}.NewReader(bytes.NewReader(stream), format)
	if err != nil {
		return nil, fmt.Errorf("%s payload: %w", format, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	// The last 4 bytes give the uncompressed size (gzip's ISIZE or the
	// appended size); use it only to size the buffer, and only when it is
	// plausible (kernels compress about 8:1), so that a corrupt trailer
	// cannot make us allocate a gigabyte up front.
	if len(p) >= 4 {
		if n := int64(binary.LittleEndian.Uint32(p[len(p)-4:])); n <= maxVmlinux && n <= 32*int64(len(p)) {
			buf.Grow(int(n))
		}
	}
	n, err := io.Copy(&buf, io.LimitReader(r, maxVmlinux+1))
	if err != nil {
		return nil, fmt.Errorf("%s payload: %w", format, err)
	}
	if n > maxVmlinux {
		return nil, fmt.Errorf("%s payload: decompresses to more than %d bytes", format, maxVmlinux)
	}
	return buf.Bytes(), nil
}

// hasPVHNote reports whether the ELF image has, in a PT_NOTE segment, a
// note owned by "Xen" of type XEN_ELFNOTE_PHYS32_ENTRY. Segments, not
// sections, because that is what QEMU's ELF loader reads.
func hasPVHNote(img []byte) (bool, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return false, fmt.Errorf("parse kernel ELF: %w", err)
	}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_NOTE {
			continue
		}
		if prog.Off > uint64(len(img)) || prog.Filesz > uint64(len(img))-prog.Off {
			return false, fmt.Errorf("parse kernel ELF: note segment at %d+%d lies outside the file", prog.Off, prog.Filesz)
		}
		if hasNote(img[prog.Off:prog.Off+prog.Filesz], f.ByteOrder, "Xen", xenElfnotePhys32Entry) {
			return true, nil
		}
	}
	return false, nil
}

// hasNote scans ELF notes (namesz, descsz, type, then name and desc each
// padded to 4 bytes) for one with the given owner and type.
func hasNote(b []byte, bo binary.ByteOrder, owner string, typ uint32) bool {
	align := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(b) >= 12 {
		namesz := uint64(bo.Uint32(b[0:]))
		descsz := uint64(bo.Uint32(b[4:]))
		t := bo.Uint32(b[8:])
		b = b[12:]
		if align(namesz) > uint64(len(b)) {
			return false
		}
		name := string(bytes.TrimRight(b[:namesz], "\x00"))
		b = b[align(namesz):]
		if align(descsz) > uint64(len(b)) {
			return name == owner && t == typ && descsz <= uint64(len(b))
		}
		b = b[align(descsz):]
		if name == owner && t == typ {
			return true
		}
	}
	return false
}

// versionFromBzImage returns the kernel release in a bzImage's version
// string (e.g. "6.1.0-56-amd64" from "6.1.0-56-amd64 (debian-kernel@...) #1
// SMP ..."), or "" if the header has none.
func versionFromBzImage(bz []byte) string {
	if len(bz) < minHeaderLen || string(bz[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return ""
	}
	ptr := int(binary.LittleEndian.Uint16(bz[offKernelVersion:]))
	if ptr == 0 || 0x200+ptr >= len(bz) {
		return ""
	}
	s := bz[0x200+ptr:]
	if i := bytes.IndexAny(s, " \x00"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 256 {
		return ""
	}
	return string(s)
}
