package webstub

import "errors"

// Errors callers branch on, with errors.Is. The errors returned wrap them
// with what was being done.
var (
	// ErrBadFault: a Fault that does nothing or contradicts itself, or a
	// path prefix that is not one.
	ErrBadFault = errors.New("bad fault")
	// ErrServerClosed: Serve or Start after Close, and what Serve returns
	// once Close has stopped it.
	ErrServerClosed = errors.New("web stub server closed")
	// ErrNoRequest: WaitForRequest's context ended before a matching
	// request came; the error also wraps the context's error.
	ErrNoRequest = errors.New("no matching request")
)
