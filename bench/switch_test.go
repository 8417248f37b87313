package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/testenv"
	"github.com/shakedown-dev/shakedown/network"
)

const (
	// switchWindow bounds the frames in flight while streaming, the same
	// for both switches: well under shakedown's egress queue and
	// vde_switch's socket buffers, so that neither drops.
	switchWindow = 64
	// latencySamples is the most frames sent one at a time for the
	// latency percentiles.
	latencySamples = 5000
	// frameTimeout fails a benchmark whose frame is lost, rather than
	// hanging it.
	frameTimeout = 5 * time.Second
	// vdeStartTimeout bounds vde_switch's start, to its control socket.
	vdeStartTimeout = 10 * time.Second
)

// endpoint is one side of a switch as a QEMU NIC sees it: a stream socket
// carrying frames, each with a length prefix of prefixLen bytes, big-endian.
type endpoint struct {
	conn      net.Conn
	r         *bufio.Reader
	prefixLen int
	buf       []byte
}

func newEndpoint(conn net.Conn, prefixLen int) *endpoint {
	return &endpoint{conn: conn, r: bufio.NewReaderSize(conn, 256<<10), prefixLen: prefixLen}
}

func (e *endpoint) write(frame []byte) error {
	e.buf = e.buf[:0]
	if e.prefixLen == 4 {
		e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(frame)))
	} else {
		e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(len(frame)))
	}
	e.buf = append(e.buf, frame...)
	_, err := e.conn.Write(e.buf)
	return err
}

// read returns the next frame's length and its first 12 bytes of payload
// (after the 14-byte header) in p.
func (e *endpoint) read(p []byte) (int, error) {
	e.conn.SetReadDeadline(time.Now().Add(frameTimeout))
	var hdr [4]byte
	if _, err := io.ReadFull(e.r, hdr[:e.prefixLen]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:2]))
	if e.prefixLen == 4 {
		n = int(binary.BigEndian.Uint32(hdr[:4]))
	}
	frame, err := e.r.Peek(n)
	if err != nil {
		return 0, err
	}
	copy(p, frame[14:])
	e.r.Discard(n)
	return n, nil
}

// switchPair is a switch with two endpoints plugged in.
type switchPair struct {
	a, b *endpoint
}

// BenchmarkSwitch sends frames between two host-side endpoints through
// shakedown's switch and through Debian's vde_switch (the NixOS driver's),
// both reached as QEMU reaches them, over stream sockets: shakedown's port
// speaks -netdev stream's 4-byte length prefix on a socketpair; vde_switch
// is reached through a vde_plug process per endpoint, whose stdin and
// stdout carry frames with a 2-byte big-endian length prefix. It reports:
//   - frames/s: b.N frames streamed from one endpoint to the other, at
//     most switchWindow in flight; any frame lost fails the benchmark;
//   - p50-us, p99-us: one-way latency of frames sent one at a time.
func BenchmarkSwitch(b *testing.B) {
	kinds := []struct {
		name  string
		setup func(b *testing.B) switchPair
	}{
		{"shakedown", shakedownPair},
		{"vde", vdePair},
	}
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			for _, size := range []int{64, 1500} {
				b.Run(fmt.Sprint(size), func(b *testing.B) {
					p := k.setup(b)
					benchPair(b, p, size)
				})
			}
		})
	}
}

