package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Ethernet framing.
const (
	// headerLen is an Ethernet header: destination, source, EtherType.
	headerLen = 14
	// tagLen is one 802.1Q (or 802.1ad) tag.
	tagLen = 4
	// maxTags is how many stacked VLAN tags get room beyond the MTU: two
	// cover QinQ, and a guest's 802.1Q sub-interface with the parent's MTU
	// sends frames one tag longer than the MTU allows untagged.
	maxTags = 2
)

// Stream framing, as QEMU's -netdev stream (and the older -netdev socket)
// speaks it: each frame is preceded by its length as a 4-byte big-endian
// integer, with no other header.
const (
	prefixLen = 4
	// maxStreamFrame is QEMU's NET_BUFSIZE (4096 + 65536): QEMU never sends
	// more and drops the connection when it is sent more, so a larger length
	// prefix means the stream is out of step and cannot be trusted again.
	maxStreamFrame = 69632
	// readBufSize holds the largest frame with its prefix whole, and lets
	// one read pick up many small frames at once, which is where the stream
	// framing beats one datagram per frame.
	readBufSize = 128 << 10
	// writeBatch bounds the bytes of frames written to QEMU with one write;
	// QEMU reads at most NET_BUFSIZE at a time, so more gains nothing.
	writeBatch = 64 << 10
)

// errBadLength says a length prefix exceeds maxStreamFrame.
var errBadLength = errors.New("length prefix beyond any frame")

// frameReader splits a byte stream into length-prefixed frames.
type frameReader struct {
	r   io.Reader
	buf []byte
	// buf[start:end] is read but not yet returned.
	start, end int
	err        error
	// empty counts reads in a row that returned nothing and no error.
	empty int
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: r, buf: make([]byte, readBufSize)}
}

// next returns the next frame; it stays valid until the following call. At
// the end of the stream it returns io.EOF when the stream ended between two
// frames and io.ErrUnexpectedEOF when it ended inside one (a peer that went
// away mid-frame). A length prefix beyond maxStreamFrame returns an error
// wrapping errBadLength; the reader is useless after any error.
func (fr *frameReader) next() ([]byte, error) {
	for {
		avail := fr.end - fr.start
		need := prefixLen
		if avail >= prefixLen {
			n := binary.BigEndian.Uint32(fr.buf[fr.start:])
			if n > maxStreamFrame {
				fr.err = fmt.Errorf("%w: %d bytes, at most %d", errBadLength, n, maxStreamFrame)
				return nil, fr.err
			}
			need = prefixLen + int(n)
			if avail >= need {
				f := fr.buf[fr.start+prefixLen : fr.start+need : fr.start+need]
				fr.start += need
				return f, nil
			}
		}
		if fr.err != nil {
			if fr.err == io.EOF && avail > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, fr.err
		}
		// Make room for the whole frame: the buffer holds any legal one.
		if len(fr.buf)-fr.start < need {
			copy(fr.buf, fr.buf[fr.start:fr.end])
			fr.end -= fr.start
			fr.start = 0
		}
		if fr.start == fr.end {
			fr.start, fr.end = 0, 0
		}
		n, err := fr.r.Read(fr.buf[fr.end:])
		fr.end += n
		switch {
		case err != nil:
			fr.err = err
		case n > 0:
			fr.empty = 0
		default:
			// A reader that keeps returning neither bytes nor an error
			// would spin here forever; give up as bufio.Reader does.
			if fr.empty++; fr.empty >= 100 {
				fr.err = io.ErrNoProgress
			}
		}
	}
}

// ready reports whether next would return a frame from what is buffered,
// without reading.
func (fr *frameReader) ready() bool {
	avail := fr.end - fr.start
	return avail >= prefixLen && avail >= prefixLen+int(binary.BigEndian.Uint32(fr.buf[fr.start:]))
}

// appendFrame appends frame to b with its length prefix.
func appendFrame(b, frame []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)))
	return append(b, frame...)
}

// vlanTags counts the 802.1Q/802.1ad tags after the source address.
func vlanTags(frame []byte) int {
	n := 0
	for off := 12; off+tagLen <= len(frame); off += tagLen {
		switch binary.BigEndian.Uint16(frame[off:]) {
		case 0x8100, 0x88a8, 0x9100:
			n++
		default:
			return n
		}
	}
	return n
}

// isGroup reports whether a MAC address is a broadcast or multicast one
// (the I/G bit).
func isGroup(mac []byte) bool { return mac[0]&1 != 0 }
