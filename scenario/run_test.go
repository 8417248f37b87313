package scenario

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
)

// These runs call no verb, so they make no testbed and need no QEMU.

func TestRunWithoutStepsFails(t *testing.T) {
	sc, err := load(t, "idle", "web = machine(\"web\")\ndef test():\n    log(\"thinking about it\")\n")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out}})
	if res.Passed() {
		t.Fatal("passed, want a failure for running no steps")
	}
	if got, want := res.Summary(), "testdata/idle.star:1:1: scenario ran no steps"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want it to start with %q", got, want)
	}
	if res.Steps != 0 || res.OutputDir != "" {
		t.Errorf("got %d steps and output dir %q, want 0 and none", res.Steps, res.OutputDir)
	}
	if !strings.Contains(out.String(), "  thinking about it\n") {
		t.Errorf("log lacks the scenario's log() line:\n%s", out.String())
	}
}

func TestRunRecordsFailingSubtest(t *testing.T) {
	sc, err := load(t, "sub", `web = machine("web")

def check(x):
    if x > 1:
        fail("x is %d" % x)

def test():
    subtest("first", lambda: check(1))
    def outer():
        subtest("inner", lambda: check(2))
    subtest("outer", outer)
    subtest("never", lambda: check(0))
    web.succeed("true")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out}})
	if res.Passed() {
		t.Fatal("passed, want a failure")
	}
	var names []string
	for _, c := range res.Cases {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, ","), TopLevel+",first,outer,outer/inner"; got != want {
		t.Errorf("got cases %s, want %s", got, want)
	}
	failing := res.Cases[3]
	if failing.Err == nil {
		t.Fatal("outer/inner: no failure recorded")
	}
	e := failing.Err.(*Error)
	if got, want := e.Summary(), "testdata/sub.star:5:13: fail: x is 2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := strings.Join(e.Trace, "|"), "testdata/sub.star:10:39: in lambda|testdata/sub.star:10:16: in outer|testdata/sub.star:11:12: in test"; got != want {
		t.Errorf("got trace %q, want %q", got, want)
	}
	for _, i := range []int{0, 1, 2} {
		if res.Cases[i].Err != nil {
			t.Errorf("case %s: got failure %v, want it on outer/inner only", res.Cases[i].Name, res.Cases[i].Err)
		}
	}
	for _, want := range []string{"subtest: first\n", "(finished: subtest: first, in ", "  subtest: inner\n", "(failed: subtest: outer, after "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("log has colour escapes without Log.Color")
	}

	var b bytes.Buffer
	if err := WriteJUnit(&b, []*Result{res}); err != nil {
		t.Fatal(err)
	}
	s := parseJUnit(t, b.Bytes()).Suites[0]
	if s.Failures != 1 || s.Cases[3].Name != "outer/inner" || s.Cases[3].Failure == nil {
		t.Fatalf("got suite %+v, want one failure, on outer/inner", s)
	}
	if !strings.HasPrefix(s.Cases[3].Failure.Message, "testdata/sub.star:5:13: ") {
		t.Errorf("got failure message %q, want the scenario position first", s.Cases[3].Failure.Message)
	}
}

func TestLogColour(t *testing.T) {
	var out bytes.Buffer
	l := &Log{W: &out, Color: true}
	end := l.Section("subtest: x")
	l.Printf("inside\nand more")
	end(nil)
	got := out.String()
	for _, want := range []string{bold + "subtest: x" + reset, "  inside\n  and more\n", dim + "(finished: subtest: x, in "} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}

// TestRunHosts: a testbed of networks and hosts boots nothing, so the
// host verbs, their addresses and the faults that name them run here.
func TestRunHosts(t *testing.T) {
	sc, err := load(t, "hosts", `
lan = network("lan")
api = lan.host("api", number = 10)
db = lan.host("db")

def test():
    api.block()
    api.unblock()
    lan.impair(api, loss = 5)
    lan.impair_pair(api, db, delay = "10ms")
    lan.clear_impairments()
    lan.partition([api], [db])
    lan.heal()
    partition([api], [db])
    heal()
    if api.number != 10 or api.addr != "192.168.%d.10" % lan.number or api.addr6 != "2001:db8:%d::10" % lan.number:
        fail("api: got %d %s %s" % (api.number, api.addr, api.addr6))
    if db.number != 253:
        fail("db: got number %d, want 253, the highest free" % db.number)
    late = lan.host("late")
    log("late is", late.addr, "in", output_dir())
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{OutputDir: t.TempDir()}})
	if !res.Passed() {
		t.Fatalf("failed: %v\n%s", res.Err, out.String())
	}
	for _, want := range []string{"api: block\n", "lan: impair api -> db delay=10ms\n", "lan: partition [api] [db]\n", "late is 192.168."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunUnitsExample boots the units example: services declared with
// service() and driven with the unit verbs, through the runner.
func TestRunUnitsExample(t *testing.T) {
	testenv.NeedVM(t)
	sc, err := Load("../examples/units.star")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{Timeout: 5 * time.Minute}})
	if !res.Passed() {
		t.Fatalf("failed: %v\n%s", res.Err, out.String())
	}
	for _, want := range []string{
		`web: wait_for_unit "client.service"`,
		`web: require_unit_state "web" "active"`,
		`web: systemctl "stop web"`,
		"(finished: subtest: web stops and starts again, in ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunSnapshotExample runs examples/snapshot.star twice: the first run
// makes its checkpoint or finds it, the second restores it without
// running its setup; in both, restore() undoes what a subtest broke.
func TestRunSnapshotExample(t *testing.T) {
	testenv.NeedVM(t)
	sc, err := Load("../examples/snapshot.star")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	for run := range 2 {
		var out bytes.Buffer
		res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{Timeout: 5 * time.Minute}})
		if !res.Passed() {
			t.Fatalf("run %d failed: %v\n%s", run, res.Err, out.String())
		}
		wants := []string{"restore clean", "(finished: subtest: the next starts from the snapshot, in "}
		if run == 1 {
			wants = append(wants, "checkpoint examples/snapshot.star: provisioned restored in ")
		}
		for _, want := range wants {
			if !strings.Contains(out.String(), want) {
				t.Errorf("run %d: log lacks %q:\n%s", run, want, out.String())
			}
		}
		if run == 1 && strings.Contains(out.String(), "echo provisioned") {
			t.Errorf("run 1 ran the setup although the checkpoint was there:\n%s", out.String())
		}
	}
}

