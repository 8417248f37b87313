package pdnsapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
)

// The JSON objects of the API, with the fields PowerDNS documents (those
// clients read; the rest of a real server's are left out or constant).
type (
	zoneJSON struct {
		ID             string      `json:"id"`
		Name           string      `json:"name"`
		Type           string      `json:"type"`
		URL            string      `json:"url"`
		Kind           string      `json:"kind"`
		Serial         uint32      `json:"serial"`
		EditedSerial   uint32      `json:"edited_serial"`
		NotifiedSerial uint32      `json:"notified_serial"`
		Masters        []string    `json:"masters"`
		DNSSEC         bool        `json:"dnssec"`
		Account        string      `json:"account"`
		RRsets         []rrsetJSON `json:"rrsets,omitempty"`
		Nameservers    []string    `json:"nameservers,omitempty"` // in POST only
	}
	rrsetJSON struct {
		Name       string       `json:"name"`
		Type       string       `json:"type"`
		TTL        uint32       `json:"ttl"`
		ChangeType string       `json:"changetype,omitempty"`
		Records    []recordJSON `json:"records"`
		Comments   []any        `json:"comments"`
	}
	recordJSON struct {
		Content  string `json:"content"`
		Disabled bool   `json:"disabled"`
	}
)

func (a *API) apiVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []map[string]any{{"url": "/api/v1", "version": 1}})
}

func serverJSON() map[string]string {
	base := "/api/v1/servers/" + ServerID
	return map[string]string{"type": "Server", "id": ServerID, "daemon_type": "authoritative",
		"version": "4.8.0 (shakedown pdnsapi)", "url": base, "config_url": base + "/config{/config_setting}",
		"zones_url": base + "/zones{/zone}"}
}

func (a *API) servers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []map[string]string{serverJSON()})
}

func (a *API) server(w http.ResponseWriter, r *http.Request) {
	if checkServer(w, r) {
		writeJSON(w, http.StatusOK, serverJSON())
	}
}

