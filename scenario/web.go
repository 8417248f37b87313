package scenario

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/shakedown-dev/shakedown"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// webStub is what makes a host a web stand-in (webstub.Server, attached
// with webnet): its configuration as declared, and the server once the
// testbed is made.
type webStub struct {
	cfg  webstub.Config
	port int
	s    *webstub.Server
}

func (w *webStub) kind() string               { return "web_stub" }
func (w *webStub) verbs() map[string]stubVerb { return webVerbs }

func (w *webStub) attach(hv *hostValue) (*shakedown.Host, error) {
	cfg := w.cfg
	cfg.Logf = hv.logf()
	w.s = webstub.New(cfg)
	hv.r.t.Cleanup(func() { w.s.Close() })
	h, err := hv.declareOn()
	if err != nil {
		return nil, err
	}
	return h, webnet.Serve(h, w.s, w.port)
}

// webServer is the web server behind a stand-in whose verbs include
// web_stub's faults and request log: a web stub's, or a registry's.
type webServer interface {
	web() *webstub.Server
}

func (w *webStub) web() *webstub.Server { return w.s }

// logf is the log of a stand-in's server, its lines named for the host.
func (hv *hostValue) logf() func(string, ...any) {
	return func(format string, args ...any) { hv.r.log.Printf(hv.name+": "+format, args...) }
}

// webVerbs are the verbs of a web stand-in, besides a host's.
var webVerbs = map[string]stubVerb{
	"handle":           (*hostValue).webHandle,
	"set_fault":        (*hostValue).webSetFault,
	"clear_fault":      (*hostValue).webClearFault,
	"clear_faults":     (*hostValue).webClearFaults,
	"requests":         (*hostValue).webRequests,
	"wait_for_request": (*hostValue).webWaitForRequest,
}

// webStubBuiltin is web_stub(network, name, port=, ca=, dir=, tls=,
// number=): a host on the network serving HTTP(S) on port (443 with TLS,
// 80 without; webnet.Serve), from dir (a host directory, from the
// scenario's) and the routes handle() adds; with ca= it serves HTTPS with
// certificates the CA issues for whatever name or address a client asks,
// unless tls=False.
func (r *runner) webStubBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		gateway starlark.Value = starlark.None
		network starlark.Value
		name    string
		port    int
		ca      starlark.Value = starlark.None
		dir     string
		tls     starlark.Value = starlark.None
		num     int
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "network", &network, "name", &name, "port?", &port,
		"ca?", &ca, "dir?", &dir, "tls?", &tls, "number?", &num, "gateway?", &gateway); err != nil {
		return nil, err
	}
	w := &webStub{port: port}
	var err error
	if w.cfg.CA, err = caOf(ca); err != nil {
		return nil, fmt.Errorf("web_stub %s: ca: %w", name, err)
	}
	useTLS := w.cfg.CA != nil
	if tls != starlark.None {
		t, ok := tls.(starlark.Bool)
		if !ok {
			return nil, fmt.Errorf("web_stub %s: tls: got %s, want True or False", name, tls.Type())
		}
		useTLS = bool(t)
	}
	switch {
	case useTLS && w.cfg.CA == nil:
		return nil, fmt.Errorf("web_stub %s: tls=True needs ca=ca(), the CA its certificates come from", name)
	case !useTLS:
		w.cfg.CA = nil
	}
	if w.port == 0 {
		w.port = 80
		if useTLS {
			w.port = 443
		}
	}
	if w.port < 1 || w.port > 65535 {
		return nil, fmt.Errorf("web_stub %s: port=%d: want 1 to 65535", name, w.port)
	}
	if dir != "" {
		w.cfg.Dir = r.sc.hostPath(dir)
		if fi, err := os.Stat(w.cfg.Dir); err != nil {
			return nil, fmt.Errorf("web_stub %s: dir: %w", name, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("web_stub %s: dir %s: not a directory", name, w.cfg.Dir)
		}
	}
	return r.declareStub(thread, b.Name(), network, name, num, gateway, w)
}

// webOf is the web server of a stand-in, once bound.
func (hv *hostValue) webOf() *webstub.Server { return hv.stub.(webServer).web() }

// webHandle is handle(pattern, body=, status=, content_type=): a route
// (http.ServeMux's pattern, "GET /payload") answering status (200) with
// body, asked before dir.
func (hv *hostValue) webHandle(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		pattern, contentType string
		body                 starlark.Value = starlark.String("")
		status                              = http.StatusOK
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "pattern", &pattern, "body?", &body, "status?", &status,
		"content_type?", &contentType); err != nil {
		return nil, err
	}
	var data []byte
	switch v := body.(type) {
	case starlark.String:
		data = []byte(v)
	case starlark.Bytes:
		data = []byte(v)
	default:
		return nil, fmt.Errorf("%s: body: got %s, want a string or bytes", name, body.Type())
	}
	if status < 100 || status > 599 {
		return nil, fmt.Errorf("%s: status %d: want 100 to 599", name, status)
	}
	// The pattern's syntax, on a mux of no use, so that a bad one fails
	// before anything boots rather than panicking in the step.
	if err := checkPattern(pattern); err != nil {
		return nil, fmt.Errorf("%s: pattern %q: %v (want a path such as \"/payload\" or \"GET /payload\")", name, pattern, err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		w.Write(data)
	})
	return hv.stubStep(name, fmt.Sprintf("handle %q: %d, %d bytes", pattern, status, len(data)), func() (v starlark.Value, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("handle %q: %v", pattern, p)
			}
		}()
		hv.webOf().Handle(pattern, h)
		return starlark.None, nil
	})
}

