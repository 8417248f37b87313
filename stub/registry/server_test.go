package registrystub_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	registrystub "github.com/shakedown-dev/shakedown/stub/registry"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
)

// opTimeout bounds a push or pull of a small image on loopback, for a
// loaded runner under -race.
const opTimeout = 30 * time.Second

// fixture starts a TLS registry with its own CA on loopback, closed when
// the test ends.
func fixture(t *testing.T) (*registrystub.Server, *tlsca.CA) {
	t.Helper()
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := registrystub.New(registrystub.Config{CA: ca, Logf: t.Logf})
	t.Cleanup(func() { s.Close() })
	if _, err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	return s, ca
}

// pull fetches ref from s with a client trusting ca, reading the whole
// image, as a machine would.
func pull(ctx context.Context, s *registrystub.Server, ca *tlsca.CA, ref string) (v1.Image, error) {
	r, err := name.ParseReference(s.Addr() + "/" + ref)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = ca.ClientTLSConfig()
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithTransport(tr))
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if _, err := l.Digest(); err != nil {
			return nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		rc.Close()
	}
	if _, err := img.ConfigFile(); err != nil {
		return nil, err
	}
	return img, nil
}

// TestPushPull pushes a random image and pulls it over TLS: the pull log
// holds its manifest and blobs, the push is in neither log.
func TestPushPull(t *testing.T) {
	s, ca := fixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := s.Push(ctx, "library/app:1.0", img)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Pulls()) + len(s.Pushes()); n != 0 {
		t.Errorf("after the test's push: got %d log entries, want none", n)
	}
	got, err := pull(ctx, s, ca, "library/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != pushed {
		t.Errorf("pulled digest: got %v, want %v", d, pushed)
	}

	p, err := s.WaitForPull(ctx, registrystub.Match{Repo: "library/app", Kind: registrystub.Manifest, Reference: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "GET" || p.Status != 200 || p.Digest != pushed.String() || p.Refused || p.Remote.Addr().String() != "127.0.0.1" {
		t.Errorf("manifest pull: got %+v, want GET answered 200 with digest %v from 127.0.0.1", p, pushed)
	}
	cfgName, _ := img.ConfigName()
	blobs := map[string]bool{cfgName.String(): false}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		blobs[d.String()] = false
	}
	for _, p := range s.Pulls() {
		if p.Kind == registrystub.Blob {
			blobs[p.Reference] = true
		}
	}
	for d, pulled := range blobs {
		if !pulled {
			t.Errorf("blob %s: not in the pull log %v", d, s.Pulls())
		}
	}
	if !strings.HasPrefix(p.String(), "pull GET manifest library/app:1.0 from 127.0.0.1:") {
		t.Errorf("String: got %q", p.String())
	}
}

// TestRefusePulls checks airgap mode: pulls fail with DENIED and are
// logged as refused; the test's pushes go on; turned off, pulls work.
func TestRefusePulls(t *testing.T) {
	s, ca := fixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	img, _ := random.Image(512, 1)
	s.SetRefusePulls(true)
	if _, err := s.Push(ctx, "app:1", img); err != nil {
		t.Fatalf("push in airgap mode: %v", err)
	}
	_, err := pull(ctx, s, ca, "app:1")
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusForbidden || len(terr.Errors) != 1 || terr.Errors[0].Code != transport.DeniedErrorCode {
		t.Fatalf("pull in airgap mode: got %v, want 403 DENIED", err)
	}
	pulls := s.Pulls()
	if len(pulls) != 1 || !pulls[0].Refused || pulls[0].Status != 403 || pulls[0].Repo != "app" || pulls[0].Reference != "1" {
		t.Errorf("pull log: got %v, want one refused pull of app:1", pulls)
	}
	if !strings.HasSuffix(pulls[0].String(), ": 403 refused (airgap)") {
		t.Errorf("String: got %q", pulls[0].String())
	}
	s.SetRefusePulls(false)
	if _, err := pull(ctx, s, ca, "app:1"); err != nil {
		t.Errorf("pull with airgap mode off: %v", err)
	}
}

