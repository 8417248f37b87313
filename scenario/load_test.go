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
		{"wrong file value", "m = machine(\"m\", files = {\"/etc/x\": 3})\n", "1:12", "got int, want a host path (string) or content (bytes"},
		{"bad machine name", "m = machine(\"Web_1\")\n", "1:12", "machine name \"Web_1\": use lowercase letters"},
		{"twice declared", web + "machine(\"web\")\n", "2:8", "machine web declared twice (first at testdata/bad.star:1:14)"},
		{"bad memory", "m = machine(\"m\", memory = \"lots\")\n", "1:12", "machine m: memory: \"lots\": want a size"},
		{"modules not a list", "m = machine(\"m\", modules = \"overlay\")\n", "1:12", "machine: for parameter \"modules\": got string, want iterable"},
		{"packages not a list", "m = machine(\"m\", packages = \"jq\")\n", "1:12", "machine: for parameter \"packages\": got string, want iterable"},
		{"package not a string", "m = machine(\"m\", packages = [1])\n", "1:12", "machine m: packages: got int in the list, want strings"},
		{"no steps", web + "log(\"nothing to do\")\n", "1:1", "scenario has no steps: define test() or call machine verbs at the top level"},
		{"test with parameters", web + "def test(m):\n    m.succeed(\"true\")\n", "2:1", "test() must take no arguments"},
		{"subtest without a function", web + "subtest(\"x\")\n", "2:8", "subtest: missing argument for fn"},
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
