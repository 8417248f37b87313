package scenario

import (
	"reflect"
	"strings"
	"testing"
	"unicode"

	"go.starlark.net/starlark"

	"github.com/shakedown-dev/shakedown"
	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
	"github.com/shakedown-dev/shakedown/stub/acme/acmenet"
	dhcpstub "github.com/shakedown-dev/shakedown/stub/dhcp"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/pdnsapi"
	registrystub "github.com/shakedown-dev/shakedown/stub/registry"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
)

// covers checks that every exported method of typ has a scenario form
// that has reports: an E form by its own name without the E (a must form
// is covered by its E form), any other method by its name. Scenario names
// are the snake_case of the Go names, except those in renamed; exceptions
// are the methods deliberately left out, each with its reason. Entries of
// either list that name no method fail too, so the lists stay true.
func covers(t *testing.T, typ reflect.Type, has func(string) bool, renamed, exceptions map[string]string) {
	t.Helper()
	methods := map[string]bool{}
	for i := 0; i < typ.NumMethod(); i++ {
		methods[typ.Method(i).Name] = true
	}
	for name := range methods {
		if methods[name+"E"] {
			continue
		}
		base := strings.TrimSuffix(name, "E")
		if base == "" || !methods[base] {
			base = name
		}
		if _, ok := exceptions[base]; ok {
			continue
		}
		want, ok := renamed[base]
		if !ok {
			want = snake(base)
		}
		if !has(want) {
			t.Errorf("%s.%s has no scenario form: want .%s (or list it in the exceptions, with why)", typ, name, want)
		}
	}
	for _, list := range []map[string]string{renamed, exceptions} {
		for name := range list {
			if !methods[name] {
				t.Errorf("%s has no method %s, which a list of this test names", typ, name)
			}
		}
	}
}

// snake is the snake_case of a Go name: WaitForOpenPort is
// wait_for_open_port, PID is pid, Addr6 is addr6.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// TestEveryMachineVerbHasAScenarioForm: what a Go test can do with a
// machine, a scenario can, as the root's TestEveryVerbHasAnEForm keeps
// every verb's E form.
func TestEveryMachineVerbHasAScenarioForm(t *testing.T) {
	covers(t, reflect.TypeOf(&shakedown.Machine{}), hasAttr,
		map[string]string{
			// The NixOS driver's names for the copies.
			"CopyTo":       "copy_from_host",
			"CopyFrom":     "copy_from_vm",
			"ConsoleLog":   "get_console_log",
			"SendConsoleE": "send_console",
			"QMPEventsE":   "wait_for_qmp_event",
		},
		map[string]string{
			// Every verb takes timeout=, which is WithTimeout.
			"WithTimeout": "timeout=",
			// A scenario's failures go to its subtest() by themselves;
			// there is no testing.T to pass.
			"WithT": "subtest()",
			// A script's QMP is the driver's send_monitor_command and
			// send_key, which are built on it.
			"QMPE": "send_monitor_command",
		})
}

