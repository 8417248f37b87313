package scenario

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/shakedown-dev/shakedown"
	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
	"github.com/shakedown-dev/shakedown/stub/acme/acmenet"
)

// acmeStub is what makes a host an ACME CA stand-in (acmestub.Server,
// attached with acmenet), validating through a DNS stand-in's names.
type acmeStub struct {
	dns *hostValue
	cfg acmenet.Config
	s   *acmestub.Server
}

func (a *acmeStub) kind() string               { return "acme_stub" }
func (a *acmeStub) verbs() map[string]stubVerb { return acmeVerbs }
func (a *acmeStub) fields() []string           { return []string{"directory_url"} }

// field is .directory_url: https://NAME/directory, as acmenet.DirectoryURL
// gives it, known before the testbed is made since it is the host's name.
func (a *acmeStub) field(hv *hostValue, name string) starlark.Value {
	return starlark.String("https://" + hv.name + "/directory")
}

func (a *acmeStub) attach(hv *hostValue) (*shakedown.Host, error) {
	cfg := a.cfg
	cfg.DNS = a.dns.h
	cfg.Server.Logf = hv.logf()
	h, err := hv.declareOn()
	if err != nil {
		return nil, err
	}
	s, err := acmenet.Serve(h, cfg)
	if err != nil {
		return nil, err
	}
	a.s = s
	hv.r.t.Cleanup(func() { s.Close() })
	return h, nil
}

// acmeVerbs are the verbs of an ACME stand-in, besides a host's.
var acmeVerbs = map[string]stubVerb{
	"issued":      (*hostValue).acmeIssued,
	"events":      (*hostValue).acmeEvents,
	"wait_for":    (*hostValue).acmeWaitFor,
	"set_fault":   (*hostValue).acmeSetFault,
	"clear_fault": (*hostValue).acmeClearFault,
}

// acmeStubBuiltin is acme_stub(network, name, dns=, ca=, cert_lifetime=,
// validation_timeout=, terms_of_service=): a host on the network serving
// ACME over HTTPS on port 443 (acmenet.Attach), issuing from ca (a ca(),
// which machines then trust already; without it a root of its own),
// resolving names and DNS-01's TXT records through dns, a dns_stub
// declared before. Clients take .directory_url.
func (r *runner) acmeStubBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		gateway     starlark.Value = starlark.None
		network     starlark.Value
		name        string
		dnsv        starlark.Value = starlark.None
		ca          starlark.Value = starlark.None
		life, vtime starlark.Value = starlark.None, starlark.None
		a                          = &acmeStub{}
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "network", &network, "name", &name, "dns?", &dnsv,
		"ca?", &ca, "cert_lifetime?", &life, "validation_timeout?", &vtime,
		"terms_of_service?", &a.cfg.Server.TermsOfService, "gateway?", &gateway); err != nil {
		return nil, err
	}
	what := "acme_stub " + name
	hv, ok := dnsv.(*hostValue)
	if !ok || hv.dns == nil {
		return nil, fmt.Errorf("%s: dns: got %s, want a dns_stub(...), which validation asks for names and TXT records", what, dnsv.String())
	}
	a.dns = hv
	var err error
	if a.cfg.CA, err = caOf(ca); err != nil {
		return nil, fmt.Errorf("%s: ca: %w", what, err)
	}
	if a.cfg.Server.CertLifetime, err = parseDuration(life); err != nil {
		return nil, fmt.Errorf("%s: cert_lifetime: %w", what, err)
	}
	if a.cfg.Server.ValidationTimeout, err = parseDuration(vtime); err != nil {
		return nil, fmt.Errorf("%s: validation_timeout: %w", what, err)
	}
	if a.cfg.Server.CertLifetime < 0 || a.cfg.Server.ValidationTimeout < 0 {
		return nil, fmt.Errorf("%s: cert_lifetime and validation_timeout: want a positive duration, or none for the defaults", what)
	}
	return r.declareStub(thread, b.Name(), network, name, 0, gateway, a)
}

func (hv *hostValue) acme() *acmestub.Server { return hv.stub.(*acmeStub).s }

// acmeIssued is issued(): the certificates issued, oldest first, as
// structs of serial (hex), names and not_after (RFC 3339).
func (hv *hostValue) acmeIssued(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "issued", func() (starlark.Value, error) {
		var out []starlark.Value
		for _, c := range hv.acme().Issued() {
			names := make([]starlark.Value, len(c.DNSNames))
			for i, n := range c.DNSNames {
				names[i] = starlark.String(n)
			}
			out = append(out, starlarkstruct.FromStringDict(starlark.String("certificate"), starlark.StringDict{
				"serial":    starlark.String(c.SerialNumber.Text(16)),
				"names":     starlark.NewList(names),
				"not_after": starlark.String(c.NotAfter.UTC().Format(time.RFC3339)),
			}))
		}
		return starlark.NewList(out), nil
	})
}

