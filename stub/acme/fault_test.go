package acmestub_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// TestBadNonceFault: the client retries each badNonce with the answer's
// fresh nonce, and gets its certificate.
func TestBadNonceFault(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	if err := e.s.SetFault(acmestub.Fault{BadNonce: 3}); err != nil {
		t.Fatal(err)
	}
	e.issue(t, e.client(t), []string{"nonce.test"}, "http-01")
	if left := e.s.FaultLeft(); left.BadNonce != 0 {
		t.Errorf("fault left: %+v, want the badNonces used up", left)
	}
	n := 0
	for _, ev := range e.s.Log() {
		if ev.Kind == acmestub.EventRejected && ev.Problem.Type == acmestub.ProblemBadNonce && ev.Fault != "" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("got %d badNonce rejections by the fault, want 3", n)
	}
}

// TestOrderFaults: a rate limit or a 503 on new orders, with
// Retry-After; x/crypto/acme retries both by default.
func TestOrderFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      acmestub.Fault
		wantStatus int
		wantType   string
	}{
		{name: "rate limit", fault: acmestub.Fault{RateLimitOrders: 1}, wantStatus: http.StatusTooManyRequests, wantType: acmestub.ProblemRateLimited},
		{name: "unavailable", fault: acmestub.Fault{UnavailableOrders: 1, RetryAfter: 1500 * time.Millisecond}, wantStatus: http.StatusServiceUnavailable, wantType: acmestub.ProblemServerInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, acmestub.Config{})
			c := e.client(t)
			ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
			defer cancel()

			// Without retries, the client sees the problem.
			c.RetryBackoff = func(int, *http.Request, *http.Response) time.Duration { return 0 }
			if err := e.s.SetFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			_, err := c.AuthorizeOrder(ctx, acme.DomainIDs("limited.test"))
			var aerr *acme.Error
			if !errors.As(err, &aerr) || aerr.StatusCode != tt.wantStatus || aerr.ProblemType != tt.wantType {
				t.Fatalf("order: got %v, want %d %s", err, tt.wantStatus, tt.wantType)
			}
			if want := map[bool]string{false: "1", true: "2"}[tt.fault.RetryAfter > time.Second]; aerr.Header.Get("Retry-After") != want {
				t.Errorf("Retry-After %q, want %q", aerr.Header.Get("Retry-After"), want)
			}

			// With them, it gets past the fault.
			c.RetryBackoff = nil
			if err := e.s.SetFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			if _, err := c.AuthorizeOrder(ctx, acme.DomainIDs("limited.test")); err != nil {
				t.Fatalf("order with retries: %v", err)
			}
		})
	}
}

// TestDelayFault: a delayed validation keeps its challenge processing,
// and ends when done; Close cuts a long one short.
func TestDelayFault(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	c := e.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), flowTimeout)
	defer cancel()
	if err := e.s.SetFault(acmestub.Fault{Delay: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := e.authorize(t, c, []string{"slow.test"}, "http-01", ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("validated after %v, want the delay of 500ms at least", d)
	}

	if err := e.s.SetFault(acmestub.Fault{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs("stuck.test"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	chal := challengeOf(a, "http-01")
	e.answer(t, c, chal, "stuck.test", "")
	got, err := c.Accept(ctx, chal)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != acme.StatusProcessing {
		t.Errorf("challenge %s, want processing", got.Status)
	}
	closed := make(chan struct{})
	go func() { e.s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(flowTimeout):
		t.Fatal("Close did not cut the delay short")
	}
	if _, err := e.s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventInvalid, Name: "stuck.test", ProblemType: acmestub.ProblemServerInternal}); err != nil {
		t.Error(err)
	}
}

// TestSetFaultRefuses faults that do nothing or contradict themselves.
func TestSetFaultRefuses(t *testing.T) {
	s, err := acmestub.New(acmestub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, f := range []acmestub.Fault{
		{},
		{BadNonce: -1},
		{Delay: -time.Second},
		{Problem: &acmestub.Problem{Type: acmestub.ProblemDNS}},
		{FailValidations: 1, Problem: &acmestub.Problem{Type: "dns"}},
		{RetryAfter: time.Second},
	} {
		if err := s.SetFault(f); !errors.Is(err, acmestub.ErrBadFault) {
			t.Errorf("SetFault(%+v): got %v, want ErrBadFault", f, err)
		}
	}
	if err := s.SetFault(acmestub.Fault{BadNonce: 1}); err != nil {
		t.Fatal(err)
	}
	s.ClearFault()
	if left := s.FaultLeft(); left != (acmestub.Fault{}) {
		t.Errorf("after ClearFault: %+v left", left)
	}
}
