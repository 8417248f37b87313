package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// ErrNoServices says the agent supervises no services: the machine has
// none declared, or its agent runs under another init (systemd), which
// then owns the units.
var ErrNoServices = errors.New("the agent supervises no services")

// ErrUnknownUnit says the machine has no unit of that name: neither its
// agent nor its systemd knows it.
var ErrUnknownUnit = errors.New("unknown unit")

// ErrUnitFailed says a unit failed while it was waited for (UnitActive)
// or being started (Systemctl's start and restart): it reached the failed
// state, or ended inactive with no start pending. The error's text has the
// unit's result and last output lines.
var ErrUnitFailed = errors.New("unit failed")

// unitError is what the agent or systemd said about a unit, for people,
// with the sentinels for callers to branch on.
type unitError struct {
	msg   string
	kinds []error
}

func (e *unitError) Error() string   { return e.msg }
func (e *unitError) Unwrap() []error { return e.kinds }

// Unit asks the agent about one supervised service, or has it start, stop
// or restart it (agentproto.UnitStart, ...), and returns the unit's status
// after that. Stop and restart return once the old process is gone; start
// returns at once, with the unit usually activating. A unit the agent does
// not know is an error matching ErrUnknownUnit that lists the units it
// knows; an agent without services answers ErrNoServices.
func (c *Client) Unit(ctx context.Context, action, name string) (agentproto.UnitStatus, error) {
	payload, err := json.Marshal(agentproto.UnitRequest{Action: action, Name: name})
	if err != nil {
		return agentproto.UnitStatus{}, err
	}
	type result struct {
		st  agentproto.UnitStatus
		err error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		r.st, r.err = c.unit(payload)
		res <- r
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return r.st, fmt.Errorf("unit %s %s: %w", action, name, r.err)
		}
		return r.st, nil
	case <-ctx.Done():
		return agentproto.UnitStatus{}, fmt.Errorf("unit %s %s: %w", action, name, ctx.Err())
	}
}

func (c *Client) unit(payload []byte) (agentproto.UnitStatus, error) {
	var st agentproto.UnitStatus
	ch, reqs, err := c.ssh.OpenChannel(agentproto.ChanUnit, payload)
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) && (oce.Reason == ssh.UnknownChannelType || oce.Reason == ssh.Prohibited && oce.Message == agentproto.NoServices) {
			return st, ErrNoServices
		}
		return st, err
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	ch.CloseWrite()
	b, err := io.ReadAll(ch)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("bad answer %q: %w", b, err)
	}
	switch {
	case st.Code == agentproto.CodeUnknownUnit:
		return st, &unitError{msg: st.Error, kinds: []error{ErrUnknownUnit}}
	case st.Error != "":
		return st, errors.New(st.Error)
	}
	return st, nil
}
