package pdnsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/pdnsapi"
)

const key = "api-secret"

// start serves the API of a stub with one zone, on loopback.
func start(t *testing.T) (*dnsstub.Server, *pdnsapi.API, string) {
	t.Helper()
	s := dnsstub.New(dnsstub.Config{})
	if err := s.AddZone("example.test.", "@ NS ns1", "ns1 A 192.0.2.53", "www A 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	api := pdnsapi.New(s, pdnsapi.Config{APIKey: key, Logf: t.Logf})
	url, err := api.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return s, api, url
}

// call sends a request as a PowerDNS client does and returns the status
// and body.
func call(t *testing.T, method, url, body, apiKey string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lookup asks the stub over DNS, as the rest of the testbed would.
func lookup(t *testing.T, s *dnsstub.Server, name string, qtype uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, err := dns.Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	return out
}

func TestPatch(t *testing.T) {
	zone := "/api/v1/servers/localhost/zones/example.test."
	tests := []struct {
		name   string
		body   string
		status int
		errMsg string            // in the error body
		check  map[string]string // name → the TXT/A data after, joined by " | "
	}{
		{"acme challenge, as lego sends it",
			`{"rrsets":[{"name":"_acme-challenge.www.example.test.","type":"TXT","ttl":120,"changetype":"REPLACE","records":[{"content":"\"digest\"","disabled":false}]}]}`,
			204, "", map[string]string{"_acme-challenge.www.example.test.": `"digest"`}},
		{"replace an address, as external-dns does",
			`{"rrsets":[{"name":"www.example.test.","type":"A","ttl":300,"changetype":"REPLACE","records":[{"content":"192.0.2.7"},{"content":"192.0.2.8"}]}]}`,
			204, "", map[string]string{"www.example.test.": "192.0.2.7 | 192.0.2.8"}},
		{"delete",
			`{"rrsets":[{"name":"www.example.test.","type":"A","changetype":"DELETE"}]}`,
			204, "", map[string]string{"www.example.test.": ""}},
		{"disabled records are not served",
			`{"rrsets":[{"name":"www.example.test.","type":"A","ttl":60,"changetype":"REPLACE","records":[{"content":"192.0.2.9","disabled":true}]}]}`,
			204, "", map[string]string{"www.example.test.": ""}},
		{"not canonical",
			`{"rrsets":[{"name":"new.example.test","type":"A","ttl":60,"changetype":"REPLACE","records":[{"content":"192.0.2.9"}]}]}`,
			422, "Name is not canonical: end it with a dot", nil},
		{"out of zone, and nothing changes",
			`{"rrsets":[{"name":"new.example.test.","type":"A","ttl":60,"changetype":"REPLACE","records":[{"content":"192.0.2.9"}]},{"name":"www.other.test.","type":"A","ttl":60,"changetype":"REPLACE","records":[{"content":"192.0.2.9"}]}]}`,
			422, "Name is out of zone example.test.", map[string]string{"new.example.test.": "", "www.example.test.": "192.0.2.1"}},
		{"bad content",
			`{"rrsets":[{"name":"www.example.test.","type":"A","ttl":60,"changetype":"REPLACE","records":[{"content":"not-an-address"}]}]}`,
			422, `record content "not-an-address" does not parse as A data`, map[string]string{"www.example.test.": "192.0.2.1"}},
		{"CNAME clash",
			`{"rrsets":[{"name":"www.example.test.","type":"CNAME","ttl":60,"changetype":"REPLACE","records":[{"content":"ns1.example.test."}]}]}`,
			422, "CNAME and other records at one name", nil},
		{"bad changetype",
			`{"rrsets":[{"name":"www.example.test.","type":"A","changetype":"MERGE"}]}`,
			422, `changetype "MERGE" not understood`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, api, url := start(t)
			status, body := call(t, "PATCH", url+zone, tt.body, key)
			if status >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Errorf("error body %q is not PowerDNS's {\"error\": ...}", body)
				}
				body = e.Error
			}
			if status != tt.status || !strings.Contains(body, tt.errMsg) {
				t.Errorf("PATCH: %d %s, want %d with %q", status, body, tt.status, tt.errMsg)
			}
			for name, want := range tt.check {
				qtype := dns.TypeA
				if strings.HasPrefix(name, "_acme") {
					qtype = dns.TypeTXT
				}
				if got := strings.Join(lookup(t, s, name, qtype), " | "); got != want {
					t.Errorf("%s over DNS after the PATCH: %q, want %q", name, got, want)
				}
			}
			r, err := api.WaitForRequest(context.Background(), pdnsapi.Match{Method: "PATCH"})
			if err != nil || r.Status != tt.status || r.Body != tt.body {
				t.Errorf("log: %v %v, want the PATCH with its body and status %d", r, err, tt.status)
			}
		})
	}
}

