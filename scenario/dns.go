package scenario

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	"github.com/miekg/dns"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/dnsnet"
)

// dnsStub is what makes a host a DNS stand-in (dnsstub.Server, attached
// with dnsnet): its zones and records as declared, and the server once
// the testbed is made.
type dnsStub struct {
	zones   map[string][]string
	records []string
	domain  string
	updates dnsstub.UpdatePolicy
	s       *dnsstub.Server
}

// dnsVerbs are the verbs of a DNS stand-in, besides a host's.
var dnsVerbs = map[string]stubVerb{
	"add":            (*hostValue).dnsAdd,
	"remove":         (*hostValue).dnsRemove,
	"set_fault":      (*hostValue).dnsSetFault,
	"clear_fault":    (*hostValue).dnsClearFault,
	"queries":        (*hostValue).dnsQueries,
	"wait_for_query": (*hostValue).dnsWaitForQuery,
}

// dnsStubBuiltin is dns_stub(network, name, zones=, records=,
// testbed_domain=, updates=, unsigned=, number=): a host on the network
// that serves DNS on port 53 (dnsnet.Attach), with the zones declared
// ({origin: [records relative to it]}), records in zone-file syntax with
// absolute names, and, under testbed_domain ("" for none), the names and
// addresses of the machines and hosts declared before the testbed is made
// (dnsnet.AddTestbedRecords). updates ({key name: base64 secret}) and
// unsigned are dnsstub.UpdatePolicy's Keys and Unsigned: who may change
// the zones with DNS UPDATE.
func (r *runner) dnsStubBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		gateway starlark.Value = starlark.None
		network starlark.Value
		name    string
		zones   *starlark.Dict
		records starlark.Iterable
		domain  = "test."
		num     int
		updates *starlark.Dict
		unsign  bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "network", &network, "name", &name, "zones?", &zones,
		"records?", &records, "testbed_domain?", &domain, "updates?", &updates, "unsigned?", &unsign,
		"number?", &num, "gateway?", &gateway); err != nil {
		return nil, err
	}
	nets, err := r.networkNames(b.Name()+": network", []starlark.Value{network})
	if err != nil {
		return nil, err
	}
	nv := r.netByName[nets[0]]
	d := &dnsStub{zones: map[string][]string{}, domain: domain}
	if zones != nil {
		for _, item := range zones.Items() {
			origin, ok := starlark.AsString(item[0])
			if !ok {
				return nil, fmt.Errorf("dns_stub %s: zones: key %s: want a zone's origin such as \"example.test.\"", name, item[0])
			}
			it, ok := item[1].(starlark.Iterable)
			if !ok || item[1].Type() == "string" {
				return nil, fmt.Errorf("dns_stub %s: zones: %s: got %s, want a list of records such as \"www A 192.0.2.1\"", name, origin, item[1].Type())
			}
			rrs, err := stringList(it)
			if err != nil {
				return nil, fmt.Errorf("dns_stub %s: zones: %s: %w", name, origin, err)
			}
			d.zones[origin] = rrs
		}
	}
	if d.records, err = stringList(records); err != nil {
		return nil, fmt.Errorf("dns_stub %s: records: %w", name, err)
	}
	if d.updates.Keys, err = stringDict(updates); err != nil {
		return nil, fmt.Errorf("dns_stub %s: updates: %w (TSIG key names to base64 secrets)", name, err)
	}
	for k, secret := range d.updates.Keys {
		if _, ok := dns.IsDomainName(k); !ok {
			return nil, fmt.Errorf("dns_stub %s: updates: key name %q: want a name such as \"update-key.\"", name, k)
		}
		if _, err := base64.StdEncoding.DecodeString(secret); err != nil || secret == "" {
			return nil, fmt.Errorf("dns_stub %s: updates: key %s: secret %q: want base64, as tsig-keygen writes it", name, k, secret)
		}
	}
	d.updates.Unsigned = unsign
	// Zones and records are checked now, on a server that serves nothing,
	// so that a typo fails before anything boots.
	if _, err := d.server(nil); err != nil {
		return nil, fmt.Errorf("dns_stub %s: %w", name, err)
	}
	if _, ok := dns.IsDomainName(domain); domain != "" && (!ok || domain == ".") {
		return nil, fmt.Errorf("dns_stub %s: testbed_domain %q: want a domain such as \"test.\", or \"\" for none", name, domain)
	}
	gw, err := parseGateway(b.Name(), gateway)
	if err != nil {
		return nil, err
	}
	hv, err := nv.declareHost(thread, name, num, gw)
	if err != nil {
		return nil, err
	}
	hv.dns = d
	if err := r.declared(hv); err != nil {
		return nil, err
	}
	return hv, nil
}

