package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/dnsnet"
)

// dnsperfSeconds is how long each dnsperf run lasts: long enough for a
// few thousand queries under TCG, short enough for four runs an iteration.
const dnsperfSeconds = 3

// BenchmarkDNS measures DNS answers as a guest sees them, from Debian's
// dnsperf in one machine, to the DNS stub (a host on the switch, served
// by the test process) and to Debian's dnsmasq serving the same record
// from another machine on the same network. Each iteration runs both,
// alternating which goes first, and each twice: one query outstanding
// (latency), then 20 (throughput).
//
//	stub-latency-us, dnsmasq-latency-us: dnsperf's average latency, one
//	  query in flight
//	stub-qps, dnsmasq-qps: queries per second with 20 in flight
//	qps-ratio: stub-qps / dnsmasq-qps
func BenchmarkDNS(b *testing.B) {
	testenv.NeedVM(b)
	tb := shakedown.New(b, shakedown.Options{QuietConsole: true})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	s := dnsstub.New(dnsstub.Config{LogLimit: 1})
	b.Cleanup(func() { s.Close() })
	if err := s.AddZone("example.test.", "www A 192.0.2.1"); err != nil {
		b.Fatal(err)
	}
	ns, err := dnsnet.Attach(lan, "ns", s)
	if err != nil {
		b.Fatal(err)
	}
	server := tb.Machine("dnsmasq", shakedown.MachineConfig{Networks: []string{"lan"}, Packages: []string{"dnsmasq-base"},
		// dnsmasq drops root for a user it looks up, and an initramfs
		// machine has no user database of its own.
		Files: []shakedown.File{
			{Guest: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
			{Guest: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		}})
	client := tb.Machine("client", shakedown.MachineConfig{Networks: []string{"lan"}, Packages: []string{"dnsperf"}})
	tb.StartAll()
	server.Succeed(fmt.Sprintf("dnsmasq --pid-file= --log-facility=- --no-resolv --no-hosts --bind-interfaces "+
		"--listen-address=127.0.0.1,%s --host-record=www.example.test,192.0.2.1", server.Addr())) // it daemonises once listening
	server.WaitForOpenPort(53) // on 127.0.0.1, which it also listens on
	client.Succeed("for i in $(seq 100); do echo 'www.example.test A'; done > /tmp/queries")

	targets := []struct {
		name string
		addr string
	}{{"stub", ns.Addr().String()}, {"dnsmasq", server.Addr().String()}}
	sums := map[string]*[2]float64{"stub": {}, "dnsmasq": {}} // latency µs, qps
	b.ResetTimer()
	for i := range b.N {
		for j := range targets {
			t := targets[(i+j)%2] // alternate who goes first
			lat, _ := dnsperf(b, client, t.addr, 1)
			_, qps := dnsperf(b, client, t.addr, 20)
			sums[t.name][0] += lat
			sums[t.name][1] += qps
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(sums["stub"][0]/n, "stub-latency-us")
	b.ReportMetric(sums["dnsmasq"][0]/n, "dnsmasq-latency-us")
	b.ReportMetric(sums["stub"][1]/n, "stub-qps")
	b.ReportMetric(sums["dnsmasq"][1]/n, "dnsmasq-qps")
	b.ReportMetric(sums["stub"][1]/sums["dnsmasq"][1], "qps-ratio")
}

var (
	dnsperfQPS     = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfLatency = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	dnsperfLost    = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
)

// dnsperf runs dnsperf in m against addr with inflight queries outstanding
// and returns its average latency in µs and its queries per second.
func dnsperf(b *testing.B, m *shakedown.Machine, addr string, inflight int) (float64, float64) {
	b.Helper()
	out := m.Succeed(fmt.Sprintf("dnsperf -s %s -d /tmp/queries -l %d -q %d -t 2", addr, dnsperfSeconds, inflight))
	qps, lat, lost := dnsperfQPS.FindStringSubmatch(out), dnsperfLatency.FindStringSubmatch(out), dnsperfLost.FindStringSubmatch(out)
	if qps == nil || lat == nil || lost == nil {
		b.Fatalf("dnsperf against %s: no figures in its output:\n%s", addr, out)
	}
	if lost[1] != "0" {
		b.Logf("dnsperf against %s: %s queries lost", addr, lost[1])
	}
	q, _ := strconv.ParseFloat(qps[1], 64)
	l, _ := strconv.ParseFloat(lat[1], 64)
	return l * 1e6, q
}

// BenchmarkDNSStubLoopback is the stub's own cost, with no guest and no
// switch: a miekg/dns client asking it on loopback, one query at a time.
func BenchmarkDNSStubLoopback(b *testing.B) {
	s := dnsstub.New(dnsstub.Config{LogLimit: 1})
	if err := s.AddZone("example.test.", "www A 192.0.2.1"); err != nil {
		b.Fatal(err)
	}
	if err := s.Start(""); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := new(dns.Client)
	conn, err := c.Dial(s.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	b.ResetTimer()
	for b.Loop() {
		r, _, err := c.ExchangeWithConn(m, conn)
		if err != nil || len(r.Answer) != 1 {
			b.Fatalf("query: %v %v", r, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
}
