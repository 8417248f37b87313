package scenario

import (
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
)

func TestLoadNetworks(t *testing.T) {
	sc, err := load(t, "nets", `
lan = network("lan", mtu = 9000, capture = True)
wan = network("wan")
r = machine("r", networks = [lan, "wan"], manual_addresses = True)
c = machine("c", networks = ["lan"])
r.block("wan")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := strings.Join(sc.Machines[0].Config.Networks, ","); got != "lan,wan" || !sc.Machines[0].Config.ManualAddresses {
		t.Errorf("got r on %q, manual %v, want lan,wan and manual", got, sc.Machines[0].Config.ManualAddresses)
	}
	if got, want := sc.Machines[0].Describe(), "512 MiB, 1 CPU, networks lan wan (manual addresses)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLoadHosts: hosts are declarations, peers of faults as machines are;
// their address stops the load pass, as a machine's does.
func TestLoadHosts(t *testing.T) {
	sc, err := load(t, "hosts", `
lan = network("lan")
api = lan.host("api", number = 10)
db = lan.host("db")
web = machine("web", networks = [lan])

def test():
    api.block()
    api.unblock()
    lan.impair(api, loss = 5)
    lan.impair_pair(web, db, delay = "10ms")
    lan.partition([web], [api, db])
    lan.heal()
    partition([api], [web])
    heal()
    log(accel(), output_dir())

log(api.name, api.network.name)
print(api.addr)
late = machine("late")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !sc.TopLevelSteps || len(sc.Machines) != 1 {
		t.Errorf("got TopLevelSteps %v and %d machines, want true and 1 (the load stops at api.addr)", sc.TopLevelSteps, len(sc.Machines))
	}
}

func TestLoadNetworkErrors(t *testing.T) {
	const decl = "lan = network(\"lan\")\nweb = machine(\"web\", networks = [lan])\n"
	tests := []struct {
		name    string
		src     string
		wantPos string
		wantMsg string
	}{
		{"undeclared network", "web = machine(\"web\", networks = [\"lan\"])\n", "1:14", "machine web: networks: network \"lan\" is not declared: call network(\"lan\") before"},
		{"network twice in a machine", "lan = network(\"lan\")\nweb = machine(\"web\", networks = [lan, \"lan\"])\n", "2:14", "network \"lan\" listed twice"},
		{"network declared twice", decl + "network(\"lan\")\n", "3:8", "network lan declared twice (first at testdata/bad.star:1:14)"},
		{"bad mtu", "network(\"lan\", mtu = 10)\n", "1:8", "network lan: mtu=10: want 68 to 65535"},
		{"manual without networks", "machine(\"web\", manual_addresses = True)\n", "1:8", "manual_addresses=True without networks"},
		{"block a network not joined", decl + "network(\"wan\")\nweb.block(\"wan\")\n", "4:10", "web.block: machine web is not on network wan (it joins lan)"},
		{"block an undeclared network", decl + "web.block(\"dmz\")\n", "3:10", "web.block: network \"dmz\" is not declared"},
		{"unknown network verb", decl + "def test():\n    lan.impare(web)\n", "4:9", "network lan has no verb .impare (did you mean .impair?)"},
		{"bad loss", decl + "lan.impair(web, loss = 120)\n", "3:11", "lan.impair: loss: 120: want 0 to 100"},
		{"bad delay", decl + "lan.impair(web, delay = \"slow\")\n", "3:11", "lan.impair: delay: \"slow\": want a duration"},
		{"bad rate", decl + "lan.impair(web, rate = \"fast\")\n", "3:11", "lan.impair: rate: \"fast\": want a rate"},
		{"impair a machine elsewhere", decl + "db = machine(\"db\")\nlan.impair(db, loss = 5)\n", "4:11", "lan.impair: machine db is not on network lan"},
		{"partition of one group", decl + "partition([web])\n", "3:10", "partition: got 1 groups, want at least 2"},
		{"partition of names", decl + "partition([\"web\"], [])\n", "3:10", "partition: in group 1: got string, want machine"},
		{"host twice", decl + "lan.host(\"api\")\nlan.host(\"api\")\n", "4:9", "host api declared twice (first at testdata/bad.star:3:9)"},
		{"host named as a machine", decl + "lan.host(\"web\")\n", "3:9", "host web: machine web has that name"},
		{"machine named as a host", "lan = network(\"lan\")\nlan.host(\"api\")\nmachine(\"api\")\n", "3:8", "machine api: host api has that name (declared at testdata/bad.star:2:9)"},
		{"host of a bad name", decl + "lan.host(\"API\")\n", "3:9", "host name \"API\""},
		{"host of a bad number", decl + "lan.host(\"api\", number = 300)\n", "3:9", "host api: number=300: want 1 to"},
		{"host of a string number", decl + "lan.host(\"api\", number = \"10\")\n", "3:9", "lan.host: for parameter \"number\": got string, want int"},
		{"host verb with an argument", decl + "api = lan.host(\"api\")\napi.block(lan)\n", "4:10", "api.block: got 1 arguments, want at most 0"},
		{"unknown host verb", decl + "api = lan.host(\"api\")\ndef test():\n    api.blok()\n", "5:9", "host api has no verb .blok (did you mean .block?)"},
		{"impair a string", decl + "lan.impair(\"web\", loss = 5)\n", "3:11", "lan.impair: for parameter peer: got string, want machine or host"},
		{"impair a host elsewhere", decl + "wan = network(\"wan\")\nx = wan.host(\"x\")\nlan.impair(x, loss = 5)\n", "5:11", "lan.impair: host x is not on network lan"},
		{"network partition elsewhere", decl + "db = machine(\"db\")\nlan.partition([web], [db])\n", "4:14", "lan.partition: machine db is not on network lan"},
		{"network heal with an argument", decl + "lan.heal(web)\n", "3:9", "lan.heal: got 1 arguments, want at most 0"},
		{"accel with an argument", decl + "accel(1)\n", "3:6", "accel: got 1 arguments, want at most 0"},
		{"dns_stub of no network", "dns_stub(\"lan\", \"ns\")\n", "1:9", "dns_stub: network: network \"lan\" is not declared"},
		{"dns_stub zone of a string", decl + "dns_stub(lan, \"ns\", zones = {\"example.test.\": \"www A 192.0.2.1\"})\n", "3:9", "dns_stub ns: zones: example.test.: got string, want a list of records"},
		{"dns_stub bad record", decl + "dns_stub(lan, \"ns\", zones = {\"example.test.\": [\"www A nowhere\"]})\n", "3:9", "dns_stub ns: zones: "},
		{"dns_stub record outside", decl + "dns_stub(lan, \"ns\", records = [\"www.other. A 192.0.2.1\"])\n", "3:9", "dns_stub ns: records: "},
		{"dns_stub bad domain", decl + "dns_stub(lan, \"ns\", testbed_domain = \".\")\n", "3:9", "dns_stub ns: testbed_domain \".\": want a domain such as \"test.\""},
		{"dns_stub named as a machine", decl + "dns_stub(lan, \"web\")\n", "3:9", "host web: machine web has that name"},
		{"dns fault contradicts", decl + "ns = dns_stub(lan, \"ns\")\nns.set_fault(\"x.test.\", drop = True, rcode = \"SERVFAIL\")\n", "4:13", "ns.set_fault: set fault x.test.: bad fault"},
		{"dns fault bad rcode", decl + "ns = dns_stub(lan, \"ns\")\nns.set_fault(\"x.test.\", rcode = \"BROKEN\")\n", "4:13", "ns.set_fault: rcode \"BROKEN\": want a name such as \"SERVFAIL\""},
		{"dns fault bad type", decl + "ns = dns_stub(lan, \"ns\")\nns.set_fault(\"x.test.\", drop = True, types = [\"AAAAA\"])\n", "4:13", "ns.set_fault: type \"AAAAA\": want a record type"},
		{"dns add nothing", decl + "ns = dns_stub(lan, \"ns\")\nns.add()\n", "4:7", "ns.add: missing argument for record"},
		{"dns verb on a host", decl + "api = lan.host(\"api\")\ndef test():\n    api.set_fault(\"x.\", drop = True)\n", "5:9", "host api has no verb .set_fault"},
		{"forward a bad port", decl + "web.forward_port(0)\n", "3:17", "web.forward_port: port 0: want 1 to 65535"},
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

func TestImpairmentArguments(t *testing.T) {
	kw := func(k string, v starlark.Value) starlark.Tuple { return starlark.Tuple{starlark.String(k), v} }
	imp, err := impairment("lan.impair", []starlark.Tuple{
		kw("loss", starlark.MakeInt(5)), kw("delay", starlark.String("50ms")), kw("jitter", starlark.Float(0.01)),
		kw("duplicate", starlark.String("1.5%")), kw("rate", starlark.String("10mbit")), kw("seed", starlark.MakeInt(7)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if imp.LossPercent != 5 || imp.Delay != 50*time.Millisecond || imp.Jitter != 10*time.Millisecond ||
		imp.DuplicatePercent != 1.5 || imp.RateBitsPerSec != 10e6 || imp.Seed != 7 {
		t.Errorf("got %+v, want loss 5%%, delay 50ms, jitter 10ms, duplicate 1.5%%, 10 Mbit/s, seed 7", imp)
	}
	if got, want := describeImpairment(imp), "loss=5% delay=50ms jitter=10ms duplicate=1.5% rate=10000000bit/s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