// server makes a server with the declared zones and records.
func (d *dnsStub) server(logf func(string, ...any)) (*dnsstub.Server, error) {
	s := dnsstub.New(dnsstub.Config{Logf: logf, Updates: d.updates})
	origins := make([]string, 0, len(d.zones))
	for o := range d.zones {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	for _, o := range origins {
		if err := s.AddZone(o, d.zones[o]...); err != nil {
			return nil, fmt.Errorf("zones: %w", err)
		}
	}
	if len(d.records) > 0 {
		if err := s.Add(d.records...); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
	}
	return s, nil
}

// serve starts the stand-in on its host, which the testbed has declared.
func (hv *hostValue) serve() error {
	r, d := hv.r, hv.dns
	s, err := d.server(func(format string, args ...any) { r.log.Printf(hv.name+": "+format, args...) })
	if err != nil {
		return err
	}
	d.s = s
	r.t.Cleanup(func() { s.Close() })
	return dnsnet.Serve(hv.h, s)
}

// addTestbedRecords adds the names of the testbed's machines and hosts.
func (hv *hostValue) addTestbedRecords() error {
	if hv.dns.domain == "" {
		return nil
	}
	return dnsnet.AddTestbedRecords(hv.dns.s, hv.r.tb, hv.dns.domain)
}

// dnsStep runs a stand-in's verb as a step.
func (hv *hostValue) dnsStep(name, title string, do func(s *dnsstub.Server) (starlark.Value, error)) (starlark.Value, error) {
	return hv.r.step(name, "", hv.name+": "+title, func() (starlark.Value, error) { return do(hv.dns.s) })
}

// dnsAdd is add(*records): records in zone-file syntax, absolute names.
func (hv *hostValue) dnsAdd(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	rrs, err := stringArgs(name, "record", args, kwargs)
	if err != nil {
		return nil, err
	}
	return hv.dnsStep(name, "add "+strings.Join(rrs, "; "), func(s *dnsstub.Server) (starlark.Value, error) {
		return starlark.None, s.Add(rrs...)
	})
}

// dnsRemove is remove(name, *types): the records at name, of the types
// given ("AAAA") or all.
func (hv *hostValue) dnsRemove(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	words, err := stringArgs(name, "name", args, kwargs)
	if err != nil {
		return nil, err
	}
	types, err := dnsTypes(name, words[1:])
	if err != nil {
		return nil, err
	}
	return hv.dnsStep(name, "remove "+strings.Join(words, " "), func(s *dnsstub.Server) (starlark.Value, error) {
		return starlark.None, s.RemoveName(words[0], types...)
	})
}

// dnsSetFault is set_fault(name, rcode=, drop=, truncate=, delay=, types=,
// subtree=, times=): dnsstub.Fault's fields; rcode is a number or a name
// ("SERVFAIL", "NXDOMAIN", "REFUSED").
func (hv *hostValue) dnsSetFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		qname          string
		f              dnsstub.Fault
		rcode, delay   starlark.Value = starlark.None, starlark.None
		types          starlark.Iterable
		drop, truncate bool
	)
	if err := starlark.UnpackArgs(name, args, kwargs, "name", &qname, "rcode?", &rcode, "drop?", &drop,
		"truncate?", &truncate, "delay?", &delay, "types?", &types, "subtree?", &f.Subtree, "times?", &f.Times); err != nil {
		return nil, err
	}
	f.Drop, f.Truncate = drop, truncate
	switch v := rcode.(type) {
	case starlark.NoneType:
	case starlark.Int:
		n, _ := v.Int64()
		f.Rcode = int(n)
	case starlark.String:
		n, ok := dns.StringToRcode[strings.ToUpper(string(v))]
		if !ok {
			return nil, fmt.Errorf("%s: rcode %q: want a name such as \"SERVFAIL\", \"NXDOMAIN\" or \"REFUSED\", or a number", name, string(v))
		}
		f.Rcode = n
	default:
		return nil, fmt.Errorf("%s: rcode: got %s, want a name such as \"SERVFAIL\" or a number", name, rcode.Type())
	}
	var err error
	if f.Delay, err = parseDuration(delay); err != nil {
		return nil, fmt.Errorf("%s: delay: %w", name, err)
	}
	ts, err := stringList(types)
	if err != nil {
		return nil, fmt.Errorf("%s: types: %w", name, err)
	}
	if f.Types, err = dnsTypes(name, ts); err != nil {
		return nil, err
	}
	// The fault's own rules, on a server that serves nothing, so that a
	// contradiction fails before anything boots.
	if err := dnsstub.New(dnsstub.Config{}).SetFault(qname, f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return hv.dnsStep(name, "set fault "+qname+" "+f.String(), func(s *dnsstub.Server) (starlark.Value, error) {
		return starlark.None, s.SetFault(qname, f)
	})
}

