package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shakedown-dev/shakedown/image/oci"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/shakedown-dev/shakedown"
	registrystub "github.com/shakedown-dev/shakedown/stub/registry"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// registryStub is what makes a host an OCI registry stand-in
// (registrystub.Server, attached with webnet).
type registryStub struct {
	cfg  registrystub.Config
	port int
	s    *registrystub.Server
}

func (g *registryStub) kind() string               { return "registry_stub" }
func (g *registryStub) verbs() map[string]stubVerb { return registryVerbs }
func (g *registryStub) web() *webstub.Server       { return g.s.Web() }

func (g *registryStub) attach(hv *hostValue) (*shakedown.Host, error) {
	cfg := g.cfg
	cfg.Logf = hv.logf()
	g.s = registrystub.New(cfg)
	hv.r.t.Cleanup(func() { g.s.Close() })
	h, err := hv.declareOn()
	if err != nil {
		return nil, err
	}
	return h, webnet.Serve(h, g.s, g.port)
}

// registryVerbs are the verbs of a registry stand-in, besides a host's:
// its own, and its web server's faults and request log.
var registryVerbs = map[string]stubVerb{
	"push_tarball":     (*hostValue).registryPushTarball,
	"push_image":       (*hostValue).registryPushImage,
	"set_refuse_pulls": (*hostValue).registrySetRefusePulls,
	"pulls":            (*hostValue).registryPulls,
	"wait_for_pull":    (*hostValue).registryWaitForPull,
	"set_fault":        (*hostValue).webSetFault,
	"clear_fault":      (*hostValue).webClearFault,
	"clear_faults":     (*hostValue).webClearFaults,
	"requests":         (*hostValue).webRequests,
	"wait_for_request": (*hostValue).webWaitForRequest,
}

// registryStubBuiltin is registry_stub(network, name, ca=, port=,
// number=): a host on the network serving an OCI registry on port (443
// with ca=, which issues its certificates; 80 and plain HTTP without),
// which machines pull from as NAME/repo:tag.
func (r *runner) registryStubBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		gateway starlark.Value = starlark.None
		network starlark.Value
		name    string
		ca      starlark.Value = starlark.None
		port    int
		num     int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "network", &network, "name", &name, "ca?", &ca,
		"port?", &port, "number?", &num, "gateway?", &gateway); err != nil {
		return nil, err
	}
	g := &registryStub{port: port}
	var err error
	if g.cfg.CA, err = caOf(ca); err != nil {
		return nil, fmt.Errorf("registry_stub %s: ca: %w", name, err)
	}
	if g.port == 0 {
		g.port = 80
		if g.cfg.CA != nil {
			g.port = 443
		}
	}
	if g.port < 1 || g.port > 65535 {
		return nil, fmt.Errorf("registry_stub %s: port=%d: want 1 to 65535", name, g.port)
	}
	return r.declareStub(thread, b.Name(), network, name, num, gateway, g)
}

func (hv *hostValue) registry() *registrystub.Server { return hv.stub.(*registryStub).s }

// registryPushTarball is push_tarball(path, ref): the image at path (a
// host path from the scenario's directory: a docker save tarball, or an
// OCI layout directory) stored at ref ("library/hello:1"); it returns the
// digest.
func (hv *hostValue) registryPushTarball(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var path, ref string
	if err := starlark.UnpackArgs(name, args, kwargs, "path", &path, "ref", &ref); err != nil {
		return nil, err
	}
	host := hv.r.sc.hostPath(path)
	if _, err := os.Stat(host); err != nil {
		return nil, fmt.Errorf("%s: path: %w", name, err)
	}
	return hv.stubStep(name, fmt.Sprintf("push %s as %s", path, ref), func() (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(0)
		defer cancel()
		d, err := hv.registry().PushTarball(ctx, host, ref)
		if err != nil {
			return nil, err
		}
		return starlark.String(d.String()), nil
	})
}

