package tlsca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// Validity of what a CA makes, when Options leaves it 0.
const (
	// DefaultValidity is how long the root is valid: far beyond any test,
	// so that a long run or a guest whose clock runs ahead still trusts
	// it, yet short enough that a leaked test CA is soon worthless.
	DefaultValidity = 30 * 24 * time.Hour
	// DefaultLeafValidity is how long an issued certificate is valid
	// (never beyond the root): a week, like the root far beyond a test.
	DefaultLeafValidity = 7 * 24 * time.Hour
	// ClockSkew is how far before its making a certificate becomes valid:
	// a guest's clock, set from the RTC or not at all before NTP, may lag
	// the host's, and a certificate "not yet valid" fails the handshake.
	ClockSkew = time.Hour
)

// Options configures a CA. The zero value makes a root named
// "shakedown test CA", valid for DefaultValidity, that issues certificates
// valid for DefaultLeafValidity.
type Options struct {
	// Name is the root's common name (what a guest's trust store lists);
	// "" means "shakedown test CA".
	Name string
	// Validity is how long the root is valid from now; 0 means
	// DefaultValidity.
	Validity time.Duration
	// LeafValidity is how long issued certificates are valid from when
	// they are issued, cut to the root's end; 0 means DefaultLeafValidity.
	LeafValidity time.Duration
	// Now, if not nil, is the clock certificates are dated by: a test of
	// expiry sets it. nil means time.Now.
	Now func() time.Time
}

// CA is a test's certificate authority: a root certificate and its key,
// made by New. It is safe for concurrent use; it holds no state beyond the
// root, so that issuing never blocks.
type CA struct {
	opts Options
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

// New makes a root CA: a fresh P-256 key and a self-signed certificate,
// valid from ClockSkew ago.
func New(opts Options) (*CA, error) {
	if opts.Name == "" {
		opts.Name = "shakedown test CA"
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.LeafValidity == 0 {
		opts.LeafValidity = DefaultLeafValidity
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Validity < 0 || opts.LeafValidity < 0 {
		return nil, fmt.Errorf("new CA %q: negative validity (%v, leaves %v)", opts.Name, opts.Validity, opts.LeafValidity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: generate key: %w", opts.Name, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, fmt.Errorf("new CA %q: %w", opts.Name, err)
	}
	now := opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.Name, Organization: []string{"shakedown"}},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Issues leaves only: a chain through an intermediate of its own
		// would be a bug in the test.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: create certificate: %w", opts.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA %q: parse certificate: %w", opts.Name, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		opts: opts,
		cert: cert,
		key:  key,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool: pool,
	}, nil
}

// serialNumber is a random 128-bit serial: unique without a counter, as
// RFC 5280 4.1.2.2 asks (and browsers check, 64 bits at least).
func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // never 0
}

// Certificate returns the root certificate. The caller must not change it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Signer returns the root's private key, for code that issues from the CA
// itself (an ACME stand-in, say: x509.CreateCertificate(rand.Reader, tmpl,
// ca.Certificate(), pub, ca.Signer())).
func (ca *CA) Signer() crypto.Signer { return ca.key }

// CertPEM returns the root certificate PEM-encoded: what a guest's trust
// store holds (GuestFiles), what curl --cacert reads. The caller must not
// change it.
func (ca *CA) CertPEM() []byte { return ca.pem }

// Pool returns a pool holding only the root: the RootCAs of a client that
// trusts the test's servers and nothing else. The caller must not change
// it.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// ClientTLSConfig returns a TLS client configuration that trusts the root
// only, as a guest with GuestFiles written does; a new one each call, for
// the caller to change (ServerName, say).
func (ca *CA) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
}

// ServerTLSConfig returns a TLS server configuration presenting a
// certificate Issue makes for names; a new one each call.
func (ca *CA) ServerTLSConfig(names ...string) (*tls.Config, error) {
	cert, err := ca.Issue(names...)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Issue makes a server certificate, with a fresh P-256 key, for names:
// each a DNS name ("www.test", "*.apps.test", "localhost") or an IP
// address ("192.168.1.253", "2001:db8:1::253"), which go to the
// certificate's DNS names and IP addresses in turn. Its chain holds the
// root too, as servers send it, and its Leaf is set. It is valid from
// ClockSkew ago for Options.LeafValidity, never beyond the root, for
// server and client authentication alike (mutual TLS).
//
// No names wraps ErrNoNames; a name that is neither a DNS name nor an
// address wraps ErrBadName.
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, fmt.Errorf("issue certificate: %w: give DNS names or IP addresses", ErrNoNames)
	}
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, name := range names {
		if ip, err := netip.ParseAddr(name); err == nil {
			if ip.Zone() != "" {
				return tls.Certificate{}, fmt.Errorf("issue certificate for %q: %w: an address with a zone cannot be in a certificate", name, ErrBadName)
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
			continue
		}
		dns := strings.TrimSuffix(name, ".")
		if err := checkDNSName(dns); err != nil {
			return tls.Certificate{}, fmt.Errorf("issue certificate for %q: %w", name, err)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, dns)
	}
	// The first name is the common name too, for clients that still
	// read it; verifiers read the SANs.
	tmpl.Subject = pkix.Name{CommonName: strings.TrimSuffix(names[0], ".")}
	serial, err := serialNumber()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue certificate for %s: %w", names[0], err)
	}
	tmpl.SerialNumber = serial
	now := ca.opts.Now()
	tmpl.NotBefore = now.Add(-ClockSkew)
	tmpl.NotAfter = now.Add(ca.opts.LeafValidity)
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue certificate for %s: generate key: %w", names[0], err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue certificate for %s: %w", names[0], err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue certificate for %s: parse: %w", names[0], err)
	}
	return tls.Certificate{
		Certificate: [][]byte{der, ca.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// checkDNSName accepts a host name as certificates carry it (RFC 5280
// 4.2.1.6, with RFC 6125's wildcard as the whole first label): labels of
// letters, digits, hyphens and underscores (which Go's verifier accepts,
// as some internal names have them), not starting or ending with a
// hyphen, 63 bytes at most, 253 in all.
func checkDNSName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if len(name) > 253 {
		return fmt.Errorf("%w: %d bytes, longer than 253", ErrBadName, len(name))
	}
	for i, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return fmt.Errorf("%w: empty label", ErrBadName)
		case label == "*" && i == 0 && strings.Contains(name, "."):
			continue
		case len(label) > 63:
			return fmt.Errorf("%w: label %q longer than 63 bytes", ErrBadName, label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("%w: label %q starts or ends with a hyphen", ErrBadName, label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: %q in label %q: want a DNS name (letters, digits, hyphens) or an IP address", ErrBadName, c, label)
			}
		}
	}
	return nil
}