// TestWaitForPull says what it waited for and what came.
func TestWaitForPull(t *testing.T) {
	s, ca := fixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := s.WaitForPull(ctx, registrystub.Match{Repo: "app", Kind: registrystub.Manifest})
	if !errors.Is(err, registrystub.ErrNoPull) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "wait for a pull of manifest app: no matching pull after") ||
		!strings.Contains(err.Error(), "no pull came at all") {
		t.Errorf("with no pull: got %v", err)
	}

	pctx, pcancel := context.WithTimeout(t.Context(), opTimeout)
	defer pcancel()
	if _, err := pull(pctx, s, ca, "missing:1"); err == nil {
		t.Fatal("pull of an image not pushed: got no error")
	}
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = s.WaitForPull(ctx, registrystub.Match{Repo: "app", Reference: "2"})
	if !errors.Is(err, registrystub.ErrNoPull) ||
		!strings.Contains(err.Error(), "wait for a pull of app:2") ||
		!strings.Contains(err.Error(), "1 pull came, none matching; the last 1:\n\t") ||
		!strings.Contains(err.Error(), "pull GET manifest missing:1 from 127.0.0.1:") {
		t.Errorf("with another pull: got %v", err)
	}
}

// TestPushTarball pushes a docker tarball and an OCI layout, and pulls
// each.
func TestPushTarball(t *testing.T) {
	s, ca := fixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	dir := t.TempDir()
	img, _ := random.Image(256, 1)
	want, _ := img.Digest()

	tarPath := filepath.Join(dir, "image.tar")
	if err := tarball.WriteToFile(tarPath, name.MustParseReference("x/y:z"), img); err != nil {
		t.Fatal(err)
	}
	layoutPath := filepath.Join(dir, "layout")
	p, err := layout.Write(layoutPath, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, ref string }{
		{"docker tarball", tarPath, "from/tarball:1"},
		{"oci layout", layoutPath, "from/layout:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.PushTarball(ctx, tc.path, tc.ref); err != nil {
				t.Fatal(err)
			}
			got, err := pull(ctx, s, ca, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			// A docker tarball holds the layers and config, not the
			// manifest: its digest is the image's if the layers are
			// the same, which compares them.
			gl, _ := got.Layers()
			wl, _ := img.Layers()
			gd, _ := gl[0].Digest()
			wd, _ := wl[0].Digest()
			if gd != wd {
				t.Errorf("layer: got %v, want %v", gd, wd)
			}
			if d, _ := got.Digest(); tc.name == "oci layout" && d != want {
				t.Errorf("digest: got %v, want %v", d, want)
			}
		})
	}
	if _, err := s.PushTarball(ctx, filepath.Join(dir, "nope"), "a:b"); err == nil {
		t.Error("PushTarball of a missing file: got no error")
	}
}

// TestBadReference refuses references that name a registry or do not
// parse.
func TestBadReference(t *testing.T) {
	s, _ := fixture(t)
	img, _ := random.Image(1, 1)
	for _, ref := range []string{"docker.io/library/alpine:3", "localhost/a:1", "reg:5000/a:1", "UPPER:case", "a:b:c"} {
		if _, err := s.Push(t.Context(), ref, img); !errors.Is(err, registrystub.ErrBadReference) {
			t.Errorf("Push(%q): got %v, want ErrBadReference", ref, err)
		}
	}
}

// TestPlainHTTP pushes to a registry without TLS (it starts itself), and
// logs a client's push of its own.
func TestPlainHTTP(t *testing.T) {
	s := registrystub.New(registrystub.Config{Logf: t.Logf})
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	img, _ := random.Image(64, 1)
	if _, err := s.Push(ctx, "a:1", img); err != nil {
		t.Fatal(err)
	}
	// Another image: the blobs of a, which the registry holds already,
	// would not be uploaded again.
	other, _ := random.Image(64, 1)
	r, _ := name.ParseReference(s.Addr()+"/b:2", name.Insecure)
	if err := remote.Write(r, other, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Pushes() {
		got = append(got, string(p.Kind)+" "+p.Repo)
		if p.Status != http.StatusCreated {
			t.Errorf("%v: got status %d, want 201", p, p.Status)
		}
	}
	if strings.Join(got, ",") != "blob b,blob b,manifest b" {
		t.Errorf("push log: got %v, want the two blobs and the manifest of b", got)
	}
}
