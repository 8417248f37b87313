package acmestub

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Fault is a set of failures the server plays, set and cleared at run
// time: what a test makes the CA do to see how its client copes. Each
// count is used up by the requests or validations it fails, then that
// part of the fault ends; Delay lasts until cleared. The zero value does
// nothing, and SetFault refuses it.
type Fault struct {
	// BadNonce answers the next this many signed requests with badNonce,
	// whatever their nonce: a client must retry with the fresh nonce of
	// the answer, as RFC 8555 6.5 asks.
	BadNonce int
	// FailValidations fails the next this many validations with Problem,
	// without trying them.
	FailValidations int
	// Problem is what FailValidations fails with; nil means an
	// incorrectResponse saying it is a fault.
	Problem *Problem
	// Delay holds every validation back this long before it runs, the
	// challenge staying "processing": a slow CA, for a client's polling.
	// Close cuts it short.
	Delay time.Duration
	// RateLimitOrders answers the next this many new orders with 429 and
	// rateLimited, and a Retry-After header of RetryAfter.
	RateLimitOrders int
	// UnavailableOrders answers the next this many new orders with 503
	// and serverInternal, and a Retry-After header of RetryAfter: a CA
	// under maintenance.
	UnavailableOrders int
	// RetryAfter is the Retry-After of RateLimitOrders' and
	// UnavailableOrders' answers, rounded up to seconds; 0 means 1s.
	RetryAfter time.Duration
}

// check rejects a fault that does nothing or contradicts itself.
func (f Fault) check() error {
	switch {
	case f.BadNonce < 0 || f.FailValidations < 0 || f.RateLimitOrders < 0 || f.UnavailableOrders < 0:
		return fmt.Errorf("%w: a negative count in %+v: want 0 for none, or a count", ErrBadFault, f)
	case f.Delay < 0 || f.RetryAfter < 0:
		return fmt.Errorf("%w: a negative duration in %+v", ErrBadFault, f)
	case f.Problem != nil && f.FailValidations == 0:
		return fmt.Errorf("%w: Problem without FailValidations would fail nothing: set how many validations to fail", ErrBadFault)
	case f.Problem != nil && !strings.HasPrefix(f.Problem.Type, ProblemPrefix):
		return fmt.Errorf("%w: Problem type %q: want one of %s... (ProblemConnection, ...)", ErrBadFault, f.Problem.Type, ProblemPrefix)
	case f.RetryAfter != 0 && f.RateLimitOrders == 0 && f.UnavailableOrders == 0:
		return fmt.Errorf("%w: RetryAfter without RateLimitOrders or UnavailableOrders would do nothing", ErrBadFault)
	case f.empty():
		return fmt.Errorf("%w: it does nothing: set BadNonce, FailValidations, Delay, RateLimitOrders or UnavailableOrders (ClearFault removes a fault)", ErrBadFault)
	}
	return nil
}

// empty reports whether f does nothing any more.
func (f Fault) empty() bool {
	return f.BadNonce == 0 && f.FailValidations == 0 && f.Delay == 0 && f.RateLimitOrders == 0 && f.UnavailableOrders == 0
}

// String describes the fault for the log and messages: "badNonce x2",
// "fail validations x1 (connection: ...)", "delay 2s".
func (f Fault) String() string {
	var parts []string
	if f.BadNonce > 0 {
		parts = append(parts, fmt.Sprintf("badNonce x%d", f.BadNonce))
	}
	if f.FailValidations > 0 {
		p := "fail validations x" + fmt.Sprint(f.FailValidations)
		if f.Problem != nil {
			p += fmt.Sprintf(" (%v)", f.Problem)
		}
		parts = append(parts, p)
	}
	if f.Delay > 0 {
		parts = append(parts, "delay validations "+f.Delay.String())
	}
	if f.RateLimitOrders > 0 {
		parts = append(parts, fmt.Sprintf("rate-limit orders x%d", f.RateLimitOrders))
	}
	if f.UnavailableOrders > 0 {
		parts = append(parts, fmt.Sprintf("503 on orders x%d", f.UnavailableOrders))
	}
	return strings.Join(parts, ", ")
}

// SetFault sets the server's fault, replacing the one set before. A fault
// that does nothing or contradicts itself wraps ErrBadFault.
func (s *Server) SetFault(f Fault) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("set fault: %w", err)
	}
	if f.Problem != nil {
		p := *f.Problem
		f.Problem = &p // the caller's may change: never share it
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.fault = f
	return nil
}

// ClearFault removes the fault, what is left of it.
func (s *Server) ClearFault() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.fault = Fault{}
}

// FaultLeft returns what is left of the fault: the counts not used up.
func (s *Server) FaultLeft() Fault {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.fault
}

// takeBadNonce returns what a BadNonce fault that fails this request
// says of itself for the log, counting it; "" if none does.
func (s *Server) takeBadNonce() string {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.fault.BadNonce == 0 {
		return ""
	}
	s.fault.BadNonce--
	return fmt.Sprintf("badNonce (%d left)", s.fault.BadNonce)
}

// takeOrderFault returns the problem a new order gets from the fault, and
// the Retry-After to send with it; nil if none.
func (s *Server) takeOrderFault() (*Problem, time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	after := s.fault.RetryAfter
	if after <= 0 {
		after = time.Second
	}
	switch {
	case s.fault.RateLimitOrders > 0:
		s.fault.RateLimitOrders--
		p := problem(ProblemRateLimited, http.StatusTooManyRequests, "too many new orders; retry after %v", after)
		p.fault = fmt.Sprintf("rate-limit orders (%d left)", s.fault.RateLimitOrders)
		return p, after
	case s.fault.UnavailableOrders > 0:
		s.fault.UnavailableOrders--
		p := problem(ProblemServerInternal, http.StatusServiceUnavailable, "service unavailable; retry after %v", after)
		p.fault = fmt.Sprintf("503 on orders (%d left)", s.fault.UnavailableOrders)
		return p, after
	}
	return nil, 0
}

// takeValidationFault returns the delay a validation waits and the
// problem it fails with (nil if it is to be tried), counting it.
func (s *Server) takeValidationFault() (time.Duration, *Problem) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.fault.FailValidations == 0 {
		return s.fault.Delay, nil
	}
	s.fault.FailValidations--
	p := s.fault.Problem
	if p == nil {
		p = &Problem{Type: ProblemIncorrectResponse, Detail: "validation failed by a fault"}
	} else {
		c := *p
		p = &c
	}
	p.fault = fmt.Sprintf("fail validations (%d left)", s.fault.FailValidations)
	return s.fault.Delay, p
}
