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
	// fetchTimeout bounds one fetch: 64 MiB at a tenth of the usual rate
	// under TCG.
	fetchTimeout = 2 * time.Minute
)

// BenchmarkVMThroughput reports the TCP throughput between two machines
// under the accelerator in use (TCG here) as Mbit/s: through a shakedown
// network, and through Debian's vde_switch with each NIC on -netdev vde,
// as the NixOS test driver wires its VLANs. The client fetches 64 MiB
// from busybox httpd on the server over HTTP.
//
// All four machines boot once, together, and stay up throughout. Under
// TCG the rate follows the CPU the host leaves the guests, which drifts by
// tens of percent within a minute, so two blocks of fetches measured one
// after the other differ by more than the switches do. Each iteration
// therefore fetches through both switches, in alternating order, and
// times its own: besides its Mbit/s, each sub-benchmark reports its rate
// over the other's in the same iterations (x-vde, x-shakedown), the
// figure that drift cancels out of.
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
	// The switch runs in this process: its CPU time is this process's, an
	// upper bound (the agent clients idle meanwhile).
	ours := newTransfer(b, "shakedown", client, server, selfCPU)
	vde := newTransfer(b, "vde", vclient, vserver, func() (time.Duration, error) { return procCPU(vdePID) })
	b.Run("shakedown", func(b *testing.B) { throughput(b, ours, vde) })
	b.Run("vde", func(b *testing.B) { throughput(b, vde, ours) })
}

// transfer is a client and server pair on one switch, ready to fetch.
type transfer struct {
	name           string
	client, server *shakedown.Machine
	// switchCPU reads the switch's CPU time so far.
	switchCPU func() (time.Duration, error)
	// qemuPIDs are the client's and server's QEMUs, whose CPU time is
	// reported beside the switch's: the two backends (-netdev stream,
	// -netdev vde) cost QEMU differently too.
	qemuPIDs []int
}

// newTransfer serves the file from server (at 192.168.1.2 on both
// switches) and fetches it once, unmeasured: the server's file into its
// page cache, both guests' TCP windows and the switch's MAC table warmed
// up. (busybox nc as a sender stops early at its input's end, and wget's
// -T crashes Debian 12's static busybox: neither is used.)
func newTransfer(b *testing.B, name string, client, server *shakedown.Machine, switchCPU func() (time.Duration, error)) *transfer {
	b.Helper()
	t := &transfer{name: name, client: client, server: server, switchCPU: switchCPU}
	server.Succeed(fmt.Sprintf("mkdir -p /srv && dd if=/dev/zero of=/srv/big bs=64k count=%d 2>/dev/null && httpd -p 80 -h /srv", throughputBlocks))
	client.WithTimeout(time.Minute).WaitUntilSucceeds("ping -c 1 -W 2 192.168.1.2")
	for _, m := range []*shakedown.Machine{client, server} {
		pid, err := qemuPID(m.Name())
		if err != nil {
			b.Fatal(err)
		}
		t.qemuPIDs = append(t.qemuPIDs, pid)
	}
	t.fetch(b)
	return t
}

// fetch fetches the file once, checks its size and returns how long it
// took.
func (t *transfer) fetch(b *testing.B) time.Duration {
	b.Helper()
	want := fmt.Sprint(throughputBlocks*64*1024, "\n")
	began := time.Now()
	got := t.client.WithTimeout(fetchTimeout).Succeed("wget -q -O- http://192.168.1.2/big | wc -c")
	took := time.Since(began)
	if got != want {
		b.Fatalf("%s: got %q bytes, want %q", t.name, got, want)
	}
	return took
}

// qemuCPU returns the CPU time the pair's QEMUs have used.
func (t *transfer) qemuCPU(b *testing.B) time.Duration {
	var sum time.Duration
	for _, pid := range t.qemuPIDs {
		d, err := procCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		sum += d
	}
	return sum
}

// throughput fetches through own b.N times, each time next to a fetch
// through other (before it in odd iterations, after it in even ones), and
// reports own's rate, its rate over other's, and own's switch and QEMU
// CPU time per MiB carried: on a host whose cores the guests' TCG threads
// saturate, the CPU the switch uses is what it takes from them.
func throughput(b *testing.B, own, other *transfer) {
	var elapsed, otherElapsed, switchUsed, qemuUsed time.Duration
	alongside := func() {
		b.StopTimer()
		otherElapsed += other.fetch(b)
		b.StartTimer()
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 1 {
			alongside()
		}
		cpu0, err := own.switchCPU()
		if err != nil {
			b.Fatal(err)
		}
		q0 := own.qemuCPU(b)
		elapsed += own.fetch(b)
		cpu1, err := own.switchCPU()
		if err != nil {
			b.Fatal(err)
		}
		switchUsed += cpu1 - cpu0
		qemuUsed += own.qemuCPU(b) - q0
		if i%2 == 0 {
			alongside()
		}
	}
	b.StopTimer()
	mib := float64(b.N) * throughputBlocks / 16
	b.ReportMetric(mib*8*1.048576/elapsed.Seconds(), "Mbit/s")
	// Both carried the same bytes: the ratio of rates is that of times.
	b.ReportMetric(otherElapsed.Seconds()/elapsed.Seconds(), "x-"+other.name)
	b.ReportMetric(float64(switchUsed.Microseconds())/1e3/mib, "switch-cpu-ms/MiB")
	b.ReportMetric(float64(qemuUsed.Microseconds())/1e3/mib, "qemu-cpu-ms/MiB")
}
