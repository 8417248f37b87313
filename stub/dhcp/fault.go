package dhcpstub

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Fault is a failure the server plays, set and cleared at run time: what
// a test makes DHCP do to see how its clients cope. The zero value does
// nothing, and SetFault refuses it; set one of Drop, NAK and Delay.
type Fault struct {
	// Drop answers nothing and changes no lease: a lost message, or a
	// server that cannot be reached.
	Drop bool
	// NAK refuses every REQUEST (DISCOVERs still get their offers, so a
	// client goes round: DISCOVER, OFFER, REQUEST, NAK).
	NAK bool
	// Delay holds the answer back this long: a slow server, or one
	// slower than the client's timeout. Close cuts it short, sending
	// nothing.
	Delay time.Duration
	// Types limits the fault to messages of these types
	// (dhcpv4.MessageTypeRequest, say); nil means every type.
	Types []dhcpv4.MessageType
	// MAC limits the fault to one client; nil means every client.
	MAC net.HardwareAddr
	// Times, if not 0, limits the fault to the next Times messages it
	// matches, then clears it: a failure that a retry gets past.
	Times int
}

// check rejects a fault that does nothing or contradicts itself.
func (f Fault) check() error {
	switch {
	case f.Delay < 0:
		return fmt.Errorf("%w: Delay %v is negative", ErrBadFault, f.Delay)
	case f.Times < 0:
		return fmt.Errorf("%w: Times %d is negative: want 0 for until cleared, or a count", ErrBadFault, f.Times)
	case f.Drop && (f.NAK || f.Delay != 0):
		return fmt.Errorf("%w: Drop sends no answer, so NAK and Delay would do nothing beside it: set Drop alone", ErrBadFault)
	case f.NAK && len(f.Types) > 0 && !slices.Contains(f.Types, dhcpv4.MessageTypeRequest):
		return fmt.Errorf("%w: NAK answers REQUESTs, and Types %v holds none: add dhcpv4.MessageTypeRequest, or leave Types nil", ErrBadFault, f.Types)
	case !f.Drop && !f.NAK && f.Delay == 0:
		return fmt.Errorf("%w: it does nothing: set Drop, NAK or Delay (ClearFault removes a fault; SetOutage silences the server)", ErrBadFault)
	}
	return nil
}

// matches reports whether the fault applies to req. A NAK fault applies
// to REQUESTs alone, so that Times counts them.
func (f *Fault) matches(req *dhcpv4.DHCPv4) bool {
	t := req.MessageType()
	return (f.Types == nil || slices.Contains(f.Types, t)) &&
		(!f.NAK || t == dhcpv4.MessageTypeRequest) &&
		(f.MAC == nil || bytes.Equal(f.MAC, req.ClientHWAddr))
}

// String describes the fault for the log and messages: "drop x2",
// "NAK for 52:54:00:12:01:05", "delay 2s REQUEST".
func (f Fault) String() string {
	var parts []string
	switch {
	case f.Drop:
		parts = append(parts, "drop")
	case f.NAK:
		parts = append(parts, "NAK")
	}
	if f.Delay != 0 {
		parts = append(parts, "delay "+f.Delay.String())
	}
	if len(f.Types) > 0 {
		names := make([]string, len(f.Types))
		for i, t := range f.Types {
			names[i] = msgName(t)
		}
		parts = append(parts, strings.Join(names, ","))
	}
	if f.MAC != nil {
		parts = append(parts, "for "+f.MAC.String())
	}
	if f.Times != 0 {
		parts = append(parts, fmt.Sprintf("x%d", f.Times))
	}
	return strings.Join(parts, " ")
}

// SetFault makes the server play f from the next message on, in place of
// the fault set before, if any.
func (s *Server) SetFault(f Fault) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("set fault %s: %w", f, err)
	}
	f.Types, f.MAC = slices.Clone(f.Types), slices.Clone(f.MAC)
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.fault = &f
	return nil
}

// ClearFault removes the fault, if any.
func (s *Server) ClearFault() {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.fault = nil
}

// SetOutage silences the server while on: it answers nothing and changes
// no lease, but logs what came (Note "outage: no answer"). Clients keep
// the leases they have until those run out, renew in vain, and get their
// addresses back when the outage ends: a DHCP server down for a while.
func (s *Server) SetOutage(on bool) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.outage = on
}

// takeFault returns a copy of the fault that applies to req, counting it
// down; nil if none. stateMu is held.
func (s *Server) takeFault(req *dhcpv4.DHCPv4) *Fault {
	f := s.fault
	if f == nil || !f.matches(req) {
		return nil
	}
	taken := *f
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			s.fault = nil
		}
	}
	return &taken
}