// acmeKinds are the event kinds by the short names scenarios give them.
var acmeKinds = map[string]acmestub.EventKind{
	"account": acmestub.EventAccount, "order": acmestub.EventOrder,
	"validation": acmestub.EventValidation, "valid": acmestub.EventValid,
	"invalid": acmestub.EventInvalid, "issued": acmestub.EventIssued,
	"revoked": acmestub.EventRevoked, "rejected": acmestub.EventRejected,
}

// acmeMatch reads acmestub.Match's fields: kind= (a short name, "issued",
// "invalid", ...), name=, problem_type= (with or without
// urn:ietf:params:acme:error:).
func acmeMatch(name string, args starlark.Tuple, kwargs []starlark.Tuple) (acmestub.Match, error) {
	var m acmestub.Match
	var kind string
	if err := starlark.UnpackArgs(name, args, kwargs, "kind?", &kind, "name?", &m.Name, "problem_type?", &m.ProblemType); err != nil {
		return m, err
	}
	if kind != "" {
		k, ok := acmeKinds[kind]
		if !ok {
			names := make([]string, 0, len(acmeKinds))
			for n := range acmeKinds {
				names = append(names, n)
			}
			sort.Strings(names)
			return m, fmt.Errorf("%s: kind %q: want one of %s", name, kind, strings.Join(names, ", "))
		}
		m.Kind = k
	}
	if m.ProblemType != "" && !strings.HasPrefix(m.ProblemType, acmestub.ProblemPrefix) {
		m.ProblemType = acmestub.ProblemPrefix + m.ProblemType
	}
	return m, nil
}

// acmeEvents is events(kind=, name=, problem_type=): what the CA did,
// oldest first, as structs of kind, names, challenge, serial, order,
// problem and fault.
func (hv *hostValue) acmeEvents(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	m, err := acmeMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "events "+m.String(), func() (starlark.Value, error) {
		var out []starlark.Value
		for _, e := range hv.acme().Log() {
			if m.Matches(e) {
				out = append(out, acmeEventValue(e))
			}
		}
		return starlark.NewList(out), nil
	})
}

// acmeWaitFor is wait_for(kind=, name=, problem_type=, timeout=): the
// first event that matches, logged already or to come.
func (hv *hostValue) acmeWaitFor(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kwargs, timeout, err := takeWaitTimeout(name, kwargs)
	if err != nil {
		return nil, err
	}
	m, err := acmeMatch(name, args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.stubStep(name, "wait for "+m.String(), func() (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(timeout)
		defer cancel()
		e, err := hv.acme().WaitFor(ctx, m)
		if err != nil {
			return nil, err
		}
		return acmeEventValue(e), nil
	})
}

func acmeEventValue(e acmestub.Event) starlark.Value {
	names := make([]starlark.Value, len(e.Names))
	for i, n := range e.Names {
		names[i] = starlark.String(n)
	}
	problem := ""
	if e.Problem != nil {
		problem = e.Problem.Error()
	}
	kind := string(e.Kind)
	for short, k := range acmeKinds {
		if k == e.Kind {
			kind = short
		}
	}
	return starlarkstruct.FromStringDict(starlark.String("event"), starlark.StringDict{
		"kind":      starlark.String(kind),
		"names":     starlark.NewList(names),
		"challenge": starlark.String(e.Challenge),
		"serial":    starlark.String(e.Serial),
		"order":     starlark.String(e.Order),
		"problem":   starlark.String(problem),
		"fault":     starlark.String(e.Fault),
	})
}

// acmeSetFault is set_fault(bad_nonce=, fail_validations=, delay=,
// rate_limit_orders=, unavailable_orders=, retry_after=): acmestub.Fault's
// fields.
func (hv *hostValue) acmeSetFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		f                 acmestub.Fault
		delay, retryAfter starlark.Value = starlark.None, starlark.None
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "bad_nonce?", &f.BadNonce, "fail_validations?", &f.FailValidations,
		"delay?", &delay, "rate_limit_orders?", &f.RateLimitOrders, "unavailable_orders?", &f.UnavailableOrders,
		"retry_after?", &retryAfter); err != nil {
		return nil, err
	}
	var err error
	if f.Delay, err = parseDuration(delay); err != nil {
		return nil, fmt.Errorf("%s: delay: %w", name, err)
	}
	if f.RetryAfter, err = parseDuration(retryAfter); err != nil {
		return nil, fmt.Errorf("%s: retry_after: %w", name, err)
	}
	// The fault's own rules, on a server that serves nothing.
	probe, err := acmestub.New(acmestub.Config{})
	if err != nil {
		return nil, err
	}
	err = probe.SetFault(f)
	probe.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return hv.stubStep(name, "set fault "+f.String(), func() (starlark.Value, error) {
		return starlark.None, hv.acme().SetFault(f)
	})
}

// acmeClearFault is clear_fault(): what is left of the fault.
func (hv *hostValue) acmeClearFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(name, args, kwargs); err != nil {
		return nil, err
	}
	return hv.stubStep(name, "clear fault", func() (starlark.Value, error) {
		hv.acme().ClearFault()
		return starlark.None, nil
	})
}
