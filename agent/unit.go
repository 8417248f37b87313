package agent

import (
	"encoding/json"

	"golang.org/x/crypto/ssh"

	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// StartServices starts the configured services in dependency order and
// returns at once; the supervisor keeps them running as their restart
// policies say.
func (a *Agent) StartServices() {
	if a.sup != nil {
		a.sup.startAll()
	}
}

// handleUnit answers an agentproto.ChanUnit channel: one request in the
// open payload, one UnitStatus back.
func (a *Agent) handleUnit(nc ssh.NewChannel) {
	if a.sup == nil {
		nc.Reject(ssh.Prohibited, agentproto.NoServices)
		return
	}
	var req agentproto.UnitRequest
	if err := json.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.Prohibited, "bad unit request: "+err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	st := a.sup.do(req)
	json.NewEncoder(ch).Encode(st)
	ch.CloseWrite()
	ch.Close()
}
