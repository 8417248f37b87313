package dhcpstub

import "errors"

// Errors callers branch on, with errors.Is. The errors returned wrap them
// with what was being done and how to fix it.
var (
	// ErrBadConfig: a Config field that cannot work (a subnet that is not
	// IPv4, a pool outside it, a lease shorter than DHCP counts); Start
	// and Serve return it for the Config given to New.
	ErrBadConfig = errors.New("bad dhcp stub config")
	// ErrOutsideSubnet: a static lease at an address outside the subnet,
	// or at its network or broadcast address.
	ErrOutsideSubnet = errors.New("address outside the subnet")
	// ErrAddressTaken: a static lease at an address another static lease
	// holds, or the server's own.
	ErrAddressTaken = errors.New("address taken")
	// ErrDuplicateMAC: a static lease for a MAC that has one already.
	ErrDuplicateMAC = errors.New("MAC has a static lease already")
	// ErrNoStatic: RemoveStatic of a MAC with no static lease.
	ErrNoStatic = errors.New("no static lease for the MAC")
	// ErrBadFault: a Fault that does nothing, or contradicts itself.
	ErrBadFault = errors.New("bad fault")
	// ErrServerClosed: Serve or Start after Close, and what Serve returns
	// once Close has stopped it.
	ErrServerClosed = errors.New("dhcp stub server closed")
	// ErrNoEvent: WaitForLease's or WaitForEvent's context ended before a
	// matching event; the error also wraps the context's error.
	ErrNoEvent = errors.New("no matching dhcp event")
)
