package acmestub

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// minRSABits is the smallest RSA key the server certifies, as the
// CA/Browser Forum's baseline requirements.
const minRSABits = 2048

// checkCSR parses a finalize request's CSR (base64url DER) and checks it
// against the order (RFC 8555 7.4): it names exactly the order's
// identifiers, its signature holds, and its key is one the server
// certifies and not the account's.
func checkCSR(b64 string, ids []Identifier, acct *account) (*x509.CertificateRequest, *Problem) {
	bad := func(format string, args ...any) *Problem {
		return problem(ProblemBadCSR, http.StatusBadRequest, format, args...)
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil {
		return nil, bad("CSR is not base64url: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, bad("parse CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, bad("CSR signature: %v", err)
	}
	if n := len(csr.IPAddresses) + len(csr.EmailAddresses) + len(csr.URIs); n > 0 {
		return nil, bad("CSR has %d IP, email or URI names: the order has DNS names only", n)
	}
	var names []string
	if cn := csr.Subject.CommonName; cn != "" {
		names = append(names, strings.ToLower(cn))
	}
	for _, n := range csr.DNSNames {
		names = append(names, strings.ToLower(n))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	want := values(ids)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		var extra, missing []string
		for _, n := range names {
			if !slices.Contains(want, n) {
				extra = append(extra, n)
			}
		}
		for _, n := range want {
			if !slices.Contains(names, n) {
				missing = append(missing, n)
			}
		}
		return nil, bad("CSR names %v, the order %v: extra %v, missing %v", names, want, extra, missing)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, bad("CSR key: %v", err)
	}
	if acctKey, err := x509.MarshalPKIXPublicKey(acct.key.Key); err == nil {
		if k, err := x509.MarshalPKIXPublicKey(csr.PublicKey); err == nil && bytes.Equal(k, acctKey) {
			return nil, bad("CSR key is the account's key: use a key of the certificate's own (RFC 8555 11.1)")
		}
	}
	return csr, nil
}

// checkKey accepts the keys a public CA certifies: RSA of minRSABits or
// more, ECDSA P-256 and P-384, Ed25519.
func checkKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits: want %d or more", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA key on %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("key type %T: want RSA, ECDSA or Ed25519", pub)
	}
	return nil
}
