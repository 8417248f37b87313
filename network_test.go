package shakedown_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// ping succeeds when from reaches to within two seconds.
const ping = "ping -c 1 -W 2 "

func TestNetwork(t *testing.T) {
	tb := newTestbed(t)
	lan := tb.Network("lan", shakedown.NetworkOptions{Capture: true})
	var ms []*shakedown.Machine
	for _, name := range []string{"a", "b", "c"} {
		ms = append(ms, tb.Machine(name, shakedown.MachineConfig{Networks: []string{"lan"}}))
	}
	a, b, c := ms[0], ms[1], ms[2]
	tb.StartAll()

	t.Run("addresses", func(t *testing.T) {
		a := a.WithT(t)
		got := a.Succeed("ip -o addr show dev eth0 | awk '{print $4}'")
		if !strings.Contains(got, "192.168.1.1/24") || !strings.Contains(got, "2001:db8:1::1/64") {
			t.Errorf("got addresses %q, want 192.168.1.1/24 and 2001:db8:1::1/64", got)
		}
		if got := a.Succeed("cat /sys/class/net/eth0/address"); got != "52:54:00:12:01:01\n" {
			t.Errorf("got MAC %q, want 52:54:00:12:01:01", got)
		}
		if got := a.Succeed("ip route"); strings.Contains(got, "default") {
			t.Errorf("got routes %q, want no default route", got)
		}
		if hosts := a.Succeed("cat /etc/hosts"); !strings.Contains(hosts, "192.168.1.3 c\n") {
			t.Errorf("got /etc/hosts %q, want c at 192.168.1.3", hosts)
		}
	})
	t.Run("ping and tcp", func(t *testing.T) {
		a, b := a.WithT(t), b.WithT(t)
		a.Succeed(ping + "b")
		a.Succeed("ping6 -c 1 -W 2 2001:db8:1::2")
		b.Succeed("nc -ll -p 7000 -e cat >/dev/null 2>&1 &")
		b.WaitForOpenPort(7000)
		if got := a.Succeed("echo over-tcp | nc -w 2 b 7000"); got != "over-tcp\n" {
			t.Errorf("got %q over TCP, want over-tcp", got)
		}
	})
	t.Run("block", func(t *testing.T) {
		a := a.WithT(t)
		a.Block()
		a.WaitUntilSucceeds("grep -qx 0 /sys/class/net/eth0/carrier")
		a.Fail(ping + "b")
		a.Unblock()
		a.WaitUntilSucceeds("grep -qx 1 /sys/class/net/eth0/carrier")
		a.WaitUntilSucceeds(ping + "b")
		msg, _ := expectErr(t, func() error { return a.BlockE("wan") })
		if !strings.Contains(msg, `"wan"`) {
			t.Errorf("got %q, want the unknown network named", msg)
		}
	})
	t.Run("partition", func(t *testing.T) {
		a, b, c := a.WithT(t), b.WithT(t), c.WithT(t)
		tb.Partition([]shakedown.Peer{a}, []shakedown.Peer{b, c})
		a.Fail(ping + "b")
		a.Fail(ping + "c")
		b.Succeed(ping + "c")
		tb.Heal()
		// Addresses that failed to resolve during the partition are
		// retried at the kernel's pace: wait, don't expect.
		a.WaitUntilSucceeds(ping + "b")
		a.WaitUntilSucceeds(ping + "c")
	})
	t.Run("impairment", func(t *testing.T) {
		a := a.WithT(t)
		lan.Impair(b, shakedown.Impairment{LossPercent: 100})
		a.Fail(ping + "b")
		lan.Impair(b, shakedown.Impairment{})
		a.WaitUntilSucceeds(ping + "b")
	})
	t.Run("isolation", func(t *testing.T) {
		a := a.WithT(t)
		ln, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		reached := make(chan struct{}, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
				reached <- struct{}{}
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		// The host's loopback, QEMU's user-mode gateway, the host's own
		// interfaces, the internet: none is reachable from the guest.
		targets := []string{"10.0.2.2", "192.168.1.254", "1.1.1.1"}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, ad := range addrs {
				if ipn, ok := ad.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
					targets = append(targets, ipn.IP.String())
				}
			}
		}
		for _, ip := range targets {
			a.Fail(fmt.Sprintf("nc -w 2 %s %d </dev/null", ip, port))
		}
		// Not -T: Debian 12's static busybox wget crashes with it.
		a.Fail("timeout 5 wget -q -O- http://1.1.1.1/")
		select {
		case <-reached:
			t.Error("a guest reached a listener on the host")
		default:
		}
	})
	t.Run("capture", func(t *testing.T) {
		// The switch buffers the capture; the testbed's end flushes it,
		// so read it after a ping and a short wait for the flush.
		a.WithT(t).Succeed(ping + "c; sleep 1.5")
		p := filepath.Join(tb.OutputDir(), "lan.pcap")
		data, err := os.ReadFile(p)
		if err != nil || len(data) < 24 {
			t.Fatalf("got %d bytes %v, want a pcap", len(data), err)
		}
		if magic := binary.LittleEndian.Uint32(data); magic != 0xa1b2c3d4 && magic != 0xa1b23c4d {
			t.Errorf("got magic %#x, want a pcap file", magic)
		}
		if !bytes.Contains(data, []byte{0x52, 0x54, 0x00, 0x12, 0x01, 0x03}) {
			t.Error("capture holds no frame of c's MAC 52:54:00:12:01:03")
		}
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			if testenv.InCI() {
				t.Fatal("tshark not found and CI=true: scripts/setup-debian.sh installs it")
			}
			t.Skip("tshark not found: the capture was not read back with it")
		}
		out, err := exec.Command(tshark, "-r", p, "-Y", "icmp").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "192.168.1.3") {
			t.Errorf("tshark: %v\n%s", err, out)
		}
	})
}

