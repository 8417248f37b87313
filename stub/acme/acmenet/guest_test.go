package acmenet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown"
	"github.com/shakedown-dev/shakedown/internal/testenv"
	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
	"github.com/shakedown-dev/shakedown/stub/acme/acmenet"
	dnsstub "github.com/shakedown-dev/shakedown/stub/dns"
	"github.com/shakedown-dev/shakedown/stub/dns/dnsnet"
	"github.com/shakedown-dev/shakedown/stub/dns/pdnsapi"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
	webstub "github.com/shakedown-dev/shakedown/stub/web"
	"github.com/shakedown-dev/shakedown/stub/web/webnet"
)

// TestGuestCertificates has real ACME clients in a guest get certificates
// from the stand-in CA through the testbed: Debian's certbot by HTTP-01
// (the CA connects to the guest's port 80 through the switch), and
// Debian's lego by DNS-01 through the PowerDNS API stand-in, whose TXT
// record the CA then finds through the DNS stub. The guest then serves
// HTTPS with the first certificate, which a client on the network
// verifies against the test's CA.
func TestGuestCertificates(t *testing.T) {
	testenv.NeedPackages(t)
	tb := shakedown.New(t, shakedown.Options{})
	lan := tb.Network("lan", shakedown.NetworkOptions{})
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		t.Fatal(err)
	}

	zone := dnsstub.New(dnsstub.Config{Logf: t.Logf})
	t.Cleanup(func() { zone.Close() })
	if err := zone.AddZone("test.", "@ NS ns"); err != nil {
		t.Fatal(err)
	}
	ns, err := dnsnet.Attach(lan, "ns", zone)
	if err != nil {
		t.Fatal(err)
	}
	api := pdnsapi.New(zone, pdnsapi.Config{APIKey: "pdns-secret", Logf: t.Logf})
	pdnsWeb := webstub.New(webstub.Config{Handler: api})
	t.Cleanup(func() { pdnsWeb.Close() })
	if _, err := webnet.Attach(lan, "pdns", pdnsWeb, 8081); err != nil {
		t.Fatal(err)
	}
	acme, acmeHost, err := acmenet.Attach(lan, "acme", acmenet.Config{CA: ca, DNS: ns,
		Server: acmestub.Config{Logf: t.Logf}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acme.Close() })

	files := []shakedown.File{{Guest: "/etc/resolv.conf", Data: dnsnet.ResolvConf("test.", ns)}}
	for path, data := range ca.GuestFiles(tlsca.Bundle) {
		files = append(files, shakedown.File{Guest: path, Data: data})
	}
	web := tb.Machine("web", shakedown.MachineConfig{
		Networks: []string{"lan"},
		Packages: []string{"certbot", "lego"},
		Files:    files,
		// certbot is Python: more than the default's room for the
		// interpreter and the packages' files.
		MemoryMiB: 768,
	})
	probe := lan.Host("probe", shakedown.HostOptions{})
	if err := dnsnet.AddTestbedRecords(zone, tb, "test."); err != nil {
		t.Fatal(err)
	}
	tb.StartAll()

	// HTTP-01: certbot answers the challenge on the guest's port 80, which
	// the CA reaches at the address DNS gives web.test.
	dir := acmenet.DirectoryURL(acmeHost)
	web.Succeed("certbot certonly --standalone --non-interactive --agree-tos --register-unsafely-without-email " +
		"--preferred-challenges http --server " + dir + " -d web.test >&2")
	chain := readChain(t, web, "/etc/letsencrypt/live/web.test/fullchain.pem")
	verify(t, ca, chain, "web.test")
	if _, err := acme.WaitFor(ctx(t), acmestub.Match{Kind: acmestub.EventValid, Name: "web.test"}); err != nil {
		t.Error(err)
	}

	// DNS-01: lego puts the TXT record in through the PowerDNS API, checks
	// it at the zone's name server, and the CA finds it there too.
	web.Succeed("PDNS_API_URL=http://pdns:8081 PDNS_API_KEY=pdns-secret PDNS_PROPAGATION_TIMEOUT=30 PDNS_POLLING_INTERVAL=1 " +
		"lego --path /root/lego --server " + dir + " --email ops@example.test --accept-tos --dns pdns -d api.test run >&2")
	chain = readChain(t, web, "/root/lego/certificates/api.test.crt")
	verify(t, ca, chain, "api.test")
	if _, err := api.WaitForRequest(ctx(t), pdnsapi.Match{Method: "PATCH", Status: 204}); err != nil {
		t.Error(err)
	}
	if _, err := zone.WaitForQuery(ctx(t), dnsstub.Match{Name: "_acme-challenge.api.test.", Type: dns.TypeTXT,
		Func: func(q dnsstub.Query) bool { return q.Client.Addr() == acmeHost.Addr() }, Desc: "from the CA"}); err != nil {
		t.Error(err)
	}

	// The guest serves HTTPS with certbot's certificate; a client on the
	// network checks it against the test's CA, by name.
	web.Succeed(`python3 -c "
import http.server, ssl
s = http.server.HTTPServer(('', 443), http.server.SimpleHTTPRequestHandler)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain('/etc/letsencrypt/live/web.test/fullchain.pem', '/etc/letsencrypt/live/web.test/privkey.pem')
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()" >&2 &`)
	web.WaitForOpenPort(443)
	conn, err := probe.Dial(ctx(t), "tcp", "web:443")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{RootCAs: ca.Pool(), ServerName: "web.test"})
	if err := tc.HandshakeContext(ctx(t)); err != nil {
		t.Errorf("TLS to web.test with certbot's certificate: %v", err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// readChain reads a PEM chain from the guest.
func readChain(t *testing.T, m *shakedown.Machine, path string) []*x509.Certificate {
	t.Helper()
	rest := []byte(m.Succeed("cat " + path))
	var chain []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		t.Fatalf("%s holds no certificate", path)
	}
	return chain
}

// verify checks that chain's leaf is for name and chains to ca.
func verify(t *testing.T, ca *tlsca.CA, chain []*x509.Certificate, name string) {
	t.Helper()
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name}); err != nil {
		t.Errorf("certificate for %s: %v (names %v)", name, err, chain[0].DNSNames)
	}
	if !strings.EqualFold(chain[0].Issuer.CommonName, ca.Certificate().Subject.CommonName) {
		t.Errorf("certificate for %s issued by %q, want the test CA", name, chain[0].Issuer)
	}
}
