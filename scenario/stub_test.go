package scenario

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/image/oci"
)

// TestLoadStubErrors: the stand-ins' builtins and verbs refuse bad
// arguments in the load pass, before anything boots.
func TestLoadStubErrors(t *testing.T) {
	const decl = "lan = network(\"lan\")\nweb = machine(\"web\", networks = [lan])\n"
	tests := []struct {
		name    string
		src     string
		wantPos string
		wantMsg string
	}{
		{"gateway of a list", decl + "dns_stub(lan, \"ns\", gateway = [web])\n", "3:9", "dns_stub: gateway=: got list, want an address (string), a host number (int), a machine or a host"},
		{"host gateway bad address", decl + "lan.host(\"api\", gateway = \"router\")\n", "3:9", "lan.host: gateway=: \"router\": want an address"},
		{"ca bad validity", "ca(validity = \"long\")\n", "1:3", "ca: validity: \"long\": want a duration"},
		{"trust a string", "machine(\"web\", trust = [\"ca.pem\"])\n", "1:8", "machine web: trust: got string in the list, want ca()"},
		{"web_stub tls without ca", decl + "web_stub(lan, \"www\", tls = True)\n", "3:9", "web_stub www: tls=True needs ca=ca()"},
		{"web_stub ca of a string", decl + "web_stub(lan, \"www\", ca = \"ca\")\n", "3:9", "web_stub www: ca: got string, want ca()"},
		{"web_stub bad port", decl + "web_stub(lan, \"www\", port = 70000)\n", "3:9", "web_stub www: port=70000: want 1 to 65535"},
		{"web_stub missing dir", decl + "web_stub(lan, \"www\", dir = \"no-such-dir\")\n", "3:9", "web_stub www: dir: "},
		{"web_stub of no network", "web_stub(\"lan\", \"www\")\n", "1:9", "web_stub: network: network \"lan\" is not declared"},
		{"web_stub named as a machine", decl + "web_stub(lan, \"web\")\n", "3:9", "host web: machine web has that name"},
		{"web handle bad pattern", decl + "w = web_stub(lan, \"www\")\nw.handle(\"payload\")\n", "4:9", "www.handle: pattern \"payload\": "},
		{"web handle bad status", decl + "w = web_stub(lan, \"www\")\nw.handle(\"/x\", status = 42)\n", "4:9", "www.handle: status 42: want 100 to 599"},
		{"web fault does nothing", decl + "w = web_stub(lan, \"www\")\nw.set_fault(\"/x\")\n", "4:12", "www.set_fault: "},
		{"web fault bad path", decl + "w = web_stub(lan, \"www\")\nw.set_fault(\"x\", status = 503)\n", "4:12", "www.set_fault: "},
		{"web fault bad delay", decl + "w = web_stub(lan, \"www\")\nw.set_fault(\"/\", delay = \"slow\")\n", "4:12", "www.set_fault: delay: \"slow\": want a duration"},
		{"web wait bad timeout", decl + "w = web_stub(lan, \"www\")\nw.wait_for_request(path = \"/\", timeout = \"soon\")\n", "4:19", "www.wait_for_request: timeout: "},
		{"web verb on a host", decl + "api = lan.host(\"api\")\ndef test():\n    api.handle(\"/\")\n", "5:9", "host api has no verb .handle"},
		{"unknown web verb", decl + "w = web_stub(lan, \"www\")\ndef test():\n    w.set_faults(\"/\")\n", "5:7", "host w has no verb .set_faults (did you mean .set_fault?)"},
		{"registry bad port", decl + "registry_stub(lan, \"reg\", port = 0 - 1)\n", "3:14", "registry_stub reg: port=-1: want 1 to 65535"},
		{"registry push missing", decl + "reg = registry_stub(lan, \"reg\")\nreg.push_tarball(\"no.tar\", \"library/x:1\")\n", "4:17", "reg.push_tarball: path: "},
		{"registry bad kind", decl + "reg = registry_stub(lan, \"reg\")\nreg.pulls(kind = \"layer\")\n", "4:10", "reg.pulls: kind \"layer\": want \"manifest\" or \"blob\""},
		{"dns updates bad secret", decl + "dns_stub(lan, \"ns\", updates = {\"k.\": \"not base64!\"})\n", "3:9", "dns_stub ns: updates: key k.: secret \"not base64!\": want base64"},
		{"dns updates of a list", decl + "dns_stub(lan, \"ns\", updates = [\"k.\"])\n", "3:9", "dns_stub: for parameter \"updates\": got list, want dict"},
		{"dns wait bad type", decl + "ns = dns_stub(lan, \"ns\")\nns.wait_for_query(name = \"a.\", type = \"AAAAA\")\n", "4:18", "ns.wait_for_query: type \"AAAAA\""},
		{"pdns of a host", decl + "api = lan.host(\"api\")\npdns_api(api, lan, \"pdns\")\n", "4:9", "pdns_api pdns: dns: got <host api>, want a dns_stub(...)"},
		{"pdns bad status", decl + "ns = dns_stub(lan, \"ns\")\np = pdns_api(ns, lan, \"pdns\")\np.set_fault(status = 200)\n", "5:12", "pdns.set_fault: status 200: want an error status"},
		{"pdns bad path", decl + "ns = dns_stub(lan, \"ns\")\np = pdns_api(ns, lan, \"pdns\")\np.set_fault(path = \"api\")\n", "5:12", "pdns.set_fault: path \"api\": want a path prefix"},
		{"dhcp bad router", decl + "dhcp_stub(lan, \"dhcp\", router = \"gateway\")\n", "3:10", "dhcp_stub dhcp: router: \"gateway\": want an address"},
		{"dhcp two routers", decl + "dhcp_stub(lan, \"dhcp\", router = [1, 2])\n", "3:10", "dhcp_stub dhcp: router: got 2, want one default gateway"},
		{"dhcp bad dns number", decl + "dhcp_stub(lan, \"dhcp\", dns = [300])\n", "3:10", "dhcp_stub dhcp: dns: host number 300: want 1 to 254"},
		{"dhcp bad mtu", decl + "dhcp_stub(lan, \"dhcp\", mtu = 40)\n", "3:10", "dhcp_stub dhcp: mtu=40: want 68 to 65535"},
		{"dhcp bad lease", decl + "dhcp_stub(lan, \"dhcp\", lease_time = \"1500ms\")\n", "3:10", "dhcp_stub dhcp: lease_time 1.5s: want whole seconds"},
		{"dhcp bad pool", decl + "dhcp_stub(lan, \"dhcp\", pool = (100,))\n", "3:10", "dhcp_stub dhcp: pool: want (first, last)"},
		{"dhcp bad mac", decl + "dhcp_stub(lan, \"dhcp\", static = {\"52:54\": 10})\n", "3:10", "dhcp_stub dhcp: static: key \"52:54\": want a MAC"},
		{"dhcp fault does nothing", decl + "d = dhcp_stub(lan, \"dhcp\")\nd.set_fault(times = 1)\n", "4:12", "dhcp.set_fault: "},
		{"dhcp fault bad type", decl + "d = dhcp_stub(lan, \"dhcp\")\nd.set_fault(drop = True, types = [\"ASK\"])\n", "4:12", "dhcp.set_fault: types: \"ASK\": want a message type, one of ACK, DECLINE"},
		{"dhcp wait bad mac", decl + "d = dhcp_stub(lan, \"dhcp\")\nd.wait_for_lease(mac = \"web\")\n", "4:17", "dhcp.wait_for_lease: mac \"web\": want a MAC"},
		{"udhcpc_script with a path", "udhcpc_script(\"/etc/x\")\n", "1:14", "udhcpc_script: got 1 arguments, want at most 0"},
		{"acme without dns", decl + "acme_stub(lan, \"acme\")\n", "3:10", "acme_stub acme: dns: got None, want a dns_stub(...)"},
		{"acme bad lifetime", decl + "ns = dns_stub(lan, \"ns\")\nacme_stub(lan, \"acme\", dns = ns, cert_lifetime = \"forever\")\n", "4:10", "acme_stub acme: cert_lifetime: \"forever\": want a duration"},
		{"acme fault does nothing", decl + "ns = dns_stub(lan, \"ns\")\na = acme_stub(lan, \"acme\", dns = ns)\na.set_fault()\n", "5:12", "acme.set_fault: "},
		{"acme bad kind", decl + "ns = dns_stub(lan, \"ns\")\na = acme_stub(lan, \"acme\", dns = ns)\na.events(kind = \"done\")\n", "5:9", "acme.events: kind \"done\": want one of account, invalid, issued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, "bad", tt.src)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			want := "testdata/bad.star:" + tt.wantPos + ": "
			if got := e.Summary(); !strings.HasPrefix(got, want) || !strings.Contains(got, tt.wantMsg) {
				t.Errorf("got %q, want %q followed by %q", got, want, tt.wantMsg)
			}
		})
	}
}