func TestReadAndAuth(t *testing.T) {
	_, _, url := start(t)
	if status, body := call(t, "GET", url+"/api/v1/servers/localhost/zones", "", "wrong"); status != 401 {
		t.Errorf("wrong key: %d %s, want 401", status, body)
	}
	status, body := call(t, "GET", url+"/api", "", key)
	if status != 200 || !strings.Contains(body, `"url":"/api/v1"`) {
		t.Errorf("GET /api: %d %s", status, body)
	}
	status, body = call(t, "GET", url+"/api/v1/servers/localhost/zones/example.test.", "", key)
	var z struct {
		Name   string
		Serial uint32
		RRsets []struct {
			Name, Type string
			Records    []struct{ Content string }
		}
	}
	if err := json.Unmarshal([]byte(body), &z); err != nil || status != 200 {
		t.Fatalf("GET zone: %d %s %v", status, body, err)
	}
	var www []string
	for _, rs := range z.RRsets {
		if rs.Name == "www.example.test." && rs.Type == "A" {
			for _, r := range rs.Records {
				www = append(www, r.Content)
			}
		}
	}
	if z.Name != "example.test." || z.Serial == 0 || len(www) != 1 || www[0] != "192.0.2.1" {
		t.Errorf("GET zone: got %+v", z)
	}
	if status, body := call(t, "GET", url+"/api/v1/servers/localhost/zones/other.test.", "", key); status != 404 ||
		!strings.Contains(body, "Could not find domain 'other.test.'") {
		t.Errorf("unknown zone: %d %s", status, body)
	}
	status, body = call(t, "POST", url+"/api/v1/servers/localhost/zones",
		`{"name":"new.test.","kind":"Native","nameservers":["ns1.example.test."]}`, key)
	if status != 201 || !strings.Contains(body, `"name":"new.test."`) {
		t.Errorf("create zone: %d %s", status, body)
	}
	if status, _ := call(t, "POST", url+"/api/v1/servers/localhost/zones", `{"name":"new.test.","kind":"Native"}`, key); status != 409 {
		t.Errorf("create the zone again: %d, want 409", status)
	}
	if status, _ := call(t, "DELETE", url+"/api/v1/servers/localhost/zones/new.test.", "", key); status != 204 {
		t.Errorf("delete zone: %d, want 204", status)
	}
}

// TestFaults: a rate limit with Retry-After, then success, as a client's
// retry sees it.
func TestFaults(t *testing.T) {
	_, api, url := start(t)
	api.SetFault(pdnsapi.Fault{Status: 429, RetryAfter: 2 * time.Second, Method: "PATCH", Times: 1})
	patch := `{"rrsets":[{"name":"www.example.test.","type":"A","changetype":"DELETE"}]}`
	req, _ := http.NewRequest("PATCH", url+"/api/v1/servers/localhost/zones/example.test.", strings.NewReader(patch))
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("under the fault: %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status, _ := call(t, "GET", url+"/api/v1/servers/localhost", "", key); status != 200 {
		t.Errorf("a GET, which the fault does not match: %d", status)
	}
	if status, _ := call(t, "PATCH", url+"/api/v1/servers/localhost/zones/example.test.", patch, key); status != 204 {
		t.Errorf("the retry: %d, want 204", status)
	}
	api.SetFault(pdnsapi.Fault{})
	if status, body := call(t, "GET", url+"/api/v1/servers", "", key); status != 500 || !strings.Contains(body, "fault injected") {
		t.Errorf("a 500 fault: %d %s", status, body)
	}
	api.ClearFaults()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = api.WaitForRequest(ctx, pdnsapi.Match{Method: "POST"})
	if !errors.Is(err, pdnsapi.ErrNoRequest) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "wait for a POST request") || !strings.Contains(err.Error(), "GET /api/v1/servers from") {
		t.Errorf("WaitForRequest timeout: %v", err)
	}
}
