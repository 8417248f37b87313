package tlsca_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shakedown-dev/shakedown/stub/tlsca"
)

// newCA makes a CA with opts or fails the test.
func newCA(t *testing.T, opts tlsca.Options) *tlsca.CA {
	t.Helper()
	ca, err := tlsca.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestIssueVerifies issues certificates for DNS names and addresses and
// verifies each name against the CA's pool, and names it was not issued
// for against it too.
func TestIssueVerifies(t *testing.T) {
	ca := newCA(t, tlsca.Options{})
	for _, tc := range []struct {
		name   string
		names  []string
		verify string // the name a client asks for
		ok     bool
	}{
		{"dns", []string{"www.test"}, "www.test", true},
		{"dns trailing dot", []string{"www.test."}, "www.test", true},
		{"dns second name", []string{"www.test", "api.test"}, "api.test", true},
		{"dns other name", []string{"www.test"}, "api.test", false},
		{"wildcard", []string{"*.apps.test"}, "foo.apps.test", true},
		{"wildcard not two deep", []string{"*.apps.test"}, "a.foo.apps.test", false},
		{"localhost", []string{"localhost"}, "localhost", true},
		{"ipv4", []string{"www.test", "192.168.1.253"}, "192.168.1.253", true},
		{"ipv6", []string{"2001:db8:1::253"}, "2001:db8:1::253", true},
		{"ipv4 other", []string{"192.168.1.253"}, "192.168.1.252", false},
		{"ip as dns name", []string{"www.test"}, "192.168.1.253", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := ca.Issue(tc.names...)
			if err != nil {
				t.Fatal(err)
			}
			if len(cert.Certificate) != 2 {
				t.Fatalf("chain: got %d certificates, want the leaf and the root", len(cert.Certificate))
			}
			_, err = cert.Leaf.Verify(x509.VerifyOptions{DNSName: tc.verify, Roots: ca.Pool()})
			if got := err == nil; got != tc.ok {
				t.Errorf("verify %s: got %v, want ok %v", tc.verify, err, tc.ok)
			}
		})
	}
}

// TestOtherCA checks that one CA's certificates do not verify against
// another's pool: every test's CA is its own.
func TestOtherCA(t *testing.T) {
	a, b := newCA(t, tlsca.Options{}), newCA(t, tlsca.Options{})
	cert, err := a.Issue("www.test")
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "www.test", Roots: b.Pool()}); !errors.As(err, &unknown) {
		t.Errorf("got %v, want x509.UnknownAuthorityError", err)
	}
}

// TestValidity checks the windows of the root and of leaves: valid from
// ClockSkew before, leaves cut to the root's end.
func TestValidity(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		name               string
		opts               tlsca.Options
		wantRoot, wantLeaf time.Duration // NotAfter - now
	}{
		{"defaults", tlsca.Options{}, tlsca.DefaultValidity, tlsca.DefaultLeafValidity},
		{"set", tlsca.Options{Validity: 48 * time.Hour, LeafValidity: time.Hour}, 48 * time.Hour, time.Hour},
		{"leaf cut to root", tlsca.Options{Validity: time.Hour, LeafValidity: 48 * time.Hour}, time.Hour, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = clock
			ca := newCA(t, tc.opts)
			cert, err := ca.Issue("www.test")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what string
				cert *x509.Certificate
				want time.Duration
			}{{"root", ca.Certificate(), tc.wantRoot}, {"leaf", cert.Leaf, tc.wantLeaf}} {
				if got, want := c.cert.NotBefore, now.Add(-tlsca.ClockSkew); !got.Equal(want) {
					t.Errorf("%s NotBefore: got %v, want %v", c.what, got, want)
				}
				if got, want := c.cert.NotAfter, now.Add(c.want); !got.Equal(want) {
					t.Errorf("%s NotAfter: got %v, want %v", c.what, got, want)
				}
			}
			for _, at := range []struct {
				when time.Time
				ok   bool
			}{
				{now.Add(-tlsca.ClockSkew / 2), true}, // a guest's clock behind
				{now.Add(tc.wantLeaf - time.Minute), true},
				{now.Add(-2 * tlsca.ClockSkew), false},
				{now.Add(tc.wantLeaf + time.Minute), false},
			} {
				_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "www.test", Roots: ca.Pool(), CurrentTime: at.when})
				if got := err == nil; got != at.ok {
					t.Errorf("verify at now%+v: got %v, want ok %v", at.when.Sub(now), err, at.ok)
				}
			}
		})
	}
	if _, err := tlsca.New(tlsca.Options{Validity: -time.Hour}); err == nil {
		t.Error("New with a negative validity: got no error")
	}
}

