package scenario

import (
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/stub/dns/pdnsapi"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// pdnsStub is what makes a host the PowerDNS HTTP API (pdnsapi.API) of a
// DNS stand-in's zones, served by a webstub.Server with webnet.
type pdnsStub struct {
	dns    *hostValue
	apiKey string
	port   int
	api    *pdnsapi.API
}

func (p *pdnsStub) kind() string               { return "pdns_api" }
func (p *pdnsStub) verbs() map[string]stubVerb { return pdnsVerbs }

func (p *pdnsStub) attach(hv *hostValue) (*shakedown.Host, error) {
	if p.dns.dns.s == nil {
		return nil, fmt.Errorf("dns_stub %s is not serving yet", p.dns.name)
	}
	p.api = pdnsapi.New(p.dns.dns.s, pdnsapi.Config{APIKey: p.apiKey, Logf: hv.logf()})
	ws := webstub.New(webstub.Config{Handler: p.api})
	hv.r.t.Cleanup(func() { ws.Close() })
	h, err := hv.declareOn()
	if err != nil {
		return nil, err
	}
	return h, webnet.Serve(h, ws, p.port)
}

// pdnsVerbs are the verbs of the API's host, besides a host's.
var pdnsVerbs = map[string]stubVerb{
	"set_fault":        (*hostValue).pdnsSetFault,
	"clear_faults":     (*hostValue).pdnsClearFaults,
	"requests":         (*hostValue).pdnsRequests,
	"wait_for_request": (*hostValue).pdnsWaitForRequest,
}

// pdnsAPIBuiltin is pdns_api(dns, network, name, api_key=, port=8081,
// number=): a host on the network serving, over plain HTTP on port, the
// PowerDNS API of the zones of dns (a dns_stub declared before), so that
// what a client changes there (lego's pdns provider, external-dns) the
// stub answers at once. Clients take http://NAME:PORT as the API's URL
// and api_key as X-API-Key ("" takes any).
func (r *runner) pdnsAPIBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		gateway starlark.Value = starlark.None
		dnsv    starlark.Value
		network starlark.Value
		name    string
		num     int
		p       = &pdnsStub{port: 8081}
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "dns", &dnsv, "network", &network, "name", &name,
		"api_key?", &p.apiKey, "port?", &p.port, "number?", &num, "gateway?", &gateway); err != nil {
		return nil, err
	}
	hv, ok := dnsv.(*hostValue)
	if !ok || hv.dns == nil {
		return nil, fmt.Errorf("pdns_api %s: dns: got %s, want a dns_stub(...)", name, dnsv.String())
	}
	p.dns = hv
	if p.port < 1 || p.port > 65535 {
		return nil, fmt.Errorf("pdns_api %s: port=%d: want 1 to 65535", name, p.port)
	}
	return r.declareStub(thread, b.Name(), network, name, num, gateway, p)
}

func (hv *hostValue) pdns() *pdnsapi.API { return hv.stub.(*pdnsStub).api }

// pdnsSetFault is set_fault(status=, retry_after=, method=, path=,
// times=): pdnsapi.Fault's fields; faults add up, the first that matches
// answering.
func (hv *hostValue) pdnsSetFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		f          pdnsapi.Fault
		retryAfter starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "status?", &f.Status, "retry_after?", &retryAfter,
		"method?", &f.Method, "path?", &f.Path, "times?", &f.Times); err != nil {
		return nil, err
	}
	var err error
	if f.RetryAfter, err = parseDuration(retryAfter); err != nil {
		return nil, fmt.Errorf("%s: retry_after: %w", name, err)
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return nil, fmt.Errorf("%s: status %d: want an error status, 400 to 599 (0 for 500)", name, f.Status)
	}
	if f.Times < 0 {
		return nil, fmt.Errorf("%s: times=%d: want a count, or 0 until clear_faults()", name, f.Times)
	}
	if f.Path != "" && !strings.HasPrefix(f.Path, "/") {
		return nil, fmt.Errorf("%s: path %q: want a path prefix such as \"/api/v1/servers/localhost/zones\"", name, f.Path)
	}
	f.Method = strings.ToUpper(f.Method)
	return hv.stubStep(name, fmt.Sprintf("set fault %d %s %s x%d", f.Status, f.Method, f.Path, f.Times), func() (starlark.Value, error) {
		hv.pdns().SetFault(f)
		return starlark.None, nil
	})
}

// pdnsClearFaults is clear_faults(): every fault.
func (hv *hostValue) pdnsClearFaults(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "clear faults", func() (starlark.Value, error) {
		hv.pdns().ClearFaults()
		return starlark.None, nil
	})
}

func pdnsMatch(name string, args starlark.Tuple, kwargs []starlark.Tuple) (pdnsapi.Match, error) {
	var m pdnsapi.Match
	err := starlark.UnpackArgs(name, args, kwargs, "method?", &m.Method, "path?", &m.Path, "status?", &m.Status)
	m.Method = strings.ToUpper(m.Method)
	return m, err
}

// pdnsRequests is requests(method=, path=, status=): the requests the API
// answered, oldest first, as structs of method, path, remote, status,
// body, error and fault.
func (hv *hostValue) pdnsRequests(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := pdnsMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "requests "+m.String(), func() (starlark.Value, error) {
		var out []starlark.Value
		for _, q := range hv.pdns().Log() {
			if m.Matches(q) {
				out = append(out, pdnsRequestValue(q))
			}
		}
		return starlark.NewList(out), nil
	})
}

// pdnsWaitForRequest is wait_for_request(method=, path=, status=,
// timeout=): the first request that matches, logged already or to come.
func (hv *hostValue) pdnsWaitForRequest(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kwargs, timeout, err := takeWaitTimeout(name, kwargs)
	if err != nil {
		return nil, err
	}
	m, err := pdnsMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "wait for "+m.String(), func() (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(timeout)
		defer cancel()
		q, err := hv.pdns().WaitForRequest(ctx, m)
		if err != nil {
			return nil, err
		}
		return pdnsRequestValue(q), nil
	})
}

func pdnsRequestValue(q pdnsapi.Request) starlark.Value {
	fault := ""
	if q.Fault != nil {
		fault = fmt.Sprintf("%d", q.Fault.Status)
	}
	return starlarkstruct.FromStringDict(starlark.String("request"), starlark.StringDict{
		"method": starlark.String(q.Method),
		"path":   starlark.String(q.Path),
		"remote": starlark.String(q.Remote),
		"status": starlark.MakeInt(q.Status),
		"body":   starlark.String(q.Body),
		"error":  starlark.String(q.Error),
		"fault":  starlark.String(fault),
	})
}