// TestEveryTestbedVerbHasAScenarioForm: networks, hosts and the testbed
// itself, as TestEveryMachineVerbHasAScenarioForm for machines.
func TestEveryTestbedVerbHasAScenarioForm(t *testing.T) {
	r := newRunner(&Scenario{Path: "testdata/x.star"}, loading, RunOptions{})
	// Go code's endpoints on a network: a scenario has no Go code to
	// serve or dial with.
	endpoints := map[string]string{"Listen": "Go code", "ListenPacket": "Go code", "Dial": "Go code"}
	t.Run("testbed", func(t *testing.T) {
		covers(t, reflect.TypeOf(&shakedown.Testbed{}), r.predeclared.Has, nil, map[string]string{
			// Starlark code ends at the testbed's deadline by itself.
			"Context": "thread.Cancel",
			// The scenario holds the values machine() and net.host()
			// returned.
			"Machines": "machine values",
			"Hosts":    "host values",
			// Every verb and subtest() of a scenario is a step of its
			// testbed's record already.
			"Step": "subtest() and every verb",
		})
	})
	t.Run("network", func(t *testing.T) {
		covers(t, reflect.TypeOf(&shakedown.Network{}), hasNetworkAttr, nil, endpoints)
	})
	t.Run("host", func(t *testing.T) {
		covers(t, reflect.TypeOf(&shakedown.Host{}), hasHostAttr, nil, endpoints)
	})
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"WaitForOpenUnixSocket": "wait_for_open_unix_socket",
		"PID":                   "pid",
		"Addr6":                 "addr6",
		"UnitState":             "unit_state",
		"OutputDir":             "output_dir",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

// acceptsKeyword reports whether the builtin takes the keyword argument kw:
// a call with it fails, if at all, for another reason than an unexpected
// keyword (a required argument missing, a value of the wrong type).
func acceptsKeyword(b *starlark.Builtin) func(string) bool {
	return func(kw string) bool {
		_, err := starlark.Call(&starlark.Thread{}, b, nil, []starlark.Tuple{{starlark.String(kw), starlark.None}})
		return err == nil || !strings.Contains(err.Error(), "unexpected keyword argument")
	}
}

// fieldsCovered checks that every field of the struct typ is a keyword of
// the builtin: its snake_case, or its name in renamed, unless exceptions
// says why not.
func fieldsCovered(t *testing.T, typ reflect.Type, b *starlark.Builtin, renamed, exceptions map[string]string) {
	t.Helper()
	has := acceptsKeyword(b)
	fields := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		fields[f.Name] = true
		if !f.IsExported() {
			continue
		}
		if _, ok := exceptions[f.Name]; ok {
			continue
		}
		want, ok := renamed[f.Name]
		if !ok {
			want = snake(f.Name)
		}
		if !has(want) {
			t.Errorf("%s.%s has no keyword in %s(): want %s= (or list it in the exceptions, with why)", typ, f.Name, b.Name(), want)
		}
	}
	for _, list := range []map[string]string{renamed, exceptions} {
		for name := range list {
			if !fields[name] {
				t.Errorf("%s has no field %s, which a list of this test names", typ, name)
			}
		}
	}
}

// Why stand-ins' configuration fields have no keyword.
const (
	stubLog  = "the scenario's log, each line named for the host"
	logLimit = "the default: a scenario's log is as long as a Go test's"
	anyName  = "a CA without Names issues for any name a client asks"
	acmeNet  = "acmenet's: through the testbed and the dns= stand-in"
)

// TestEveryConfigFieldHasAKeyword: what a Go test can declare, a scenario
// can, under the snake_case of the field's name.
func TestEveryConfigFieldHasAKeyword(t *testing.T) {
	r := newRunner(&Scenario{Path: "testdata/x.star"}, loading, RunOptions{})
	builtin := func(name string) *starlark.Builtin { return r.predeclared[name].(*starlark.Builtin) }
	sizeMiB := map[string]string{"SizeMiB": "size_mib"}
	for _, tc := range []struct {
		typ                 reflect.Type
		builtin             string
		renamed, exceptions map[string]string
	}{
		{reflect.TypeOf(shakedown.MachineConfig{}), "machine",
			map[string]string{"MemoryMiB": "memory", "CPUs": "cpus"}, nil},
		{reflect.TypeOf(shakedown.Service{}), "service", nil, nil},
		{reflect.TypeOf(shakedown.Readiness{}), "readiness", nil, nil},
		{reflect.TypeOf(shakedown.Disk{}), "disk", sizeMiB, nil},
		{reflect.TypeOf(shakedown.DebianSystem{}), "debian", sizeMiB,
			// machine(lock_file=) fills it, as MachineConfig.LockFile does.
			map[string]string{"Lock": "lock_file="}},
		{reflect.TypeOf(shakedown.File{}), "file", nil,
			// The key of machine(files={guest: file(...)}).
			map[string]string{"Guest": "files= key"}},
		{reflect.TypeOf(shakedown.NetworkOptions{}), "network", nil, nil},
		// net.host's too, a method, whose keywords are the same code's.
		{reflect.TypeOf(shakedown.HostOptions{}), "dns_stub", nil, nil},
		{reflect.TypeOf(shakedown.HostOptions{}), "web_stub", nil, nil},
		{reflect.TypeOf(tlsca.Options{}), "ca", nil, map[string]string{"Now": "the host's clock, which the guests' follow"}},
		{reflect.TypeOf(dnsstub.UpdatePolicy{}), "dns_stub", map[string]string{"Keys": "updates"}, nil},
		{reflect.TypeOf(pdnsapi.Config{}), "pdns_api", nil, map[string]string{"Logf": stubLog}},
		{reflect.TypeOf(webstub.Config{}), "web_stub", nil, map[string]string{
			"Handler": "handle()", "TLS": "ca= and tls=", "Names": anyName, "Logf": stubLog, "LogLimit": logLimit}},
		{reflect.TypeOf(registrystub.Config{}), "registry_stub", nil, map[string]string{
			"Names": anyName, "Logf": stubLog, "LogLimit": logLimit}},
		{reflect.TypeOf(dhcpstub.Config{}), "dhcp_stub", map[string]string{"DNS": "dns", "NTP": "ntp", "MTU": "mtu"}, map[string]string{
			"Subnet": "the network's, from the plan (dhcpnet.ForNetwork)", "PoolStart": "pool=", "PoolEnd": "pool=",
			"ServerID": "192.168.v.250, where dhcpnet.Attach puts the host", "StaticFunc": "planned=",
			"ReplyToSender": "for loopback clients, which a scenario has none of", "Logf": stubLog, "LogLimit": logLimit}},
		{reflect.TypeOf(acmenet.Config{}), "acme_stub", nil, map[string]string{"Server": "its fields, below"}},
		{reflect.TypeOf(acmestub.Config{}), "acme_stub", nil, map[string]string{
			"Issuer": "ca=", "Names": "acmenet's: the host's names", "Dial": acmeNet, "LookupHost": acmeNet, "LookupTXT": acmeNet,
			"HTTPPort": "80, where machines serve HTTP-01", "Logf": stubLog, "LogLimit": logLimit}},
	} {
		t.Run(tc.builtin, func(t *testing.T) {
			fieldsCovered(t, tc.typ, builtin(tc.builtin), tc.renamed, tc.exceptions)
		})
	}
}