// TestBadNames refuses what is no name.
func TestBadNames(t *testing.T) {
	ca := newCA(t, tlsca.Options{})
	if _, err := ca.Issue(); !errors.Is(err, tlsca.ErrNoNames) {
		t.Errorf("Issue(): got %v, want ErrNoNames", err)
	}
	if _, err := ca.ServerTLSConfig(); !errors.Is(err, tlsca.ErrNoNames) {
		t.Errorf("ServerTLSConfig(): got %v, want ErrNoNames", err)
	}
	for _, name := range []string{
		"", ".", "a..test", "-www.test", "www-.test", "www test", "http://www.test", "www.test:443",
		"fe80::1%eth0", "a.*.test", "*", strings.Repeat("x", 64) + ".test", "ü.test",
	} {
		if _, err := ca.Issue("ok.test", name); !errors.Is(err, tlsca.ErrBadName) {
			t.Errorf("Issue(%q): got %v, want ErrBadName", name, err)
		}
	}
}

// TestHandshake serves TLS on loopback with ServerTLSConfig and connects
// with ClientTLSConfig, by address and by name.
func TestHandshake(t *testing.T) {
	ca := newCA(t, tlsca.Options{})
	cfg, err := ca.ServerTLSConfig("www.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	for _, tc := range []struct {
		serverName string
		ok         bool
	}{{"", true}, {"www.test", true}, {"other.test", false}} {
		t.Run("name="+tc.serverName, func(t *testing.T) {
			ccfg := ca.ClientTLSConfig()
			ccfg.ServerName = tc.serverName
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), ccfg)
			if got := err == nil; got != tc.ok {
				t.Fatalf("dial: got %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if b, _ := io.ReadAll(c); string(b) != "hello" {
				t.Errorf("got %q, want hello", b)
			}
		})
	}
}

// TestAccess checks what the CA hands out: the PEM is the root, the signer
// its key, the guest files the PEM.
func TestAccess(t *testing.T) {
	ca := newCA(t, tlsca.Options{Name: "my CA"})
	block, rest := pem.Decode(ca.CertPEM())
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("CertPEM: got %q, want one CERTIFICATE block", ca.CertPEM())
	}
	root := ca.Certificate()
	if string(block.Bytes) != string(root.Raw) {
		t.Error("CertPEM is not the root")
	}
	if !root.IsCA || root.Subject.CommonName != "my CA" {
		t.Errorf("root: IsCA %v, CN %q; want a CA named my CA", root.IsCA, root.Subject.CommonName)
	}
	if !ca.Signer().Public().(*ecdsa.PublicKey).Equal(root.PublicKey) {
		t.Error("Signer's key is not the root's")
	}
	for _, tc := range []struct {
		g    tlsca.Guest
		path string
	}{{tlsca.Debian, tlsca.DebianCAFile}, {tlsca.Bundle, tlsca.BundleFile}} {
		files := ca.GuestFiles(tc.g)
		if len(files) != 1 || string(files[tc.path]) != string(ca.CertPEM()) {
			t.Errorf("GuestFiles(%d): got %v, want the PEM at %s", tc.g, files, tc.path)
		}
	}
}
