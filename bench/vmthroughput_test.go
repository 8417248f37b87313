package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

const (
	// throughputBlocks of 64 KiB (64 MiB) are fetched per iteration: a few
	// seconds under TCG, so that the agent's round trip around the timed
	// command (a few milliseconds) is noise.
	throughputBlocks = 1024
)

// BenchmarkVMThroughput reports the TCP throughput between two machines
// under the accelerator in use (TCG here) as Mbit/s: through a shakedown
// network, and through Debian's vde_switch with each NIC on -netdev vde,
// as the NixOS test driver wires its VLANs. The client fetches 64 MiB
// from busybox httpd on the server over HTTP.
//
// All four machines boot once, together, and stay up through both
// sub-benchmarks, which run back to back: under TCG the rate follows the
// CPU the host leaves the guests, which drifts by tens of percent over
// minutes, and two boots between the measurements would widen the gap.
func BenchmarkVMThroughput(b *testing.B) {
	testenv.NeedVM(b)
	sock, vdePID := startVDESwitch(b)
	tb := shakedown.New(b, shakedown.Options{QuietConsole: true})
	tb.Network("lan", shakedown.NetworkOptions{})
	// Numbers in name order: client 1, server 2.
	client := tb.Machine("client", shakedown.MachineConfig{Networks: []string{"lan"}})
	server := tb.Machine("server", shakedown.MachineConfig{Networks: []string{"lan"}})
	vdeMachine := func(name string, host int) *shakedown.Machine {
		// The NIC is not one of the testbed's networks, so its driver is
		// asked for by name.
		return tb.Machine(name, shakedown.MachineConfig{Modules: []string{"virtio_net"}, QEMUArgs: []string{
			"-netdev", "vde,id=vde0,sock=" + sock,
			"-device", fmt.Sprintf("virtio-net-pci,netdev=vde0,mac=52:54:00:be:01:%02x", host),
		}})
	}
	vclient, vserver := vdeMachine("vde-client", 1), vdeMachine("vde-server", 2)
	tb.StartAll()
	vclient.Succeed("ip link set eth0 up && ip addr add 192.168.1.1/24 dev eth0")
	vserver.Succeed("ip link set eth0 up && ip addr add 192.168.1.2/24 dev eth0")
	b.Run("shakedown", func(b *testing.B) {
		// The switch runs in this process: its CPU time is this process's,
		// an upper bound (the agent clients idle meanwhile).
		throughput(b, client, server, "192.168.1.2", selfCPU)
	})
	b.Run("vde", func(b *testing.B) {
		throughput(b, vclient, vserver, "192.168.1.2", func() (time.Duration, error) { return procCPU(vdePID) })
	})
}

// throughput fetches a file of throughputBlocks of 64 KiB from busybox
// httpd on server (at serverIP) to client, b.N times, checks its size and
// reports the rate, and the switch's CPU time (read by cpu) per MiB
// carried as switch-cpu-ms/MiB: on a host whose cores the guests' TCG
// threads saturate, that is what the switch takes from them, and it
// varies far less from run to run than the rate does. (busybox nc as a sender stops early at its input's
// end, and wget's -T crashes Debian 12's static busybox: neither is used.)
func throughput(b *testing.B, client, server *shakedown.Machine, serverIP string, cpu func() (time.Duration, error)) {
	b.Helper()
	// The benchmark function runs more than once (b.N = 1 first): the
	// file and the server are made once.
	server.Succeed(fmt.Sprintf("test -f /srv/big || { mkdir -p /srv && dd if=/dev/zero of=/srv/big bs=64k count=%d 2>/dev/null; }; pidof httpd >/dev/null || httpd -p 80 -h /srv", throughputBlocks))
	client.WithTimeout(time.Minute).WaitUntilSucceeds("ping -c 1 -W 2 " + serverIP)
	fetch := "wget -q -O- http://" + serverIP + "/big | wc -c"
	want := fmt.Sprint(throughputBlocks*64*1024, "\n")
	// The guests' QEMUs, whose CPU time is reported beside the switch's:
	// the two backends (-netdev stream, -netdev vde) cost QEMU
	// differently too.
	var qemuPIDs []int
	for _, m := range []*shakedown.Machine{client, server} {
		pid, err := qemuPID(m.Name())
		if err != nil {
			b.Fatal(err)
		}
		qemuPIDs = append(qemuPIDs, pid)
	}
	qemuCPU := func() time.Duration {
		var sum time.Duration
		for _, pid := range qemuPIDs {
			d, err := procCPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			sum += d
		}
		return sum
	}
	// One fetch unmeasured: the server's file into its page cache, both
	// guests' TCP windows and the switch's MAC table warmed up.
	if got := client.WithTimeout(2 * time.Minute).Succeed(fetch); got != want {
		b.Fatalf("warm-up fetch: got %q bytes, want %q", got, want)
	}
	var elapsed, used, qemuUsed time.Duration
	b.ResetTimer()
	for range b.N {
		cpu0, err := cpu()
		if err != nil {
			b.Fatal(err)
		}
		q0 := qemuCPU()
		began := time.Now()
		got := client.WithTimeout(2 * time.Minute).Succeed(fetch)
		elapsed += time.Since(began)
		cpu1, err := cpu()
		if err != nil {
			b.Fatal(err)
		}
		used += cpu1 - cpu0
		qemuUsed += qemuCPU() - q0
		if got != want {
			b.Fatalf("got %q bytes, want %q", got, want)
		}
	}
	b.StopTimer()
	mib := float64(b.N) * throughputBlocks / 16
	b.ReportMetric(mib*8*1.048576/elapsed.Seconds(), "Mbit/s")
	b.ReportMetric(float64(used.Microseconds())/1e3/mib, "switch-cpu-ms/MiB")
	b.ReportMetric(float64(qemuUsed.Microseconds())/1e3/mib, "qemu-cpu-ms/MiB")
}