// runStubs runs a scenario of stand-ins on a testbed that boots nothing,
// and returns its log; it fails the test unless the scenario passes.
func runStubs(t *testing.T, name, src string) string {
	t.Helper()
	sc, err := load(t, name, src)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{OutputDir: t.TempDir()}})
	if !res.Passed() {
		t.Fatalf("failed: %s\n%s", res.Summary(), out.String())
	}
	return out.String()
}

// TestRunWebStubs: the web, registry and PowerDNS API stand-ins' verbs,
// on a testbed that boots nothing; machines fetching from them are the Go
// packages' tests' (webnet, pdnsapi).
func TestRunWebStubs(t *testing.T) {
	tarball := filepath.Join(t.TempDir(), "hello.tar")
	if err := oci.BuildFile(tarball, oci.Image{Ref: "library/hello:1", Files: map[string]oci.File{"/hello": {Data: []byte("hi\n")}}}); err != nil {
		t.Fatal(err)
	}
	out := runStubs(t, "web", `
tarball = "`+tarball+`"
lan = network("lan")
root = ca(name = "scenario CA")
www = web_stub(lan, "www", ca = root)
plain = web_stub(lan, "plain", tls = False, port = 8080)
reg = registry_stub(lan, "reg", ca = root)
ns = dns_stub(lan, "ns", zones = {"example.test.": []}, updates = {"k.": "c2VjcmV0"}, unsigned = True)
pdns = pdns_api(ns, lan, "pdns", api_key = "secret")

def test():
    if "BEGIN CERTIFICATE" not in str(root.pem):
        fail("root.pem: got %r" % root.pem)
    www.handle("GET /payload", body = "hello\n")
    www.set_fault("/dists/", status = 503, retry_after = "2s", times = 1)
    www.clear_fault("/dists/")
    www.set_fault("/", drop = True)
    www.clear_faults()
    if www.requests(path = "/payload") != []:
        fail("requests: got %r" % www.requests())
    plain.handle("/", status = 204)
    if not reg.push_tarball(tarball, "library/hello:1").startswith("sha256:"):
        fail("push_tarball: want a digest")
    reg.set_refuse_pulls(True)
    if reg.pulls(repo = "library/hello") != []:
        fail("pulls: got %r" % reg.pulls())
    reg.set_fault("/v2/", status = 500, times = 1)
    pdns.set_fault(status = 429, retry_after = "1s", method = "patch", times = 1)
    pdns.clear_faults()
    if pdns.requests(method = "PATCH") != []:
        fail("pdns requests: got %r" % pdns.requests())
    if ns.queries(type = "SOA") != []:
        fail("queries: got %r" % ns.queries())
`)
	for _, want := range []string{`www: handle "GET /payload": 200, 6 bytes`, "www: set fault /dists/ 503", "reg: refuse pulls true", "pdns: set fault 429 PATCH"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestRunDHCPAndACMEStubs: the DHCP and ACME stand-ins' verbs, on a
// testbed that boots nothing (its machine is declared, never started);
// guests taking leases and certificates are the Go packages' tests'
// (dhcpnet, acmenet). The last wait times out, to show its error.
func TestRunDHCPAndACMEStubs(t *testing.T) {
	sc, err := load(t, "dhcp", `
lan = network("lan")
gw = machine("gw", networks = [lan], files = {"/etc/udhcpc.script": udhcpc_script()})
root = ca()
ns = dns_stub(lan, "ns", zones = {"example.test.": []})
dhcp = dhcp_stub(lan, "dhcp", router = gw, dns = [ns], domain = "example.test", search = ["example.test"],
    mtu = 1400, ntp = "192.0.2.123", lease_time = "30s", pool = (100, 149),
    static = {"52:54:00:aa:bb:cc": 20}, planned = True)
acme = acme_stub(lan, "acme", dns = ns, ca = root, cert_lifetime = "1h")

def test():
    if acme.directory_url != "https://acme/directory":
        fail("directory_url: got %r" % acme.directory_url)
    if not dhcp.addr.endswith(".250"):
        fail("dhcp.addr: got %r, want .250" % dhcp.addr)
    dhcp.set_outage(True)
    dhcp.set_outage(False)
    dhcp.set_fault(nak = True, types = ["request"], mac = "52:54:00:aa:bb:cc", times = 1)
    dhcp.clear_fault()
    if dhcp.leases() != [] or dhcp.events(type = "DISCOVER") != []:
        fail("leases and events before any client: got %r, %r" % (dhcp.leases(), dhcp.events()))
    acme.set_fault(bad_nonce = 2, delay = "1s")
    acme.clear_fault()
    if acme.issued() != [] or acme.events(kind = "issued") != []:
        fail("issued before any client: got %r" % acme.issued())
    dhcp.wait_for_lease(hostname = "web", timeout = "50ms")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var out bytes.Buffer
	res := sc.Run(RunOptions{Log: &Log{W: &out, Steps: true}, Testbed: shakedown.Options{OutputDir: t.TempDir()}})
	if res.Passed() {
		t.Fatalf("passed, want the last wait to time out:\n%s", out.String())
	}
	if got, want := res.Summary(), "testdata/dhcp.star:26:24: dhcp.wait_for_lease: "; !strings.HasPrefix(got, want) || !strings.Contains(got, "no matching dhcp event") {
		t.Errorf("got %q, want it to start with %q and say no event matched", got, want)
	}
	for _, want := range []string{"dhcp: outage true", "dhcp: set fault NAK", "acme: set fault badNonce x2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}