// TestRunReferenceExample runs the reference suite, examples/reference.star:
// every stand-in with real clients in guests, across two VLANs and a
// router. Its subtests must all pass, each named in the log.
func TestRunReferenceExample(t *testing.T) {
	testenv.NeedDebian(t)
	if testing.Short() {
		t.Skip("downloads Debian packages; skipped with -short")
	}
	sc, err := Load("../examples/reference.star")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{Timeout: 20 * time.Minute}})
	if !res.Passed() {
		t.Fatalf("failed: %v\n%s", res.Err, out.String())
	}
	for _, want := range []string{
		"(finished: subtest: machines take their addresses from DHCP, in ",
		"(finished: subtest: the office resolves the test domain across the router, in ",
		"(finished: subtest: web gets a certificate by HTTP-01 (certbot), in ",
		"(finished: subtest: web gets a certificate by DNS-01 through the PowerDNS API (lego), in ",
		"(finished: subtest: the office fetches over HTTPS by name and verifies the chain, in ",
		"(finished: subtest: node pulls from the registry with containerd, in ",
		"(finished: subtest: DNS fails, then recovers, in ",
		"(finished: subtest: the DHCP server goes away, then comes back, in ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunDNSStub: the DNS stand-in's verbs, on a testbed that boots
// nothing; a machine's queries are the Go package's tests' (dnsnet).
func TestRunDNSStub(t *testing.T) {
	sc, err := load(t, "dns", `
lan = network("lan")
api = lan.host("api")
ns = dns_stub(lan, "ns", zones = {"example.test.": ["www A 192.0.2.1", "www AAAA 2001:db8::1"]},
    records = ["mail.example.test. A 192.0.2.25"])

def test():
    ns.add("db.example.test. A 192.0.2.5")
    ns.remove("www.example.test.", "AAAA")
    ns.set_fault("www.example.test.", rcode = "SERVFAIL", times = 1)
    ns.set_fault("db.example.test.", drop = True, types = ["AAAA"])
    ns.clear_fault("www.example.test.")
    ns.clear_fault()
    if ns.queries(name = "www.example.test.", type = "A") != []:
        fail("queries before any: got %r" % ns.queries())
    if not ns.addr.startswith("192.168."):
        fail("ns.addr: got %r" % ns.addr)
    ns.remove("nothing.example.test.")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{OutputDir: t.TempDir()}})
	if res.Passed() {
		t.Fatalf("passed, want the last remove to fail:\n%s", out.String())
	}
	if got, want := res.Summary(), "testdata/dns.star:18:14: ns.remove: remove nothing.example.test. []: no such record"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want it to start with %q", got, want)
	}
	for _, want := range []string{"ns: add db.example.test. A 192.0.2.5\n", "ns: set fault www.example.test. ", "ns: queries "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}
