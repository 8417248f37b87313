package webnet_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/ocitest"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	registrystub "github.com/shakedown-dev/shakedown/stub/registry"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// TestGuestPullsAndFetches has a Debian guest that trusts the test's CA
// through its own trust store (update-ca-certificates) fetch from the web
// stand-in with curl and pull an image from the registry stand-in with
// containerd's ctr, both over HTTPS by name; then, with pulls refused
// (airgap mode), the pull fails and the registry's log says so.
func TestGuestPullsAndFetches(t *testing.T) {
	testenv.NeedDebian(t)
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "library/hello:v1"
	tarPath := ocitest.Hello(t, "example.com/hello:v1")

	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	web := webstub.New(webstub.Config{CA: ca, Logf: t.Logf})
	t.Cleanup(func() { web.Close() })
	web.HandleFunc("GET /payload", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("installer payload\n")) })
	if _, err := webnet.Attach(lan, "files", web, 443); err != nil {
		t.Fatal(err)
	}
	reg := registrystub.New(registrystub.Config{CA: ca, Logf: t.Logf})
	t.Cleanup(func() { reg.Close() })
	if _, err := reg.PushTarball(ctx(t), tarPath, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := webnet.Attach(lan, "registry", reg, 443); err != nil {
		t.Fatal(err)
	}

	var files []shakedown.File
	for path, data := range ca.GuestFiles(tlsca.Debian) {
		files = append(files, shakedown.File{Guest: path, Data: data})
	}
	m := tb.Machine("node", shakedown.MachineConfig{
		Networks:    []string{"lan"},
		MemoryMiB:   1024,
		BootTimeout: 5 * time.Minute,
		Files:       files,
		Debian:      &shakedown.DebianSystem{Packages: []string{"containerd", "runc", "curl", "ca-certificates"}},
	})
	m.Start()
	m = m.WithTimeout(3 * time.Minute)
	m.Succeed(tlsca.DebianUpdateCommand)

	if got := m.Succeed("curl -sSf https://files/payload"); got != "installer payload\n" {
		t.Errorf("curl https://files/payload: got %q", got)
	}
	if _, err := web.WaitForRequest(ctx(t), webstub.Match{Path: "/payload"}); err != nil {
		t.Error(err)
	}

	m.WaitForOpenUnixSocket("/run/containerd/containerd.sock")
	m.Succeed("ctr -n test image pull registry/" + ref + " >&2")
	if got := m.Succeed("ctr -n test run --rm registry/" + ref + " c1"); got != ocitest.Greeting+"\n" {
		t.Errorf("ctr run: got %q, want the program's greeting", got)
	}
	p, err := reg.WaitForPull(ctx(t), registrystub.Match{Repo: "library/hello", Kind: registrystub.Manifest})
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Remote.Addr(); a != m.Addr() && a != m.Addr6() || p.Refused {
		t.Errorf("pull %v: want one from the guest, %s or %s, served", p, m.Addr(), m.Addr6())
	}

	// Airgap: every pull is refused, and the log shows the attempt.
	reg.SetRefusePulls(true)
	since := time.Now()
	m.Succeed("ctr -n test image rm registry/" + ref)
	if out := m.Fail("ctr -n test image pull registry/" + ref + " 2>&1"); !strings.Contains(out, "403") && !strings.Contains(strings.ToLower(out), "denied") {
		t.Errorf("pull while refused: got %q, want a 403 or denied", out)
	}
	if _, err := reg.WaitForPull(ctx(t), registrystub.Match{Since: since,
		Func: func(p registrystub.Pull) bool { return p.Refused }, Desc: "was refused"}); err != nil {
		t.Error(err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