// registryPushImage is push_image(ref, files={path: data}, entrypoint=,
// cmd=, env=): a one-layer image of those files (image/oci) stored at
// ref; it returns the digest. It needs no tarball on the host.
func (hv *hostValue) registryPushImage(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		ref                  string
		files                *starlark.Dict
		entrypoint, cmd, env *starlark.List
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "ref", &ref, "files", &files,
		"entrypoint?", &entrypoint, "cmd?", &cmd, "env?", &env); err != nil {
		return nil, err
	}
	img := oci.Image{Ref: "shakedown.invalid/" + ref, Files: map[string]oci.File{}}
	for _, kv := range files.Items() {
		path, ok1 := starlark.AsString(kv[0])
		data, ok2 := starlark.AsString(kv[1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: files: want {\"/path/in/image\": \"content\"}, got %s: %s", name, kv[0], kv[1].Type())
		}
		img.Files[path] = oci.File{Data: []byte(data)}
	}
	for _, l := range []struct {
		kw   string
		list *starlark.List
		to   *[]string
	}{{"entrypoint", entrypoint, &img.Entrypoint}, {"cmd", cmd, &img.Cmd}, {"env", env, &img.Env}} {
		if l.list == nil {
			continue
		}
		var err error
		if *l.to, err = stringList(l.list); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, l.kw, err)
		}
	}
	return hv.stubStep(name, "push an image of "+strconv.Itoa(len(img.Files))+" files as "+ref, func() (starlark.Value, error) {
		dir, err := os.MkdirTemp("", "shakedown-image-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		tarball := filepath.Join(dir, "image.tar")
		if err := oci.BuildFile(tarball, img); err != nil {
			return nil, err
		}
		ctx, cancel := hv.r.waitContext(0)
		defer cancel()
		d, err := hv.registry().PushTarball(ctx, tarball, ref)
		if err != nil {
			return nil, err
		}
		return starlark.String(d.String()), nil
	})
}

// registrySetRefusePulls is set_refuse_pulls(refuse): airgap mode, every
// pull answered 403 DENIED and logged.
func (hv *hostValue) registrySetRefusePulls(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var refuse bool
	if err := starlark.UnpackArgs(name, args, kwargs, "refuse", &refuse); err != nil {
		return nil, err
	}
	return hv.stubStep(name, fmt.Sprintf("refuse pulls %v", refuse), func() (starlark.Value, error) {
		hv.registry().SetRefusePulls(refuse)
		return starlark.None, nil
	})
}

// registryMatch reads registrystub.Match's fields: repo=, reference=,
// kind= ("manifest" or "blob"), method=.
func registryMatch(name string, args starlark.Tuple, kwargs []starlark.Tuple) (registrystub.Match, error) {
	var m registrystub.Match
	var kind string
	if err := starlark.UnpackArgs(name, args, kwargs, "repo?", &m.Repo, "reference?", &m.Reference, "kind?", &kind,
		"method?", &m.Method); err != nil {
		return m, err
	}
	switch registrystub.Kind(kind) {
	case "", registrystub.Manifest, registrystub.Blob:
		m.Kind = registrystub.Kind(kind)
	default:
		return m, fmt.Errorf("%s: kind %q: want \"manifest\" or \"blob\"", name, kind)
	}
	return m, nil
}

// registryPulls is pulls(repo=, reference=, kind=, method=): the pulls
// logged, oldest first, as structs of method, kind, repo, reference,
// digest, status, refused and remote.
func (hv *hostValue) registryPulls(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := registryMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "pulls "+m.String(), func() (starlark.Value, error) {
		var out []starlark.Value
		for _, p := range hv.registry().Pulls() {
			if m.Matches(p) {
				out = append(out, pullValue(p))
			}
		}
		return starlark.NewList(out), nil
	})
}

// registryWaitForPull is wait_for_pull(repo=, reference=, kind=, method=,
// timeout=): the first pull that matches, logged already or to come.
func (hv *hostValue) registryWaitForPull(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kwargs, timeout, err := takeWaitTimeout(name, kwargs)
	if err != nil {
		return nil, err
	}
	m, err := registryMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "wait for "+m.String(), func() (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(timeout)
		defer cancel()
		p, err := hv.registry().WaitForPull(ctx, m)
		if err != nil {
			return nil, err
		}
		return pullValue(p), nil
	})
}

func pullValue(p registrystub.Pull) starlark.Value {
	return starlarkstruct.FromStringDict(starlark.String("pull"), starlark.StringDict{
		"method":    starlark.String(p.Method),
		"kind":      starlark.String(p.Kind),
		"repo":      starlark.String(p.Repo),
		"reference": starlark.String(p.Reference),
		"digest":    starlark.String(p.Digest),
		"status":    starlark.MakeInt(p.Status),
		"refused":   starlark.Bool(p.Refused),
		"remote":    starlark.String(p.Remote.Addr().String()),
	})
}