// dnsClearFault is clear_fault(name=None): the fault set on name, or
// every fault.
func (hv *hostValue) dnsClearFault(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var qname string
	if err := starlark.UnpackArgs(name, args, kwargs, "name?", &qname); err != nil {
		return nil, err
	}
	return hv.dnsStep(name, "clear fault "+qname, func(s *dnsstub.Server) (starlark.Value, error) {
		if qname == "" {
			s.ClearFaults()
		} else {
			s.ClearFault(qname)
		}
		return starlark.None, nil
	})
}

// dnsQueries is queries(name=None, type=None): the queries the stand-in
// answered, oldest first, as structs of name, type, client, transport,
// rcode, answers and truncated.
func (hv *hostValue) dnsQueries(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var qname, qtype string
	if err := starlark.UnpackArgs(name, args, kwargs, "name?", &qname, "type?", &qtype); err != nil {
		return nil, err
	}
	m := dnsstub.Match{Name: qname}
	if qtype != "" {
		ts, err := dnsTypes(name, []string{qtype})
		if err != nil {
			return nil, err
		}
		m.Type = ts[0]
	}
	return hv.dnsStep(name, "queries "+m.String(), func(s *dnsstub.Server) (starlark.Value, error) {
		var out []starlark.Value
		for _, q := range s.Log() {
			if !m.Matches(q) {
				continue
			}
			out = append(out, queryValue(q))
		}
		return starlark.NewList(out), nil
	})
}

// queryValue is a query as queries() gives it; key and note are a DNS
// UPDATE's (Query.Key, Query.Note).
func queryValue(q dnsstub.Query) starlark.Value {
	return starlarkstruct.FromStringDict(starlark.String("query"), starlark.StringDict{
		"name":      starlark.String(q.Name),
		"type":      starlark.String(dns.TypeToString[q.Type]),
		"client":    starlark.String(q.Client.Addr().String()),
		"transport": starlark.String(q.Transport),
		"rcode":     starlark.String(dns.RcodeToString[q.Rcode]),
		"answers":   starlark.MakeInt(q.Answers),
		"truncated": starlark.Bool(q.Truncated),
		"update":    starlark.Bool(q.Opcode == dns.OpcodeUpdate),
		"key":       starlark.String(q.Key),
		"changes":   starlark.MakeInt(q.Changes),
		"note":      starlark.String(q.Note),
	})
}

// dnsWaitForQuery is wait_for_query(name=, type=, update=, timeout=): the
// first query that matches (update=True: a DNS UPDATE of the zone name),
// logged already or to come, as queries() gives it.
func (hv *hostValue) dnsWaitForQuery(name string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	kwargs, timeout, err := takeWaitTimeout(name, kwargs)
	if err != nil {
		return nil, err
	}
	var qname, qtype string
	var m dnsstub.Match
	if err := starlark.UnpackArgs(name, args, kwargs, "name?", &qname, "type?", &qtype, "update?", &m.Update); err != nil {
		return nil, err
	}
	m.Name = qname
	if qtype != "" {
		ts, err := dnsTypes(name, []string{qtype})
		if err != nil {
			return nil, err
		}
		m.Type = ts[0]
	}
	return hv.dnsStep(name, "wait for "+m.String(), func(s *dnsstub.Server) (starlark.Value, error) {
		ctx, cancel := hv.r.waitContext(timeout)
		defer cancel()
		q, err := s.WaitForQuery(ctx, m)
		if err != nil {
			return nil, err
		}
		return queryValue(q), nil
	})
}

// stringArgs reads one or more positional strings, what naming them.
func stringArgs(name, what string, args starlark.Tuple, kwargs []starlark.Tuple) ([]string, error) {
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("%s: unexpected keyword argument %s", name, kwargs[0][0])
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: missing argument for %s", name, what)
	}
	out := make([]string, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, fmt.Errorf("%s: for parameter %d: got %s, want string", name, i+1, a.Type())
		}
		out[i] = s
	}
	return out, nil
}

// dnsTypes reads record types by name: "A", "AAAA", ...
func dnsTypes(name string, ts []string) ([]uint16, error) {
	var out []uint16
	for _, t := range ts {
		n, ok := dns.StringToType[strings.ToUpper(t)]
		if !ok {
			return nil, fmt.Errorf("%s: type %q: want a record type such as \"A\" or \"AAAA\"", name, t)
		}
		out = append(out, n)
	}
	return out, nil
}
