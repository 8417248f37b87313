package acmestub

import (
	"crypto/x509"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Statuses of ACME objects (RFC 8555 7.1.6).
const (
	statusPending     = "pending"
	statusReady       = "ready"
	statusProcessing  = "processing"
	statusValid       = "valid"
	statusInvalid     = "invalid"
	statusDeactivated = "deactivated"
	statusRevoked     = "revoked"
)

// Challenge types the server validates.
const (
	ChallengeHTTP01 = "http-01"
	ChallengeDNS01  = "dns-01"
)

// Lifetimes of the objects: long beside any test, as Let's Encrypt's
// are beside a client's run, so that nothing expires under a test.
const (
	orderLifetime = 7 * 24 * time.Hour
	authzLifetime = 7 * 24 * time.Hour
)

// Identifier is what an order asks a certificate for (RFC 8555 7.1.3):
// Type "dns" and a name, "*.example.test" for a wildcard.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// account is an ACME account (RFC 8555 7.1.2).
type account struct {
	id        string
	key       *jose.JSONWebKey
	thumb     string // base64url SHA-256 thumbprint of key
	status    string
	contact   []string
	tosAgreed bool
	orders    []string // IDs, oldest first
}

// order is an ACME order (RFC 8555 7.1.3). Its status follows its
// authorizations (refreshOrder), as RFC 8555 7.1.6 describes.
type order struct {
	id          string
	account     string
	status      string
	expires     time.Time
	identifiers []Identifier
	authzs      []string // IDs, one per identifier
	err         *Problem
	cert        string // the certificate's ID once valid
}

// authz is an ACME authorization (RFC 8555 7.1.4), of one order: the
// server makes fresh ones for each order.
type authz struct {
	id         string
	account    string
	order      string
	identifier Identifier // without "*." for a wildcard
	wildcard   bool
	status     string
	expires    time.Time
	chals      []string // IDs
}

// challenge is an ACME challenge (RFC 8555 7.1.5, 8).
type challenge struct {
	id        string
	authz     string
	typ       string
	token     string
	status    string
	validated time.Time
	err       *Problem
}

// issuedCert is a certificate issued to an account.
type issuedCert struct {
	id      string
	account string
	order   string
	leaf    *x509.Certificate
	revoked bool
}

// Wire forms of the objects (RFC 8555 7.1).

type accountJSON struct {
	Status    string   `json:"status"`
	Contact   []string `json:"contact,omitempty"`
	TOSAgreed bool     `json:"termsOfServiceAgreed,omitempty"`
	Orders    string   `json:"orders"`
}

type orderJSON struct {
	Status         string       `json:"status"`
	Expires        time.Time    `json:"expires"`
	Identifiers    []Identifier `json:"identifiers"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Error          *Problem     `json:"error,omitempty"`
}

type authzJSON struct {
	Identifier Identifier      `json:"identifier"`
	Status     string          `json:"status"`
	Expires    time.Time       `json:"expires"`
	Challenges []challengeJSON `json:"challenges"`
	Wildcard   bool            `json:"wildcard,omitempty"`
}

type challengeJSON struct {
	Type      string     `json:"type"`
	URL       string     `json:"url"`
	Token     string     `json:"token"`
	Status    string     `json:"status"`
	Validated *time.Time `json:"validated,omitempty"`
	Error     *Problem   `json:"error,omitempty"`
}

// The JSON of each object, with URLs on base; under s.mu.

func (a *account) json(base string) accountJSON {
	return accountJSON{Status: a.status, Contact: a.contact, TOSAgreed: a.tosAgreed, Orders: base + "/acct/" + a.id + "/orders"}
}

func (s *Server) orderJSON(o *order, base string) orderJSON {
	j := orderJSON{
		Status:      o.status,
		Expires:     o.expires,
		Identifiers: o.identifiers,
		Finalize:    base + "/order/" + o.id + "/finalize",
		Error:       o.err,
	}
	for _, id := range o.authzs {
		j.Authorizations = append(j.Authorizations, base+"/authz/"+id)
	}
	if o.cert != "" {
		j.Certificate = base + "/cert/" + o.cert
	}
	return j
}

func (s *Server) authzJSON(a *authz, base string) authzJSON {
	j := authzJSON{Identifier: a.identifier, Status: a.status, Expires: a.expires, Wildcard: a.wildcard, Challenges: []challengeJSON{}}
	for _, id := range a.chals {
		j.Challenges = append(j.Challenges, s.chals[id].json(base))
	}
	return j
}

func (c *challenge) json(base string) challengeJSON {
	j := challengeJSON{Type: c.typ, URL: base + "/chal/" + c.id, Token: c.token, Status: c.status, Error: c.err}
	if !c.validated.IsZero() {
		v := c.validated
		j.Validated = &v
	}
	return j
}

// refreshOrder moves a pending order on as its authorizations did (RFC
// 8555 7.1.6): invalid once one is not pending or valid, ready once all
// are valid. Under s.mu.
func (s *Server) refreshOrder(o *order) {
	if o.status != statusPending {
		return
	}
	valid := 0
	for _, id := range o.authzs {
		a := s.authzs[id]
		switch a.status {
		case statusValid:
			valid++
		case statusPending:
		default:
			o.status = statusInvalid
			o.err = &Problem{Type: ProblemUnauthorized, Detail: "authorization for " + a.identifier.Value + " is " + a.status, Identifier: &a.identifier}
			for _, cid := range a.chals {
				if c := s.chals[cid]; c.err != nil {
					o.err = c.err
					break
				}
			}
			return
		}
	}
	if valid == len(o.authzs) {
		o.status = statusReady
	}
}

// nextID gives out an object's ID: sequential, so that the log reads
// "order 2"; under s.mu.
func (s *Server) nextID() string {
	s.ids++
	return strconv.Itoa(s.ids)
}
