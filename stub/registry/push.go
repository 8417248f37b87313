package registrystub

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Push stores img in the registry at ref, a repository and a tag or
// digest without a registry ("library/alpine:3.20"; a plain
// "library/alpine" means ":latest"), and returns its digest. It pushes
// over HTTP(S) with go-containerregistry's remote, to Start's loopback
// address (starting the server on a free loopback port if it is not yet),
// trusting the CA alone: a push tests the server's TLS as a client would.
// It is in neither log.
func (s *Server) Push(ctx context.Context, ref string, img v1.Image) (v1.Hash, error) {
	r, opts, err := s.pushTarget(ctx, ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: digest: %w", ref, err)
	}
	return d, nil
}

// PushIndex stores idx (a multi-platform image) at ref, as Push does an
// image.
func (s *Server) PushIndex(ctx context.Context, ref string, idx v1.ImageIndex) (v1.Hash, error) {
	r, opts, err := s.pushTarget(ctx, ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: digest: %w", ref, err)
	}
	return d, nil
}

// PushTarball loads an image from path and pushes it to ref as Push does:
// a file is a tarball of docker save's format (go-containerregistry's
// tarball, holding one image); a directory an OCI image layout (extract
// an OCI archive into one first), whose index is pushed whole, or its
// only image if it holds one.
func (s *Server) PushTarball(ctx context.Context, path, ref string) (v1.Hash, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s to %s: %w", path, ref, err)
	}
	if !fi.IsDir() {
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("push %s to %s: load docker tarball: %w", path, ref, err)
		}
		return s.Push(ctx, ref, img)
	}
	idx, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s to %s: load OCI layout: %w", path, ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s to %s: load OCI layout: %w", path, ref, err)
	}
	if len(m.Manifests) == 1 && m.Manifests[0].MediaType.IsImage() {
		img, err := idx.Image(m.Manifests[0].Digest)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("push %s to %s: load OCI layout: %w", path, ref, err)
		}
		return s.Push(ctx, ref, img)
	}
	return s.PushIndex(ctx, ref, idx)
}

// pushTarget is ref on Start's address and the remote options of a push
// there.
func (s *Server) pushTarget(ctx context.Context, ref string) (name.Reference, []remote.Option, error) {
	addr, err := s.ensureStarted()
	if err != nil {
		return nil, nil, fmt.Errorf("push %s: %w", ref, err)
	}
	var nameOpts []name.Option
	if s.cfg.CA == nil {
		nameOpts = append(nameOpts, name.Insecure) // plain HTTP
	}
	// A first component with a dot or a port, or localhost, names a
	// registry, as docker reads references: "docker.io/library/alpine"
	// would be a repository here, which is not what the test meant.
	first, _, _ := strings.Cut(ref, "/")
	hasRegistry := strings.Contains(ref, "/") && (strings.ContainsAny(first, ".:") || first == "localhost")
	r, err := name.ParseReference(addr+"/"+ref, nameOpts...)
	if err != nil || hasRegistry || r.Context().RegistryStr() != addr {
		return nil, nil, fmt.Errorf("push %q: %w: want a repository and tag or digest, without a registry (\"library/alpine:3.20\")", ref, ErrBadReference)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.cfg.CA != nil {
		tr.TLSClientConfig = s.cfg.CA.ClientTLSConfig()
		if len(s.cfg.Names) > 0 {
			tr.TLSClientConfig.ServerName = s.cfg.Names[0]
		}
	} else {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return r, []remote.Option{remote.WithContext(ctx), remote.WithTransport(markPush{tr})}, nil
}

// ensureStarted starts the server on loopback unless Start has, and
// returns its address.
func (s *Server) ensureStarted() (string, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if addr := s.Addr(); addr != "" {
		return addr, nil
	}
	return s.Start("")
}

// markPush marks a push's requests, which the logs leave out.
type markPush struct{ rt http.RoundTripper }

func (m markPush) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(pushHeader, "1")
	return m.rt.RoundTrip(r)
}