func benchPair(b *testing.B, p switchPair, size int) {
	macA := []byte{0x52, 0x54, 0x00, 0xbe, 0x00, 0x01}
	macB := []byte{0x52, 0x54, 0x00, 0xbe, 0x00, 0x02}
	// Both switches learn both MACs, so that frames are unicast.
	learn := func(from, to *endpoint, src []byte) {
		if err := from.write(benchFrame(broadcastMAC, src, 60, 0)); err != nil {
			b.Fatal(err)
		}
		if _, err := to.read(make([]byte, 12)); err != nil {
			b.Fatalf("learning frame: %v", err)
		}
	}
	learn(p.a, p.b, macA)
	learn(p.b, p.a, macB)

	frame := benchFrame(macB, macA, size, 0)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	if err := stream(p, frame, b.N); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	n := min(b.N, latencySamples)
	lat := make([]time.Duration, 0, n)
	got := make([]byte, 12)
	for i := range n {
		began := time.Now()
		binary.BigEndian.PutUint64(frame[14:], uint64(i))
		if err := p.a.write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := p.b.read(got); err != nil {
			b.Fatalf("latency frame %d: %v", i, err)
		}
		lat = append(lat, time.Since(began))
		if seq := binary.BigEndian.Uint64(got); seq != uint64(i) {
			b.Fatalf("got frame %d, want %d", seq, i)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(us(percentile(lat, 50)), "p50-us")
	b.ReportMetric(us(percentile(lat, 99)), "p99-us")
	b.ReportMetric(0, "ns/op")
}

// stream sends n frames from a to b with at most switchWindow in flight and
// checks that all arrive, in order and of the size sent.
func stream(p switchPair, frame []byte, n int) error {
	credits := make(chan struct{}, switchWindow)
	errc := make(chan error, 1)
	go func() {
		got := make([]byte, 12)
		for i := range n {
			k, err := p.b.read(got)
			if err != nil {
				errc <- fmt.Errorf("frame %d of %d: %w (lost?)", i, n, err)
				return
			}
			if seq := binary.BigEndian.Uint64(got); seq != uint64(i) || k != len(frame) {
				errc <- fmt.Errorf("got frame %d of %d bytes, want %d of %d", seq, k, i, len(frame))
				return
			}
			<-credits
		}
		errc <- nil
	}()
	buf := slices.Clone(frame)
	for i := range n {
		select {
		case credits <- struct{}{}:
		case err := <-errc:
			return err
		}
		binary.BigEndian.PutUint64(buf[14:], uint64(i))
		if err := p.a.write(buf); err != nil {
			return err
		}
	}
	return <-errc
}

var broadcastMAC = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// benchFrame is an Ethernet frame of size bytes with a local experimental
// EtherType and a sequence number at the start of its payload.
func benchFrame(dst, src []byte, size int, seq uint64) []byte {
	f := make([]byte, size)
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x88b5)
	binary.BigEndian.PutUint64(f[14:], seq)
	return f
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// shakedownPair is a shakedown switch with two ports, each with a Go
// endpoint on the far end of its socketpair, where QEMU would be.
func shakedownPair(b *testing.B) switchPair {
	sw, err := network.New(network.Config{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sw.Close() })
	var eps [2]*endpoint
	for i := range eps {
		port, err := sw.AddPort(fmt.Sprint("p", i))
		if err != nil {
			b.Fatal(err)
		}
		conn, err := net.FileConn(port.File())
		if err != nil {
			b.Fatal(err)
		}
		port.File().Close()
		b.Cleanup(func() { conn.Close() })
		eps[i] = newEndpoint(conn, 4)
	}
	b.Cleanup(func() {
		if d := sw.Counters().Drops; d.Total() != 0 {
			b.Errorf("shakedown switch dropped frames without impairments: %+v", d)
		}
	})
	return switchPair{eps[0], eps[1]}
}

// needVDE skips (or fails, in CI) a benchmark when vde2's tools are absent.
func needVDE(b *testing.B) {
	b.Helper()
	for _, tool := range []string{"vde_switch", "vde_plug"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found: apt-get install vde2 to compare with vde_switch", tool)
			if testenv.InCI() {
				b.Fatal(msg + " (CI=true)")
			}
			b.Skip(msg)
		}
	}
}

// startVDESwitch runs vde_switch in the foreground with its control
// socket directory under a temporary directory, and stops it when b ends.
func startVDESwitch(b *testing.B) (sock string, pid int) {
	b.Helper()
	needVDE(b)
	sock = filepath.Join(b.TempDir(), "switch")
	cmd := exec.Command("vde_switch", "-s", sock)
	// Its management console reads stdin: keep it open and idle.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		stdin.Close()
	})
	deadline := time.Now().Add(vdeStartTimeout)
	for {
		if _, err := os.Stat(filepath.Join(sock, "ctl")); err == nil {
			return sock, cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			b.Fatalf("vde_switch -s %s: no control socket after %v", sock, vdeStartTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// vdePair is a vde_switch with two vde_plug processes plugged in, each
// with its stdin and stdout on a socketpair whose other end is a Go
// endpoint.
func vdePair(b *testing.B) switchPair {
	sock, _ := startVDESwitch(b)
	var eps [2]*endpoint
	for i := range eps {
		conn, err := startVDEPlug(b, sock)
		if err != nil {
			b.Fatal(err)
		}
		eps[i] = newEndpoint(conn, 2)
	}
	return switchPair{eps[0], eps[1]}
}

// startVDEPlug runs vde_plug on the switch at sock and returns the stream
// of its frames.
func startVDEPlug(b *testing.B, sock string) (net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	theirs := os.NewFile(uintptr(fds[1]), "vde_plug stdio")
	ours := os.NewFile(uintptr(fds[0]), "vde_plug peer")
	defer ours.Close()
	defer theirs.Close()
	cmd := exec.Command("vde_plug", sock)
	cmd.Stdin, cmd.Stdout = theirs, theirs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	conn, err := net.FileConn(ours)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	b.Cleanup(func() {
		conn.Close()
		cmd.Process.Kill()
		if err := cmd.Wait(); err != nil && !isKilled(err) {
			b.Logf("vde_plug: %v", err)
		}
	})
	// vde_plug connects to the switch after it starts; a frame sent
	// before would be lost, so wait until the switch lists the port.
	time.Sleep(200 * time.Millisecond)
	return conn, nil
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
