package dnsstub

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// UpdatePolicy says who may change the server's zones with DNS UPDATE
// (RFC 2136): nsupdate, the rfc2136 providers of cert-manager, lego and
// external-dns, and anything else that speaks it. The zero value refuses
// every update, as a server that was not asked to take them should.
type UpdatePolicy struct {
	// Keys are the TSIG keys (RFC 8945) that may sign updates, by key
	// name ("update-key." say; the final dot optional), each secret in
	// base64 as tsig-keygen and nsupdate's key files write it. Any HMAC
	// algorithm the client signs with is accepted (hmac-sha256 is what
	// clients use by default). Answers to signed messages are signed.
	Keys map[string]string
	// Unsigned lets updates without a TSIG signature through too.
	Unsigned bool
}

// TSIGFudge is the clock skew allowed between a client's signature time
// and the server's clock, in seconds: RFC 8945's recommended 300.
const TSIGFudge = 300

// tsigAuth is what reply learnt from a message's TSIG record.
type tsigAuth struct {
	rr     *dns.TSIG // the request's TSIG record; nil if it had none
	key    string    // its canonical key name
	secret string    // the key's secret; "" if the key is unknown
	err    uint16    // the TSIG error to answer with: 0, BADKEY, BADSIG or BADTIME
}

// verifyTSIG checks the signature of the packed message pkt, whose TSIG
// record is rr (nil: not signed).
func (s *Server) verifyTSIG(pkt []byte, rr *dns.TSIG) tsigAuth {
	if rr == nil {
		return tsigAuth{}
	}
	a := tsigAuth{rr: rr, key: dns.CanonicalName(rr.Hdr.Name)}
	for name, secret := range s.cfg.Updates.Keys {
		if dns.CanonicalName(name) == a.key {
			a.secret = secret
		}
	}
	if a.secret == "" {
		a.err = dns.RcodeBadKey
		return a
	}
	if err := dns.TsigVerify(pkt, a.secret, "", false); err != nil {
		a.err = dns.RcodeBadSig
		if errors.Is(err, dns.ErrTime) {
			a.err = dns.RcodeBadTime
		}
	}
	return a
}