// checkPattern reports what http.ServeMux would panic on.
func checkPattern(pattern string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	http.NewServeMux().Handle(pattern, http.NotFoundHandler())
	return nil
}

// webSetFault is set_fault(path, status=, retry_after=, delay=, drop=,
// times=): webstub.Fault's fields, for requests whose path starts with
// path.
func (hv *hostValue) webSetFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		prefix            string
		f                 webstub.Fault
		retryAfter, delay starlark.Value = starlark.None, starlark.None
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "path", &prefix, "status?", &f.Status, "retry_after?", &retryAfter,
		"delay?", &delay, "drop?", &f.Drop, "times?", &f.Times); err != nil {
		return nil, err
	}
	var err error
	if f.RetryAfter, err = parseDuration(retryAfter); err != nil {
		return nil, fmt.Errorf("%s: retry_after: %w", name, err)
	}
	if f.Delay, err = parseDuration(delay); err != nil {
		return nil, fmt.Errorf("%s: delay: %w", name, err)
	}
	// The fault's own rules, on a server that serves nothing, so that a
	// contradiction fails before anything boots.
	if err := webstub.New(webstub.Config{}).SetFault(prefix, f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return hv.stubStep(name, "set fault "+prefix+" "+f.String(), func() (starlark.Value, error) {
		return starlark.None, hv.webOf().SetFault(prefix, f)
	})
}

// webClearFault is clear_fault(path): the fault set on path.
func (hv *hostValue) webClearFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var prefix string
	if err := starlark.UnpackArgs(name, args, kwargs, "path", &prefix); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "clear fault "+prefix, func() (starlark.Value, error) {
		hv.webOf().ClearFault(prefix)
		return starlark.None, nil
	})
}

// webClearFaults is clear_faults(): every fault.
func (hv *hostValue) webClearFaults(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "clear faults", func() (starlark.Value, error) {
		hv.webOf().ClearFaults()
		return starlark.None, nil
	})
}

// webMatch reads webstub.Match's fields: method=, host=, path=,
// path_prefix=, status=.
func webMatch(name string, args starlark.Tuple, kwargs []starlark.Tuple) (webstub.Match, error) {
	var m webstub.Match
	err := starlark.UnpackArgs(name, args, kwargs, "method?", &m.Method, "host?", &m.Host, "path?", &m.Path,
		"path_prefix?", &m.PathPrefix, "status?", &m.Status)
	m.Method = strings.ToUpper(m.Method)
	return m, err
}

// webRequests is requests(method=, host=, path=, path_prefix=, status=):
// the requests the stand-in answered, oldest first, as structs of method,
// host, path, query, remote, user_agent, tls, status, bytes, dropped and
// fault.
func (hv *hostValue) webRequests(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := webMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "requests "+m.String(), func() (starlark.Value, error) {
		var out []starlark.Value
		for _, q := range hv.webOf().Log() {
			if m.Matches(q) {
				out = append(out, webRequestValue(q))
			}
		}
		return starlark.NewList(out), nil
	})
}

// webWaitForRequest is wait_for_request(method=, host=, path=,
// path_prefix=, status=, timeout=): the first request that matches, logged
// already or to come, as requests() gives it.
func (hv *hostValue) webWaitForRequest(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kwargs, timeout, err := takeWaitTimeout(name, kwargs)
	if err != nil {
		return nil, err
	}
	m, err := webMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "wait for "+m.String(), func() (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(timeout)
		defer cancel()
		q, err := hv.webOf().WaitForRequest(ctx, m)
		if err != nil {
			return nil, err
		}
		return webRequestValue(q), nil
	})
}

func webRequestValue(q webstub.Request) starlark.Value {
	fault := ""
	if q.Fault != nil {
		fault = q.Fault.String()
	}
	return starlarkstruct.FromStringDict(starlark.String("request"), starlark.StringDict{
		"method":     starlark.String(q.Method),
		"host":       starlark.String(q.Host),
		"path":       starlark.String(q.Path),
		"query":      starlark.String(q.RawQuery),
		"remote":     starlark.String(q.Remote.Addr().String()),
		"user_agent": starlark.String(q.UserAgent),
		"tls":        starlark.Bool(q.TLS),
		"status":     starlark.MakeInt(q.Status),
		"bytes":      starlark.MakeInt64(q.Bytes),
		"dropped":    starlark.Bool(q.Dropped),
		"fault":      starlark.String(fault),
	})
}