// TestPartitionOneNetwork cuts machines apart on one network while they
// still talk on the other.
func TestPartitionOneNetwork(t *testing.T) {
	tb := newTestbed(t)
	front := tb.Network("front", shakedown.NetworkOptions{})
	tb.Network("back", shakedown.NetworkOptions{})
	cfg := shakedown.MachineConfig{Networks: []string{"front", "back"}}
	x, y := tb.Machine("x", cfg), tb.Machine("y", cfg)
	tb.StartAll()
	// Networks are numbered in name order: back is 1, front 2.
	yFront := fmt.Sprintf("192.168.%d.2", front.Number())
	front.Partition([]shakedown.Peer{x}, []shakedown.Peer{y})
	x.Fail(ping + yFront)
	x.Succeed(ping + "192.168.1.2") // y on back
	front.Heal()
	x.WaitUntilSucceeds(ping + yFront)
}

func TestRouter(t *testing.T) {
	tb := newTestbed(t)
	tb.Network("left", shakedown.NetworkOptions{})
	tb.Network("right", shakedown.NetworkOptions{})
	// Numbers in name order: client 1, router 2, server 3; left 1, right 2.
	client := tb.Machine("client", shakedown.MachineConfig{Networks: []string{"left"}})
	router := tb.Machine("router", shakedown.MachineConfig{Networks: []string{"left", "right"}})
	server := tb.Machine("server", shakedown.MachineConfig{Networks: []string{"right"}})
	tb.StartAll()
	client.Succeed("ip route add 192.168.2.0/24 via 192.168.1.2")
	server.Succeed("ip route add 192.168.1.0/24 via 192.168.2.2")
	// Without forwarding the networks stay apart...
	client.Fail(ping + "192.168.2.3")
	// ...and the router joins them.
	router.Succeed("echo 1 > /proc/sys/net/ipv4/ip_forward")
	client.WaitUntilSucceeds(ping + "192.168.2.3")
	server.Succeed("nc -ll -p 80 -e echo routed >/dev/null 2>&1 &")
	server.WaitForOpenPort(80)
	if got := client.Succeed("nc -w 2 192.168.2.3 80 </dev/null"); got != "routed\n" {
		t.Errorf("got %q through the router, want routed", got)
	}
}