// zones lists the zones, without their RRsets; ?zone=NAME picks one.
func (a *API) zones(w http.ResponseWriter, r *http.Request) {
	if !checkServer(w, r) {
		return
	}
	want := r.URL.Query().Get("zone")
	out := []zoneJSON{}
	for _, origin := range a.dns.Zones() {
		if want != "" && dns.CanonicalName(want) != origin {
			continue
		}
		z, err := a.zoneJSON(origin, false)
		if err == nil {
			out = append(out, z)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// zoneJSON describes a zone, with its RRsets if withRRsets.
func (a *API) zoneJSON(origin string, withRRsets bool) (zoneJSON, error) {
	rrs, err := a.dns.Records(origin)
	if err != nil {
		return zoneJSON{}, err
	}
	z := zoneJSON{ID: origin, Name: origin, Type: "Zone", URL: "/api/v1/servers/" + ServerID + "/zones/" + origin,
		Kind: "Native", Masters: []string{}}
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok && soa.Hdr.Name == origin {
			z.Serial, z.EditedSerial = soa.Serial, soa.Serial
		}
	}
	if !withRRsets {
		return z, nil
	}
	for _, rr := range rrs { // by name, then type: an RRset's records are neighbours
		h := rr.Header()
		content := strings.TrimPrefix(rr.String(), h.String())
		n := len(z.RRsets)
		if n == 0 || z.RRsets[n-1].Name != h.Name || z.RRsets[n-1].Type != dns.Type(h.Rrtype).String() {
			z.RRsets = append(z.RRsets, rrsetJSON{Name: h.Name, Type: dns.Type(h.Rrtype).String(), TTL: h.Ttl, Comments: []any{}})
			n++
		}
		z.RRsets[n-1].Records = append(z.RRsets[n-1].Records, recordJSON{Content: content})
	}
	return z, nil
}

// zoneOrFail returns the zone of the request's path, or answers 404 as
// PowerDNS does.
func (a *API) zoneOrFail(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !checkServer(w, r) {
		return "", false
	}
	id := r.PathValue("zone")
	origin := dns.CanonicalName(id)
	if !strings.HasSuffix(id, ".") || !slices.Contains(a.dns.Zones(), origin) {
		fail(w, http.StatusNotFound, "Could not find domain '%s': the zones are %v (zone ids end in a dot)", id, a.dns.Zones())
		return "", false
	}
	return origin, true
}

func (a *API) zone(w http.ResponseWriter, r *http.Request) {
	origin, ok := a.zoneOrFail(w, r)
	if !ok {
		return
	}
	z, err := a.zoneJSON(origin, r.URL.Query().Get("rrsets") != "false")
	if err != nil {
		fail(w, http.StatusNotFound, "Could not find domain '%s': %v", origin, err)
		return
	}
	writeJSON(w, http.StatusOK, z)
}

// patch changes RRsets: REPLACE and DELETE, all of them or none, answered
// 204 as PowerDNS does, or 422 with what is wrong.
func (a *API) patch(w http.ResponseWriter, r *http.Request) {
	origin, ok := a.zoneOrFail(w, r)
	if !ok {
		return
	}
	var body zoneJSON
	if err := json.Unmarshal(r.Context().Value(bodyKey{}).([]byte), &body); err != nil {
		fail(w, http.StatusBadRequest, "the body is not a zone object with rrsets: %v", err)
		return
	}
	sets, err := toSets(origin, body.RRsets, true)
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	if err := a.dns.ReplaceRRsets(sets...); err != nil {
		fail(w, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// toSets turns RRsets of the API into dnsstub's, checking them as PowerDNS
// does. With patch, each needs a changetype.
func toSets(origin string, in []rrsetJSON, patch bool) ([]dnsstub.RRset, error) {
	var sets []dnsstub.RRset
	for _, rs := range in {
		what := fmt.Sprintf("RRset %s IN %s", rs.Name, rs.Type)
		t, ok := dns.StringToType[strings.ToUpper(rs.Type)]
		switch {
		case !strings.HasSuffix(rs.Name, "."):
			return nil, fmt.Errorf("%s: Name is not canonical: end it with a dot (%s.)", what, rs.Name)
		case !dns.IsSubDomain(origin, dns.CanonicalName(rs.Name)):
			return nil, fmt.Errorf("%s: Name is out of zone %s", what, origin)
		case !ok:
			return nil, fmt.Errorf("%s: unknown type %q", what, rs.Type)
		}
		set := dnsstub.RRset{Name: rs.Name, Type: t}
		switch ct := strings.ToUpper(rs.ChangeType); {
		case patch && ct == "DELETE":
		case !patch || ct == "REPLACE":
			for _, rec := range rs.Records {
				if rec.Disabled {
					continue // a disabled record is kept by PowerDNS but never served
				}
				rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", rs.Name, rs.TTL, rs.Type, rec.Content))
				if err != nil || rr == nil {
					return nil, fmt.Errorf("%s: record content %q does not parse as %s data: %v", what, rec.Content, rs.Type, err)
				}
				set.Records = append(set.Records, rr)
			}
		default:
			return nil, fmt.Errorf("%s: changetype %q not understood: want REPLACE or DELETE", what, rs.ChangeType)
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// createZone declares a zone, with its nameservers and RRsets: 201 and the
// zone, or 409 if it exists.
func (a *API) createZone(w http.ResponseWriter, r *http.Request) {
	if !checkServer(w, r) {
		return
	}
	var body zoneJSON
	if err := json.Unmarshal(r.Context().Value(bodyKey{}).([]byte), &body); err != nil || body.Name == "" {
		fail(w, http.StatusBadRequest, "the body is not a zone object with a name: %v", err)
		return
	}
	origin := dns.CanonicalName(body.Name)
	if !strings.HasSuffix(body.Name, ".") {
		fail(w, http.StatusUnprocessableEntity, "DNS Name '%s' is not canonical: end it with a dot", body.Name)
		return
	}
	var ns []string
	for _, n := range body.Nameservers {
		ns = append(ns, fmt.Sprintf("%s NS %s", origin, n))
	}
	sets, err := toSets(origin, body.RRsets, false)
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	if err := a.dns.AddZone(origin, ns...); err != nil {
		status := http.StatusUnprocessableEntity
		if errors.Is(err, dnsstub.ErrZoneExists) {
			status = http.StatusConflict
		}
		fail(w, status, "Domain '%s' could not be created: %v", origin, err)
		return
	}
	if err := a.dns.ReplaceRRsets(sets...); err != nil {
		a.dns.RemoveZone(origin)
		fail(w, http.StatusUnprocessableEntity, "%v", err)
		return
	}
	z, _ := a.zoneJSON(origin, true)
	writeJSON(w, http.StatusCreated, z)
}

func (a *API) deleteZone(w http.ResponseWriter, r *http.Request) {
	origin, ok := a.zoneOrFail(w, r)
	if !ok {
		return
	}
	if err := a.dns.RemoveZone(origin); err != nil {
		fail(w, http.StatusNotFound, "%v", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// notify is accepted and does nothing: the stub has no secondaries.
func (a *API) notify(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.zoneOrFail(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]string{"result": "Notification queued"})
	}
}
