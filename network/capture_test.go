package network

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestCapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.pcap")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	s, err := New(Config{Name: "cap", Capture: file})
	if err != nil {
		t.Fatal(err)
	}
	hs := hostPorts(t, s, "a", "b")
	a, b := hs[0], hs[1]
	if err := s.SetImpairment(b.ID(), Impairment{LossPercent: 100}); err != nil {
		t.Fatal(err)
	}
	tagged := mkFrame(broadcast, macOf(1), 3, 64)
	tagged = append(tagged[:12:12], append([]byte{0x81, 0x00, 0x00, 0x0a}, tagged[12:]...)...)
	sent := [][]byte{
		mkFrame(broadcast, macOf(1), 1, 60),
		mkFrame(macOf(1), macOf(2), 2, 1514), // from b: lost, still captured
		tagged,
		{1, 2, 3}, // malformed: captured as it came
	}
	write(t, a, sent[0])
	write(t, b, sent[1])
	write(t, a, sent[2])
	write(t, a, sent[3])
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	r, err := pcapgo.NewReader(mustOpen(t, path))
	if err != nil {
		t.Fatalf("pcap reader: %v", err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type: got %v, want Ethernet", r.LinkType())
	}
	var last int64
	for i, want := range sent {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want) || ci.Length != len(want) {
			t.Errorf("packet %d: got %x (length %d), want %x", i, data, ci.Length, want)
		}
		if ts := ci.Timestamp.UnixNano(); ts < last || ts == 0 {
			t.Errorf("packet %d: timestamp %v not after the last one", i, ci.Timestamp)
		} else {
			last = ts
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("after the last packet: got %v, want EOF", err)
	}

	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Log("tshark not installed (apt-get install tshark): not checked with it")
		return
	}
	out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "frame.len", "-e", "eth.src", "-e", "vlan.id").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	var lines []string
	for l := range strings.Lines(string(out)) {
		// tshark warns when run as root; the fields lines start with a digit.
		if l[0] >= '0' && l[0] <= '9' {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	want := []string{"60\t52:54:00:12:01:01", "1514\t52:54:00:12:01:02", "68\t52:54:00:12:01:01\t10", "3"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("tshark -r: got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrPermission }

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, os.ErrPermission
	}
	f.n -= len(p)
	return len(p), nil
}

func TestCaptureError(t *testing.T) {
	if _, err := New(Config{Capture: failWriter{}}); err == nil {
		t.Fatal("New with a failing capture writer: got no error")
	}
	// A capture that fails later costs no frame, and Close says so.
	s, err := New(Config{Capture: &failAfter{n: 24}}) // the pcap file header
	if err != nil {
		t.Fatal(err)
	}
	hs := hostPorts(t, s, "a", "b")
	write(t, hs[0], mkFrame(broadcast, macOf(1), 1, 60))
	read(t, hs[1])
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "pcap") {
		t.Fatalf("Close after a failed capture: got %v, want a pcap error", err)
	}
}

// TestCapturePath: a switch given a path makes the file, fills it, and
// closes it on Close; a path that cannot be made fails New.
func TestCapturePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.pcap")
	s, err := New(Config{Name: "cap", CapturePath: path})
	if err != nil {
		t.Fatal(err)
	}
	hs := hostPorts(t, s, "a", "b")
	write(t, hs[0], mkFrame(broadcast, macOf(1), 1, 60))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r, err := pcapgo.NewReader(mustOpen(t, path))
	if err != nil {
		t.Fatalf("pcap reader: %v", err)
	}
	if _, _, err := r.ReadPacketData(); err != nil {
		t.Errorf("the frame: %v", err)
	}
	if _, err := New(Config{Name: "cap", CapturePath: filepath.Join(path, "not-a-dir", "x.pcap")}); err == nil || !strings.Contains(err.Error(), "capture") {
		t.Errorf("New with a path that cannot be made: %v", err)
	}
}
