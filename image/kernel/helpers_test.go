package kernel

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"testing"
)

// tinyELF returns a minimal x86-64 ELF with one PT_NOTE segment holding a
// note of the given owner and type, like a kernel's .notes segment.
func tinyELF(owner string, noteType uint32) []byte {
	var note bytes.Buffer
	name := append([]byte(owner), 0)
	binary.Write(&note, binary.LittleEndian, []uint32{uint32(len(name)), 4, noteType})
	note.Write(name)
	for note.Len()%4 != 0 {
		note.WriteByte(0)
	}
	binary.Write(&note, binary.LittleEndian, uint32(0x01000000)) // entry point

	const ehsize, phsize = 64, 56
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: 0x1000000, Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: 1,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	prog := elf.Prog64{Type: uint32(elf.PT_NOTE), Off: ehsize + phsize, Filesz: uint64(note.Len()), Memsz: uint64(note.Len()), Align: 4}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, hdr)
	binary.Write(&out, binary.LittleEndian, prog)
	out.Write(note.Bytes())
	return out.Bytes()
}

// pvhELF is a tiny ELF with the PVH entry note.
func pvhELF() []byte { return tinyELF("Xen", xenElfnotePhys32Entry) }

// bzImageOptions shape a synthetic bzImage.
type bzImageOptions struct {
	setupSects    byte   // 0 means 4, as in the boot protocol
	protocol      uint16 // 0 means 2.15
	payloadOffset uint32
	version       string // kernel version string, "" for none
}

// makeBzImage wraps payload in an x86 boot header as the kernel build does:
// setup sectors, then the protected-mode code holding the payload at
// payload_offset.
func makeBzImage(payload []byte, o bzImageOptions) []byte {
	sects := int(o.setupSects)
	if sects == 0 {
		sects = 4
	}
	if o.protocol == 0 {
		o.protocol = 0x020f
	}
	setup := make([]byte, (sects+1)*512)
	setup[offSetupSects] = o.setupSects
	copy(setup[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(setup[offVersion:], o.protocol)
	binary.LittleEndian.PutUint32(setup[offPayloadOffset:], o.payloadOffset)
	binary.LittleEndian.PutUint32(setup[offPayloadLength:], uint32(len(payload)))
	if o.version != "" {
		const at = 0x300
		copy(setup[at:], o.version+" (test@example.org) #1 SMP\x00")
		binary.LittleEndian.PutUint16(setup[offKernelVersion:], at-0x200)
	}
	out := append(setup, make([]byte, o.payloadOffset)...)
	out = append(out, payload...)
	return append(out, make([]byte, 100)...) // trailing code and padding
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// withSize appends the uncompressed size as the kernel's size_append does.
func withSize(compressed []byte, size int) []byte {
	return binary.LittleEndian.AppendUint32(append([]byte(nil), compressed...), uint32(size))
}

// makeKO returns a minimal relocatable ELF with a .modinfo section holding
// the given key=value strings, which is all Depmod reads of a module.
func makeKO(modinfo ...string) []byte {
	var info bytes.Buffer
	for _, kv := range modinfo {
		info.WriteString(kv)
		info.WriteByte(0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shsize = 64, 64
	infoOff := uint64(ehsize)
	strOff := infoOff + uint64(info.Len())
	shOff := (strOff + uint64(len(shstrtab)) + 7) &^ 7
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shsize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	secs := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: infoOff, Size: uint64(info.Len()), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstrtab)), Addralign: 1},
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, hdr)
	out.Write(info.Bytes())
	out.Write(shstrtab)
	for uint64(out.Len()) < shOff {
		out.WriteByte(0)
	}
	binary.Write(&out, binary.LittleEndian, secs)
	return out.Bytes()
}

// debFile is one regular file or directory in a synthetic .deb.
type debFile struct {
	name string // "./boot/vmlinuz-...", directories end in "/"
	body []byte
}

// makeDeb builds a .deb (ar of debian-binary, control.tar.gz, data.tar.gz).
func makeDeb(t testing.TB, files []debFile) []byte {
	t.Helper()
	tarGz := func(files []debFile) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, f := range files {
			h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
			if f.name[len(f.name)-1] == '/' {
				h.Mode, h.Size, h.Typeflag = 0o755, 0, tar.TypeDir
			}
			tw.WriteHeader(h)
			tw.Write(f.body)
		}
		tw.Close()
		return gzipBytes(t, b.Bytes())
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	member := func(name string, body []byte) {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(body))
		ar.Write(body)
		if len(body)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	member("debian-binary", []byte("2.0\n"))
	member("control.tar.gz", tarGz([]debFile{{"./control", []byte("Package: test\nVersion: 1\nArchitecture: all\n")}}))
	member("data.tar.gz", tarGz(files))
	return ar.Bytes()
}
