package tlsca

import "errors"

// Errors callers branch on, with errors.Is. The errors returned wrap them
// with what was being done.
var (
	// ErrNoNames: Issue without a name; a certificate names at least one
	// host.
	ErrNoNames = errors.New("no names to issue for")
	// ErrBadName: a name that is neither a DNS name (labels of letters,
	// digits and hyphens, a wildcard as the first label at most) nor an IP
	// address.
	ErrBadName = errors.New("bad name")
)
