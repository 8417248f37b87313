package scenario

import (
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
)

// load loads src as testdata/NAME.star, so relative host paths resolve
// in testdata.
func load(t *testing.T, name, src string) (*Scenario, error) {
	t.Helper()
	return LoadSource("testdata/"+name+".star", []byte(src))
}

func TestLoadDeclarations(t *testing.T) {
	sc, err := load(t, "decl", `
web = machine("web", memory = "1G", cpus = 2,
    files = {"/srv/index.html": b"hi\n", "/etc/hello": "hello.txt"},
    modules = ["overlay"], kernel_args = ["quiet"], boot_timeout = 90)
db = machine("db", memory = 256, packages = ["jq", "curl"], lock_file = "db.lock")

def test():
    web.succeed("true")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !sc.HasTest || sc.TopLevelSteps {
		t.Errorf("got HasTest %v, TopLevelSteps %v, want true, false", sc.HasTest, sc.TopLevelSteps)
	}
	if len(sc.Machines) != 2 {
		t.Fatalf("got %d machines, want 2", len(sc.Machines))
	}
	web, db := sc.Machines[0], sc.Machines[1]
	if web.Name != "web" || db.Name != "db" {
		t.Errorf("got machines %q, %q, want web, db", web.Name, db.Name)
	}
	c := web.Config
	if c.MemoryMiB != 1024 || c.CPUs != 2 || c.BootTimeout != 90*time.Second {
		t.Errorf("got memory %d, cpus %d, boot timeout %v, want 1024, 2, 1m30s", c.MemoryMiB, c.CPUs, c.BootTimeout)
	}
	if len(c.Files) != 2 || string(c.Files[0].Data) != "hi\n" || c.Files[1].Host != "testdata/hello.txt" {
		t.Errorf("got files %+v, want bytes for /srv/index.html and testdata/hello.txt for /etc/hello", c.Files)
	}
	if strings.Join(c.Modules, " ") != "overlay" || strings.Join(c.KernelArgs, " ") != "quiet" {
		t.Errorf("got modules %v, kernel args %v", c.Modules, c.KernelArgs)
	}
	if got := web.Pos.String(); got != "testdata/decl.star:2:14" {
		t.Errorf("got position %s, want testdata/decl.star:2:14", got)
	}
	if db.Config.MemoryMiB != 256 {
		t.Errorf("got db memory %d, want 256", db.Config.MemoryMiB)
	}
	// The lock file sits beside the scenario, like its files.
	if got := strings.Join(db.Config.Packages, " "); got != "jq curl" || db.Config.LockFile != "testdata/db.lock" {
		t.Errorf("got packages %q, lock file %q; want jq curl and testdata/db.lock", got, db.Config.LockFile)
	}
}

func TestLoadConfigValues(t *testing.T) {
	sc, err := load(t, "config", `
svc = machine("svc",
    files = {"/usr/bin/hello": file(host = "hello.txt", mode = 0o755), "/etc/motd": file(data = "hi\n")},
    services = [
        service("web", "httpd -f -p 8080", ready = readiness(port = 8080, timeout = "20s")),
        service("client", "wget -qO- http://127.0.0.1:8080/", after = ["web"], env = {"A": "1"}, restart = "on-failure"),
    ],
    disks = [disk(name = "data", size_mib = 64), disk(contents = "disk", read_only = True)],
    qemu_args = ["-rtc", "base=utc"], kernel = "hello.txt", modules_dir = "disk")
deb = machine("deb", debian = debian(suite = "bookworm", packages = ["nginx"], units = {"app.service": "[Service]\n"}, size_mib = 2048),
    lock_file = "deb.lock")

def test():
    svc.wait_for_unit("web")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	c := sc.Machines[0].Config
	if len(c.Files) != 2 || c.Files[0].Host != "testdata/hello.txt" || c.Files[0].Mode != 0o755 || string(c.Files[1].Data) != "hi\n" {
		t.Errorf("got files %+v, want testdata/hello.txt mode 0755 and data hi", c.Files)
	}
	if len(c.Services) != 2 || c.Services[0].Ready.Port != 8080 || c.Services[0].Ready.Timeout != 20*time.Second ||
		strings.Join(c.Services[1].After, ",") != "web" || c.Services[1].Env["A"] != "1" || c.Services[1].Restart != "on-failure" {
		t.Errorf("got services %+v", c.Services)
	}
	if len(c.Disks) != 2 || c.Disks[0].Name != "data" || c.Disks[0].SizeMiB != 64 || c.Disks[1].Contents != "testdata/disk" || !c.Disks[1].ReadOnly {
		t.Errorf("got disks %+v", c.Disks)
	}
	if strings.Join(c.QEMUArgs, " ") != "-rtc base=utc" || c.Kernel != "testdata/hello.txt" || c.ModulesDir != "testdata/disk" {
		t.Errorf("got qemu args %q, kernel %q, modules dir %q", c.QEMUArgs, c.Kernel, c.ModulesDir)
	}
	d := sc.Machines[1].Config
	if d.Debian == nil || d.Debian.Suite != "bookworm" || strings.Join(d.Debian.Packages, " ") != "nginx" ||
		d.Debian.Units["app.service"] != "[Service]\n" || d.Debian.SizeMiB != 2048 || d.LockFile != "testdata/deb.lock" {
		t.Errorf("got Debian %+v, lock file %q", d.Debian, d.LockFile)
	}
	for i, want := range []string{
		"512 MiB, 1 CPU, 2 file(s), services web client, 2 disk(s)",
		"512 MiB, 1 CPU, Debian bookworm",
	} {
		if got := sc.Machines[i].Describe(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestLoadStopsAtFirstStep(t *testing.T) {
	sc, err := load(t, "steps", `
a = machine("a")
start_all()
b = machine("b")
a.succeed("true")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !sc.TopLevelSteps || sc.HasTest {
		t.Errorf("got TopLevelSteps %v, HasTest %v, want true, false", sc.TopLevelSteps, sc.HasTest)
	}
	// b is declared after the first step: only the run knows it.
	if len(sc.Machines) != 1 || sc.Machines[0].Name != "a" {
		t.Errorf("got machines %+v, want only a", sc.Machines)
	}
}

// TestLoadStopsAtAddr: a machine's address fixes the numbering, as a
// step does, so the load pass stops there too.
func TestLoadStopsAtAddr(t *testing.T) {
	sc, err := load(t, "addr", `
lan = network("lan")
a = machine("a", networks = [lan])

def test():
    a.wait_for_unit("web", timeout = "1m")
    status, out = a.systemctl("is-active web")
    a.require_unit_state("web")
    a.exec("cat", env = {"A": "1"}, dir = "/tmp", stdin = b"x")

print(a.addr)
b = machine("b")
`)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !sc.TopLevelSteps || !sc.HasTest || len(sc.Machines) != 1 {
		t.Errorf("got TopLevelSteps %v, HasTest %v, %d machines; want true, true, 1", sc.TopLevelSteps, sc.HasTest, len(sc.Machines))
	}
}

func TestLoadErrors(t *testing.T) {
	const web = "web = machine(\"web\")\n"
	tests := []struct {
		name    string
		src     string
		wantPos string // line:column
		wantMsg string
	}{
		{"syntax error", web + "def test(:\n  pass\n", "2:11", "got ':', want ')'"},
		{"undefined name", web + "frobnicate()\n", "2:1", "undefined: frobnicate"},
		{"unknown verb at top level", web + "web.succed(\"true\")\n", "2:4", "has no .succed field or method (did you mean .succeed?)"},
		{"unknown verb in test", web + "def test():\n    web.succeed(\"true\")\n    web.wait_for_opn_port(80)\n", "4:9", "machine web has no verb .wait_for_opn_port (did you mean .wait_for_open_port?)"},
		{"wrong argument type", web + "web.succeed(1)\n", "2:12", "web.succeed: for parameter 1: got int, want string"},
		{"wrong keyword", web + "web.wait_for_file(\"/x\", when = 3)\n", "2:18", "web.wait_for_file: unexpected keyword argument \"when\""},
		{"bad timeout", web + "web.succeed(\"true\", timeout = \"soon\")\n", "2:12", "web.succeed: timeout: \"soon\": want a duration"},
		{"bad port", web + "web.wait_for_open_port(\"80\")\n", "2:23", "web.wait_for_open_port: for parameter port: got string, want int"},
		{"bad regex", web + "web.wait_for_console_text(\"(\")\n", "2:26", "web.wait_for_console_text: error parsing regexp"},
		{"missing host file", "m = machine(\"m\", files = {\"/etc/x\": \"no-such-file\"})\n", "1:12", "machine m: files: /etc/x: host file: stat testdata/no-such-file: no such file or directory"},
		{"relative guest path", "m = machine(\"m\", files = {\"etc/x\": b\"\"})\n", "1:12", "want an absolute guest path"},
		{"wrong file value", "m = machine(\"m\", files = {\"/etc/x\": 3})\n", "1:12", "got int, want a host path (string), content (bytes, b\"...\") or file(...)"},
		{"bad machine name", "m = machine(\"Web_1\")\n", "1:12", "machine name \"Web_1\": use lowercase letters"},
		{"twice declared", web + "machine(\"web\")\n", "2:8", "machine web declared twice (first at testdata/bad.star:1:14)"},
		{"bad memory", "m = machine(\"m\", memory = \"lots\")\n", "1:12", "machine m: memory: \"lots\": want a size"},
		{"modules not a list", "m = machine(\"m\", modules = \"overlay\")\n", "1:12", "machine: for parameter \"modules\": got string, want iterable"},
		{"packages not a list", "m = machine(\"m\", packages = \"jq\")\n", "1:12", "machine: for parameter \"packages\": got string, want iterable"},
		{"package not a string", "m = machine(\"m\", packages = [1])\n", "1:12", "machine m: packages: got int in the list, want strings"},
		{"no steps", web + "log(\"nothing to do\")\n", "1:1", "scenario has no steps: define test() or call machine verbs at the top level"},
		{"test with parameters", web + "def test(m):\n    m.succeed(\"true\")\n", "2:1", "test() must take no arguments"},
		{"subtest without a function", web + "subtest(\"x\")\n", "2:8", "subtest: missing argument for fn"},
		{"wait_for_unit without a unit", web + "web.wait_for_unit()\n", "2:18", "web.wait_for_unit: missing argument for unit"},
		{"wait_for_unit of no name", web + "web.wait_for_unit(\"\")\n", "2:18", "web.wait_for_unit: empty unit name"},
		{"wait_for_unit of a bad user", web + "web.wait_for_unit(\"x\", user = 1000)\n", "2:18", "web.wait_for_unit: for parameter \"user\": got int, want string"},
		{"wait_for_unit bad timeout", web + "web.wait_for_unit(\"x\", timeout = -1)\n", "2:18", "web.wait_for_unit: timeout: -1s: want a positive duration"},
		{"systemctl without a command", web + "web.systemctl(\" \")\n", "2:14", "web.systemctl: empty command: want one such as \"is-active web\""},
		{"systemctl of a list", web + "web.systemctl([\"start\", \"web\"])\n", "2:14", "web.systemctl: for parameter args: got list, want string"},
		{"unit_state of an int", web + "web.unit_state(1)\n", "2:15", "web.unit_state: for parameter unit: got int, want string"},
		{"require_unit_state of no state", web + "web.require_unit_state(\"x\", \"running\")\n", "2:23", "web.require_unit_state: require_state \"running\": want one of inactive, activating, active, deactivating, failed"},
		{"exec with an int in env", web + "web.exec(\"env\", env = {\"A\": 1})\n", "2:9", "web.exec: env: got string: int, want strings to strings"},
		{"exec in a relative dir", web + "web.exec(\"ls\", dir = \"tmp\")\n", "2:9", "web.exec: dir \"tmp\": want an absolute guest path"},
		{"exec with stdin of an int", web + "web.exec(\"cat\", stdin = 1)\n", "2:9", "web.exec: stdin: got int, want a string or bytes"},
		{"service without a command", "service(\"web\")\n", "1:8", "service: missing argument for command"},
		{"service of an empty name", "service(\"\", \"true\")\n", "1:8", "service: want a name and a command, such as service(\"web\", \"httpd -f -p 80\")"},
		{"service name with a slash", "service(\"a/b\", \"true\")\n", "1:8", "service: name \"a/b\": want a unit name without spaces or slashes"},
		{"service restart policy", "service(\"web\", \"true\", restart = \"sometimes\")\n", "1:8", "service web: restart \"sometimes\": want \"no\", \"on-failure\" or \"always\""},
		{"service after a string", "service(\"web\", \"true\", after = \"db\")\n", "1:8", "service: for parameter \"after\": got string, want iterable"},
		{"service ready as a dict", "service(\"web\", \"true\", ready = {\"port\": 80})\n", "1:8", "service web: ready: got dict, want readiness(...)"},
		{"readiness bad port", "readiness(port = 70000)\n", "1:10", "readiness: port 70000: want 1 to 65535"},
		{"readiness bad timeout", "readiness(timeout = \"soon\")\n", "1:10", "readiness: timeout: \"soon\": want a duration"},
		{"services of strings", "machine(\"m\", services = [\"web\"])\n", "1:8", "machine m: services: got string, want service(...) in the list"},
		{"service twice", "machine(\"m\", services = [service(\"a\", \"true\"), service(\"a\", \"true\")])\n", "1:8", "machine m: services: service a given twice"},
		{"service after an unknown", "machine(\"m\", services = [service(\"a\", \"true\", after = [\"b\"])])\n", "1:8", "machine m: services: service a: after \"b\": no such service on this machine (it has a)"},
		{"blank disk without size", "disk(name = \"d\")\n", "1:5", "disk d: a blank disk needs size_mib= (or contents= or image=)"},
		{"negative disk", "disk(size_mib = -1)\n", "1:5", "disk: size_mib=-1: want a size in MiB"},
		{"disk contents and image", "disk(contents = \"disk\", image = \"hello.txt\")\n", "1:5", "disk: contents= or image=, not both"},
		{"disk image with size", "disk(image = \"hello.txt\", size_mib = 5)\n", "1:5", "disk: an image= disk has the image's size: leave out size_mib"},
		{"disk missing contents", "disk(contents = \"nowhere\")\n", "1:5", "disk: contents: stat testdata/nowhere: no such file or directory"},
		{"blank read-only disk", "disk(size_mib = 5, read_only = True)\n", "1:5", "disk: a blank read_only=True disk can hold nothing"},
		{"disks of a dict", "machine(\"m\", disks = [{\"size_mib\": 5}])\n", "1:8", "machine m: disks: got dict, want disk(...) in the list"},
		{"debian bad unit", "debian(units = {\"app\": \"\"})\n", "1:7", "debian: unit \"app\": want a systemd unit file name such as web.service"},
		{"debian units of a list", "debian(units = [\"app.service\"])\n", "1:7", "debian: for parameter \"units\": got list, want dict"},
		{"debian with packages", "machine(\"m\", debian = debian(), packages = [\"jq\"])\n", "1:8", "machine m: packages= are the initramfs's: a debian= machine takes them in debian(packages=[...])"},
		{"debian with services", "machine(\"m\", debian = debian(), services = [service(\"a\", \"true\")])\n", "1:8", "declare them in debian(units={...}), not services="},
		{"debian with a kernel", "machine(\"m\", debian = debian(), kernel = \"hello.txt\")\n", "1:8", "leave out kernel= and initrd="},
		{"debian of a dict", "machine(\"m\", debian = {})\n", "1:8", "machine m: debian: got dict, want debian(...)"},
		{"missing kernel", "machine(\"m\", kernel = \"bzImage\")\n", "1:8", "machine m: kernel: stat testdata/bzImage: no such file or directory"},
		{"initrd with a lock file", "machine(\"m\", initrd = \"hello.txt\", lock_file = \"m.lock\")\n", "1:8", "machine m: lock_file= pins the packages shakedown installs"},
		{"qemu args not a list", "machine(\"m\", qemu_args = \"-s\")\n", "1:8", "machine: for parameter \"qemu_args\": got string, want iterable"},
		{"file without content", "file(mode = 0o644)\n", "1:5", "file: want host= (a host path) or data= (the content), one of them"},
		{"file with both", "file(host = \"hello.txt\", data = b\"\")\n", "1:5", "file: want host= (a host path) or data= (the content), one of them"},
		{"file of a bad mode", "file(data = \"\", mode = 0o17777)\n", "1:5", "file: mode 017777: want permission bits such as 0o755"},
		{"file of a missing host", "file(host = \"nope\")\n", "1:5", "file: host: stat testdata/nope: no such file or directory"},
		{"pid with an argument", web + "web.pid(1)\n", "2:8", "web.pid: got 1 arguments, want at most 0"},
		{"unknown machine field", web + "def test():\n    print(web.adr)\n", "3:15", "machine web has no verb .adr (did you mean .addr?)"},
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

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in      starlark.Value
		want    int
		wantErr bool
	}{
		{starlark.None, 0, false},
		{starlark.MakeInt(512), 512, false},
		{starlark.String("512M"), 512, false},
		{starlark.String("512MiB"), 512, false},
		{starlark.String("2G"), 2048, false},
		{starlark.String("2GiB"), 2048, false},
		{starlark.String("2GB"), 2048, false},
		{starlark.String("2T"), 0, true},
		{starlark.String("M"), 0, true},
		{starlark.MakeInt(1), 0, true},
		{starlark.Float(1.5), 0, true},
	}
	for _, tt := range tests {
		got, err := parseMemory(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseMemory(%v) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      starlark.Value
		want    time.Duration
		wantErr bool
	}{
		{starlark.None, 0, false},
		{starlark.String("30s"), 30 * time.Second, false},
		{starlark.String("1m30s"), 90 * time.Second, false},
		{starlark.MakeInt(10), 10 * time.Second, false},
		{starlark.Float(0.5), 500 * time.Millisecond, false},
		{starlark.String("30"), 0, true},
		{starlark.String("-1s"), 0, true},
		{starlark.MakeInt(0), 0, true},
		{starlark.True, 0, true},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseDuration(%v) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
