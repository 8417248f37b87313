package network

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestFrameReader(t *testing.T) {
	f1, f2 := bytes.Repeat([]byte{1}, 60), bytes.Repeat([]byte{2}, maxStreamFrame)
	for _, tc := range []struct {
		name   string
		in     []byte
		frames [][]byte
		err    error
	}{
		{"empty", nil, nil, io.EOF},
		{"one", prefixed(f1), [][]byte{f1}, io.EOF},
		{"two with the largest", prefixed(f1, f2), [][]byte{f1, f2}, io.EOF},
		{"zero length", prefixed(nil, f1), [][]byte{{}, f1}, io.EOF},
		{"cut in a prefix", append(prefixed(f1), 0, 0, 1), [][]byte{f1}, io.ErrUnexpectedEOF},
		{"cut in a frame", append(prefixed(f1), prefixed(f1)[:10]...), [][]byte{f1}, io.ErrUnexpectedEOF},
		{"bad length", binary.BigEndian.AppendUint32(prefixed(f1), maxStreamFrame+1), [][]byte{f1}, errBadLength},
	} {
		for _, mode := range []string{"whole", "byte by byte"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(tc.in)
				if mode != "whole" {
					r = iotest.OneByteReader(r)
				}
				fr := newFrameReader(r)
				for i, want := range tc.frames {
					got, err := fr.next()
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("frame %d: got %d bytes, %v; want %d bytes", i, len(got), err, len(want))
					}
				}
				if _, err := fr.next(); !errors.Is(err, tc.err) {
					t.Fatalf("at the end: got %v, want %v", err, tc.err)
				}
			})
		}
	}
}

// FuzzReadFrame feeds the frame reader arbitrary streams: it must never
// panic, return a frame longer than any QEMU sends, or lose step with the
// stream.
func FuzzReadFrame(f *testing.F) {
	f.Add(prefixed(mkFrame(broadcast, macOf(1), 1, 60)))
	f.Add(append(prefixed(mkFrame(broadcast, macOf(1), 1, 60)), 0, 0, 0, 9, 1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := newFrameReader(iotest.HalfReader(bytes.NewReader(data)))
		off := 0
		for {
			frame, err := fr.next()
			if err != nil {
				switch {
				case err == io.EOF:
					if off != len(data) {
						t.Fatalf("EOF at %d of %d bytes", off, len(data))
					}
				case errors.Is(err, io.ErrUnexpectedEOF):
					if off >= len(data) {
						t.Fatalf("unexpected EOF at %d of %d bytes", off, len(data))
					}
					if rest := len(data) - off; rest >= prefixLen &&
						rest >= prefixLen+int(binary.BigEndian.Uint32(data[off:])) {
						t.Fatalf("unexpected EOF with a whole frame left")
					}
				case errors.Is(err, errBadLength):
					if n := binary.BigEndian.Uint32(data[off:]); n <= maxStreamFrame {
						t.Fatalf("bad length for a prefix of %d", n)
					}
				default:
					t.Fatalf("error: %v", err)
				}
				return
			}
			if len(frame) > maxStreamFrame {
				t.Fatalf("frame of %d bytes", len(frame))
			}
			if n := int(binary.BigEndian.Uint32(data[off:])); n != len(frame) ||
				!bytes.Equal(frame, data[off+prefixLen:off+prefixLen+n]) {
				t.Fatalf("frame at %d does not match the stream", off)
			}
			off += prefixLen + len(frame)
		}
	})
}
