package network

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureFlushEvery bounds what a crash of the test process can lose of a
// capture: a buffered capture is flushed this often while frames flow.
const captureFlushEvery = 200 * time.Millisecond

// captureSnaplen is libpcap's default; no frame here comes near it.
const captureSnaplen = 262144

// capture writes a pcap file of frames, nanosecond timestamps, Ethernet
// link type: what Wireshark and tshark read.
type capture struct {
	mu    sync.Mutex
	bw    *bufio.Writer
	pw    *pcapgo.Writer
	dirty bool
	err   error
}

func newCapture(w io.Writer) (*capture, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(captureSnaplen, layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	return &capture{bw: bw, pw: pw}, nil
}

// write records one frame; after the first error it records nothing more
// and reports that error from flush.
func (c *capture) write(frame []byte, ts time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(frame), Length: len(frame)}
	if err := c.pw.WritePacket(ci, frame); err != nil {
		c.err = fmt.Errorf("pcap write: %w", err)
		return
	}
	c.dirty = true
}

// flush writes out what is buffered and returns the first error seen.
func (c *capture) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.dirty {
		if err := c.bw.Flush(); err != nil {
			c.err = fmt.Errorf("pcap flush: %w", err)
		}
		c.dirty = false
	}
	return c.err
}