// TestEveryStubFaultFieldHasAKeyword: the stand-ins' faults and matches,
// as TestEveryConfigFieldHasAKeyword for configurations: each field a
// keyword of the verb that takes it.
func TestEveryStubFaultFieldHasAKeyword(t *testing.T) {
	r := newRunner(&Scenario{Path: "testdata/x.star"}, loading, RunOptions{})
	verb := func(stub hostStub, name string) *starlark.Builtin {
		hv := &hostValue{r: r, name: "x", stub: stub}
		v, err := hv.Attr(name)
		if err != nil || v == nil {
			t.Fatalf("%s has no verb %s", stub.kind(), name)
		}
		return v.(*starlark.Builtin)
	}
	since := map[string]string{"Since": "the log's order: a scenario asks after what it did", "Func": "Go code", "Desc": "Go code"}
	for _, tc := range []struct {
		typ                 reflect.Type
		stub                hostStub
		verb                string
		renamed, exceptions map[string]string
	}{
		{reflect.TypeOf(webstub.Fault{}), &webStub{}, "set_fault", nil, nil},
		{reflect.TypeOf(webstub.Match{}), &webStub{}, "wait_for_request", nil, since},
		{reflect.TypeOf(pdnsapi.Fault{}), &pdnsStub{}, "set_fault", nil, nil},
		{reflect.TypeOf(pdnsapi.Match{}), &pdnsStub{}, "wait_for_request", nil, map[string]string{"Since": since["Since"]}},
		{reflect.TypeOf(registrystub.Match{}), &registryStub{}, "wait_for_pull", nil, since},
		{reflect.TypeOf(dhcpstub.Fault{}), &dhcpStub{}, "set_fault", map[string]string{"NAK": "nak", "MAC": "mac"}, nil},
		{reflect.TypeOf(dhcpstub.Match{}), &dhcpStub{}, "wait_for_event", map[string]string{"MAC": "mac"}, since},
		{reflect.TypeOf(acmestub.Fault{}), &acmeStub{}, "set_fault", nil,
			map[string]string{"Problem": "incorrectResponse, the default: a scenario asserts that validation failed"}},
		{reflect.TypeOf(acmestub.Match{}), &acmeStub{}, "wait_for", nil, since},
	} {
		t.Run(tc.stub.kind()+"."+tc.verb, func(t *testing.T) {
			fieldsCovered(t, tc.typ, verb(tc.stub, tc.verb), tc.renamed, tc.exceptions)
		})
	}
}
