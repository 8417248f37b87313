package dnsstub

import "errors"

// Errors callers branch on, with errors.Is. The errors returned wrap them
// with what was being done and how to fix it.
var (
	// ErrBadRecord: record text that does not parse, or a record the
	// server cannot hold (an SOA away from a zone's apex, a class other
	// than IN).
	ErrBadRecord = errors.New("bad record")
	// ErrOutsideZones: a record whose name is in none of the server's
	// zones; declare the zone first (AddZone).
	ErrOutsideZones = errors.New("name outside every zone")
	// ErrCNAMEClash: a CNAME at a name that has other records, or another
	// record at a name that has a CNAME (RFC 1034 3.6.2 allows a CNAME no
	// neighbours).
	ErrCNAMEClash = errors.New("CNAME and other records at one name")
	// ErrOccluded: a record below a delegation other than the glue
	// addresses of its name servers; it would never be served, since
	// queries there get a referral.
	ErrOccluded = errors.New("record below a delegation")
	// ErrZoneExists: AddZone of a zone declared already.
	ErrZoneExists = errors.New("zone declared already")
	// ErrNoZone: RemoveZone of a zone not declared.
	ErrNoZone = errors.New("no such zone")
	// ErrNoRecord: Remove of a record the server does not hold.
	ErrNoRecord = errors.New("no such record")
	// ErrBadFault: a Fault that does nothing, or contradicts itself.
	ErrBadFault = errors.New("bad fault")
	// ErrServerClosed: Serve or Start after Close, and what Serve returns
	// once Close has stopped it.
	ErrServerClosed = errors.New("dns stub server closed")
	// ErrNoQuery: WaitForQuery's context ended before a matching query
	// came; the error also wraps the context's error.
	ErrNoQuery = errors.New("no matching query")
)