// sign packs resp with a TSIG record answering a's request: signed with
// the request's key when it verified, unsigned and carrying the TSIG error
// when it did not (RFC 8945 5.3.2: a server cannot sign with a key it does
// not trust).
func (a tsigAuth) sign(resp *dns.Msg) ([]byte, error) {
	if a.err != 0 || a.secret == "" {
		resp.Extra = append(resp.Extra, &dns.TSIG{
			Hdr:        dns.RR_Header{Name: a.rr.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
			Algorithm:  a.rr.Algorithm,
			TimeSigned: uint64(time.Now().Unix()),
			Fudge:      TSIGFudge,
			OrigId:     resp.Id,
			Error:      a.err,
		})
		return resp.Pack()
	}
	resp.SetTsig(a.rr.Hdr.Name, a.rr.Algorithm, TSIGFudge, time.Now().Unix())
	out, _, err := dns.TsigGenerate(resp, a.secret, a.rr.MAC, false)
	return out, err
}

// tsigErrorName names a TSIG error for the log.
func tsigErrorName(e uint16) string {
	switch e {
	case dns.RcodeBadKey:
		return "BADKEY: the key name is not one of Config.Updates.Keys"
	case dns.RcodeBadSig:
		return "BADSIG: the signature does not verify with that key's secret"
	case dns.RcodeBadTime:
		return fmt.Sprintf("BADTIME: signed more than %ds away from the server's clock", TSIGFudge)
	}
	return fmt.Sprintf("TSIG error %d", e)
}

// updateError aborts an update with the rcode its client gets, and why.
type updateError struct {
	rcode int
	why   string
}

func (e *updateError) Error() string { return rcodeName(e.rcode) + ": " + e.why }

// refuse makes an updateError.
func refuse(rcode int, format string, args ...any) error {
	return &updateError{rcode: rcode, why: fmt.Sprintf(format, args...)}
}

// applyUpdate carries out the DNS UPDATE req, signed by key ("" if not
// signed), as RFC 2136 3 does: the zone section names a zone of the
// server's, the prerequisites (answer section) must all hold, and the
// updates (authority section) then apply all together, or none do. It
// returns the rcode to answer with, how many changes applied, and a note
// for the log: why it was refused, or the updates ignored.
func (s *Server) applyUpdate(req *dns.Msg, key string) (rcode, changes int, note string) {
	switch {
	case key == "" && !s.cfg.Updates.Unsigned && len(s.cfg.Updates.Keys) == 0:
		return dns.RcodeRefused, 0, "updates are off: set Config.Updates (Keys, or Unsigned)"
	case key == "" && !s.cfg.Updates.Unsigned:
		return dns.RcodeRefused, 0, "unsigned: sign with a key of Config.Updates.Keys, or set Config.Updates.Unsigned"
	case req.Question[0].Qtype != dns.TypeSOA:
		return dns.RcodeFormatError, 0, "the zone section must ask for the zone's SOA"
	}
	origin := dns.CanonicalName(req.Question[0].Name)
	var ignored []string
	err := s.update(func(st *state) error {
		z := st.zones[origin]
		if z == nil {
			return refuse(dns.RcodeNotAuth, "%s is not a zone of this server; its zones are %v", origin, st.origins())
		}
		if err := z.prerequisites(st, req.Answer); err != nil {
			return err
		}
		if err := z.prescan(st, req.Ns); err != nil {
			return err
		}
		for _, rr := range req.Ns {
			did, why := z.apply(st, rr)
			if did {
				changes++
			}
			if why != "" {
				ignored = append(ignored, fmt.Sprintf("%q: %s", text(rr), why))
			}
		}
		return nil
	})
	var ue *updateError
	switch {
	case errors.As(err, &ue):
		return ue.rcode, 0, ue.why
	case err != nil:
		return dns.RcodeServerFailure, 0, err.Error()
	}
	if len(ignored) > 0 {
		note = "ignored " + strings.Join(ignored, "; ")
	}
	return dns.RcodeSuccess, changes, note
}

// inZone checks that name is the zone's: in it, and in no zone of the
// server's nested below it.
func (z *zone) inZone(st *state, name string) error {
	if st.zoneOf(name) != z {
		return refuse(dns.RcodeNotZone, "%s is outside the zone %s", name, z.origin)
	}
	return nil
}

// prerequisites checks the prerequisite section of an update (RFC 2136
// 3.2).
func (z *zone) prerequisites(st *state, prereqs []dns.RR) error {
	type set struct {
		name string
		t    uint16
	}
	want := map[set][]dns.RR{} // value-dependent: these RRsets must be exactly so
	var order []set
	for _, rr := range prereqs {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if h.Ttl != 0 {
			return refuse(dns.RcodeFormatError, "prerequisite %q has a TTL: prerequisites carry TTL 0", text(rr))
		}
		if err := z.inZone(st, name); err != nil {
			return err
		}
		held := z.names[name]
		switch h.Class {
		case dns.ClassANY:
			if h.Rdlength != 0 {
				return refuse(dns.RcodeFormatError, "prerequisite %q of class ANY carries data", text(rr))
			}
			if h.Rrtype == dns.TypeANY && len(held) == 0 {
				return refuse(dns.RcodeNameError, "prerequisite: %s is in use, but it has no records", name)
			}
			if h.Rrtype != dns.TypeANY && len(ofType(held, h.Rrtype)) == 0 {
				return refuse(dns.RcodeNXRrset, "prerequisite: %s has %s records, but it holds %s", name, dns.Type(h.Rrtype), describe(held))
			}
		case dns.ClassNONE:
			if h.Rdlength != 0 {
				return refuse(dns.RcodeFormatError, "prerequisite %q of class NONE carries data", text(rr))
			}
			if h.Rrtype == dns.TypeANY && len(held) > 0 {
				return refuse(dns.RcodeYXDomain, "prerequisite: %s is not in use, but it holds %s", name, describe(held))
			}
			if h.Rrtype != dns.TypeANY && len(ofType(held, h.Rrtype)) > 0 {
				return refuse(dns.RcodeYXRrset, "prerequisite: %s has no %s records, but it holds %s", name, dns.Type(h.Rrtype), describe(ofType(held, h.Rrtype)))
			}
		case dns.ClassINET:
			k := set{name, h.Rrtype}
			if want[k] == nil {
				order = append(order, k)
			}
			want[k] = append(want[k], canonical(rr))
		default:
			return refuse(dns.RcodeFormatError, "prerequisite %q: class %s is none of IN, ANY and NONE", text(rr), dns.Class(h.Class))
		}
	}
	for _, k := range order {
		held := ofType(z.names[k.name], k.t)
		same := len(held) == len(want[k])
		for _, w := range want[k] {
			same = same && slices.ContainsFunc(held, func(h dns.RR) bool { return dns.IsDuplicate(h, w) })
		}
		if !same {
			return refuse(dns.RcodeNXRrset, "prerequisite: the %s %s records are %s, not %s", k.name, dns.Type(k.t), describe(held), describe(want[k]))
		}
	}
	return nil
}

// prescan checks the update section before anything changes (RFC 2136
// 3.4.1), so that an update with a bad record changes nothing.
func (z *zone) prescan(st *state, updates []dns.RR) error {
	for _, rr := range updates {
		h := rr.Header()
		if err := z.inZone(st, dns.CanonicalName(h.Name)); err != nil {
			return err
		}
		meta := h.Rrtype == dns.TypeANY || h.Rrtype == dns.TypeAXFR || h.Rrtype == dns.TypeIXFR ||
			h.Rrtype == dns.TypeMAILA || h.Rrtype == dns.TypeMAILB || h.Rrtype == dns.TypeOPT || h.Rrtype == dns.TypeTSIG
		switch h.Class {
		case dns.ClassINET:
			if meta {
				return refuse(dns.RcodeFormatError, "update %q: %s is a meta type, not data to add", text(rr), dns.Type(h.Rrtype))
			}
		case dns.ClassANY:
			if h.Ttl != 0 || h.Rdlength != 0 || meta && h.Rrtype != dns.TypeANY {
				return refuse(dns.RcodeFormatError, "update %q: a deletion of class ANY carries TTL 0 and no data", text(rr))
			}
		case dns.ClassNONE:
			if h.Ttl != 0 || meta {
				return refuse(dns.RcodeFormatError, "update %q: a deletion of class NONE carries TTL 0 and a record's data", text(rr))
			}
		default:
			return refuse(dns.RcodeFormatError, "update %q: class %s is none of IN, ANY and NONE", text(rr), dns.Class(h.Class))
		}
	}
	return nil
}

// apply carries out one record of an update's update section (RFC 2136
// 3.4.2): it reports whether anything changed, and why not where a real
// server would quietly ignore the record (a CNAME beside other data, the
// apex's SOA or last NS deleted).
func (z *zone) apply(st *state, rr dns.RR) (bool, string) {
	h := rr.Header()
	name := dns.CanonicalName(h.Name)
	held := z.names[name]
	apex := name == z.origin
	keep := func(t uint16) bool {
		return apex && (t == dns.TypeSOA || t == dns.TypeNS) // the zone cannot lose its SOA and NS this way
	}
	switch h.Class {
	case dns.ClassINET:
		if soa, ok := rr.(*dns.SOA); ok && (!apex || soa.Serial <= z.soa().Serial) {
			return false, "an SOA replaces the apex's only with a higher serial"
		}
		if slices.ContainsFunc(held, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) && o.Header().Ttl == h.Ttl }) {
			return false, "" // held already: no change, and no new serial
		}
		if err := st.add(canonical(rr)); err != nil {
			return false, err.Error()
		}
		return true, ""
	case dns.ClassANY:
		next := slices.DeleteFunc(slices.Clone(held), func(o dns.RR) bool {
			t := o.Header().Rrtype
			return (h.Rrtype == dns.TypeANY || t == h.Rrtype) && !keep(t)
		})
		return z.setIfChanged(name, held, next), ""
	default: // ClassNONE: delete the one record
		if h.Rrtype == dns.TypeSOA {
			return false, "a zone keeps its SOA"
		}
		want := canonical(rr)
		want.Header().Class = dns.ClassINET
		if apex && h.Rrtype == dns.TypeNS && len(ofType(held, dns.TypeNS)) == 1 {
			return false, "a zone keeps its last NS record"
		}
		next := slices.DeleteFunc(slices.Clone(held), func(o dns.RR) bool { return dns.IsDuplicate(o, want) })
		return z.setIfChanged(name, held, next), ""
	}
}

// setIfChanged sets the records at name to next, a copy of held less
// some, if it is less any: a deletion of nothing leaves the slice held
// alone, so that the zone does not count as changed (and its serial
// stays).
func (z *zone) setIfChanged(name string, held, next []dns.RR) bool {
	if len(next) == len(held) {
		return false
	}
	z.set(name, next)
	return true
}
