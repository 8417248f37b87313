package acmestub

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Issuer is the CA that signs the certificates a Server issues: a CA
// certificate and its key. It is two fields, nothing more, so that a test
// CA of the test's own (one that also signs its other certificates) plugs
// in.
type Issuer struct {
	// Cert is the CA's certificate: IsCA, with the key usage to sign
	// certificates. Issued chains end with it.
	Cert *x509.Certificate
	// Key is Cert's private key.
	Key crypto.Signer
}

// Durations of the certificates the server makes.
const (
	// DefaultCertLifetime is how long an issued certificate is valid when
	// Config.CertLifetime is 0: Let's Encrypt's.
	DefaultCertLifetime = 90 * 24 * time.Hour
	// rootLifetime is how long New's own root is valid: beyond any test.
	rootLifetime = 10 * 365 * 24 * time.Hour
	// backdate starts certificates' validity a little in the past, so
	// that a verifier whose clock is behind (a guest booted without a
	// time source) still accepts them.
	backdate = time.Hour
)

// newRoot makes a self-signed ECDSA P-256 root.
func newRoot() (Issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issuer{}, fmt.Errorf("make root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return Issuer{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "shakedown acme stub root " + serial.Text(16)[:8], Organization: []string{"shakedown"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(rootLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Issuer{}, fmt.Errorf("make root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Issuer{}, fmt.Errorf("parse root certificate: %w", err)
	}
	return Issuer{Cert: cert, Key: key}, nil
}

// check rejects an issuer that cannot sign certificates.
func (is Issuer) check() error {
	switch {
	case is.Cert == nil || is.Key == nil:
		return fmt.Errorf("%w: Issuer needs both Cert and Key (or leave Issuer nil for a root of the server's own)", ErrBadConfig)
	case !is.Cert.IsCA:
		return fmt.Errorf("%w: Issuer.Cert %q is not a CA certificate", ErrBadConfig, is.Cert.Subject)
	case is.Cert.KeyUsage != 0 && is.Cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: Issuer.Cert %q has no cert-sign key usage", ErrBadConfig, is.Cert.Subject)
	}
	want, err := x509.MarshalPKIXPublicKey(is.Cert.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: Issuer.Cert's public key: %v", ErrBadConfig, err)
	}
	got, err := x509.MarshalPKIXPublicKey(is.Key.Public())
	if err != nil || !bytes.Equal(got, want) {
		return fmt.Errorf("%w: Issuer.Key is not the key of Issuer.Cert %q", ErrBadConfig, is.Cert.Subject)
	}
	return nil
}

// randomSerial is a positive 128-bit serial number, unique with
// overwhelming odds (RFC 5280 4.1.2.2 allows up to 20 octets).
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("make serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// issue signs a TLS server certificate for names (DNS names, or IP
// addresses for the server's own) and pub, valid for lifetime.
func (is Issuer) issue(pub crypto.PublicKey, names []string, lifetime time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // RSA key exchange, for old TLS clients
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	// The subject's common name is the first name, as Let's Encrypt
	// sets it, unless it is too long for one (64 characters, RFC 5280).
	if len(names) > 0 && len(names[0]) <= 64 {
		tmpl.Subject.CommonName = names[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.Cert, pub, is.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %v: %w", names, err)
	}
	return x509.ParseCertificate(der)
}

// pemCert is cert in PEM.
func pemCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}
