package acmestub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	acmestub "github.com/shakedown-dev/shakedown/stub/acme"
)

// TestLog checks the events of one issuance, in order.
func TestLog(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	e.issue(t, e.client(t), []string{"log.test"}, "http-01")
	var got []string
	for _, ev := range e.s.Log() {
		got = append(got, ev.String())
	}
	serial := e.s.Issued()[0].SerialNumber.Text(16)
	want := []string{
		"account 1 created",
		"order 2 created for log.test (account 1)",
		"http-01 validation of log.test started (order 2)",
		"http-01 validation of log.test succeeded (order 2)",
		"certificate " + serial + " issued for log.test (order 2)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	e.s.ClearLog()
	if n := len(e.s.Log()); n != 0 {
		t.Errorf("after ClearLog: %d events, want 0", n)
	}
}

// TestWaitForTimeout: the error says what it waited for and what came.
func TestWaitForTimeout(t *testing.T) {
	e := newEnv(t, acmestub.Config{})
	e.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.s.WaitFor(ctx, acmestub.Match{Kind: acmestub.EventIssued, Name: "never.test"})
	if !errors.Is(err, acmestub.ErrNoEvent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want ErrNoEvent and DeadlineExceeded", err)
	}
	for _, w := range []string{`wait for an event "certificate issued" for never.test`, "1 event came, none matching; the last 1:", "account 1 created"} {
		if !strings.Contains(fmt.Sprint(err), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}

	s, err := acmestub.New(acmestub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.WaitFor(ctx, acmestub.Match{}); !strings.Contains(fmt.Sprint(err), "nothing happened at all") {
		t.Errorf("empty log: got %v", err)
	}
}

// TestLogLimit keeps the last LogLimit events.
func TestLogLimit(t *testing.T) {
	e := newEnv(t, acmestub.Config{LogLimit: 2})
	e.issue(t, e.client(t), []string{"limit.test"}, "dns-01")
	var got []acmestub.EventKind
	for _, ev := range e.s.Log() {
		got = append(got, ev.Kind)
	}
	if want := []acmestub.EventKind{acmestub.EventValid, acmestub.EventIssued}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
