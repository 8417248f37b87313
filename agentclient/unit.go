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

// Unit asks the agent about one supervised service, or has it start, stop
// or restart it (agentproto.UnitStart, ...), and returns the unit's status
// after that. Stop and restart return once the old process is gone; start
// returns at once, with the unit usually activating. A unit the agent does
// not know is an error that lists the units it knows.
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
	if st.Error != "" {
		return st, errors.New(st.Error)
	}
	return st, nil
}
