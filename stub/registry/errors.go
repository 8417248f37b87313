package registrystub

import "errors"

// Errors callers branch on, with errors.Is. The errors returned wrap them
// with what was being done.
var (
	// ErrNoPull: WaitForPull's context ended before a matching pull came;
	// the error also wraps the context's error.
	ErrNoPull = errors.New("no matching pull")
	// ErrBadReference: a reference to push to that does not parse, or
	// that names a registry (the server is the registry: give
	// "repo:tag").
	ErrBadReference = errors.New("bad reference")
)
