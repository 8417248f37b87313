package record

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/network"
)

// ApplyFaults marks the links of a network that its faults touch: an
// impaired link (or one in an impaired pair) with what the impairment
// does, and, when the network is partitioned, every link with its group.
// Impaired wins over partitioned in State; Detail says both. A link down
// or blocked stays so. It returns the partition's groups.
func ApplyFaults(links []Link, fs network.FaultState) [][]string {
	for i := range links {
		l := &links[i]
		var impaired, detail []string
		if imp, ok := fs.Links[l.Peer]; ok {
			impaired = append(impaired, imp.String())
		}
		for _, p := range fs.Pairs {
			if p.From == l.Peer || p.To == l.Peer {
				impaired = append(impaired, fmt.Sprintf("%s→%s: %s", p.From, p.To, p.Impairment))
			}
		}
		detail = impaired
		state := ""
		if len(fs.Groups) > 0 {
			g := slices.IndexFunc(fs.Groups, func(g []string) bool { return slices.Contains(g, l.Peer) })
			if g < 0 {
				detail = append(detail, "in no partition group: reaches everyone")
			} else {
				detail = append(detail, fmt.Sprintf("partition group %d", g+1))
				state = LinkPartitioned
			}
		}
		if len(impaired) > 0 {
			state = LinkImpaired
		}
		if l.State == LinkUp && state != "" {
			l.State = state
		}
		l.Detail = strings.Join(detail, "; ")
	}
	return fs.Groups
}
