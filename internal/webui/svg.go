package webui

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/shakedown-dev/shakedown/internal/record"
)

// Topology geometry, in pixels.
const (
	gutter  = 190 // left of the peers: the networks' labels
	colW    = 150 // a peer's column
	boxW    = 124
	boxH    = 46
	top     = 16
	firstNY = top + boxH + 56 // the first network's line
	rowH    = 64              // between networks
)

// Colours of machine and link states.
var stateFill = map[string]string{
	record.Up: "#e6f4ea", record.Crashed: "#fde8e8", record.Stopped: "#eef0f3",
	record.Declared: "#f6f7f9", record.Booting: "#fef3c7",
}

var linkStroke = map[string]string{
	record.LinkUp: "#16794c", record.LinkDown: "#9ca3af", record.LinkBlocked: "#b42318",
	record.LinkImpaired: "#a15c07", record.LinkPartitioned: "#b42318",
}

// Topology draws the testbed as SVG: each machine and named host in a
// column, each network a line below them, and a link from each peer down
// to each network it is on, coloured and labelled by its state.
func Topology(v *record.View) string {
	type peer struct {
		name, state string
		host        bool
	}
	var peers []peer
	for _, m := range v.Machines {
		peers = append(peers, peer{name: m.Name, state: m.State})
	}
	for _, n := range v.Networks {
		for _, l := range n.Links {
			if l.Host && !slices.ContainsFunc(peers, func(p peer) bool { return p.name == l.Peer }) {
				peers = append(peers, peer{name: l.Peer, state: "host", host: true})
			}
		}
	}
	col := func(name string) int {
		return slices.IndexFunc(peers, func(p peer) bool { return p.name == name })
	}
	width := gutter + max(len(peers), 1)*colW + 10
	height := firstNY + (len(v.Networks)-1)*rowH + 30
	if len(v.Networks) == 0 {
		height = top + boxH + 20
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, sans-serif" font-size="12">`, width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`, width, height)
	for i, n := range v.Networks {
		y := firstNY + i*rowH
		label := n.Name
		if n.Number > 0 {
			label += fmt.Sprintf(" · 192.168.%d.0/24", n.Number)
		}
		fmt.Fprintf(&b, `<line x1="10" y1="%d" x2="%d" y2="%d" stroke="#175cd3" stroke-width="4" stroke-linecap="round"/>`, y, width-10, y)
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="600">%s</text>`, y-8, esc(label))
		sub := fmt.Sprintf("%d frames, %d dropped", n.Frames, n.Drops)
		if len(n.Groups) > 0 {
			sub += fmt.Sprintf(" · partitioned in %d", len(n.Groups))
		}
		fmt.Fprintf(&b, `<text x="10" y="%d" fill="#6b7280" font-size="11">%s</text>`, y+16, esc(sub))
		for _, l := range n.Links {
			c := col(l.Peer)
			if c < 0 {
				continue
			}
			x := gutter + c*colW + boxW/2
			stroke := linkStroke[l.State]
			dash := ""
			if l.State != record.LinkUp && l.State != record.LinkImpaired {
				dash = ` stroke-dasharray="5 4"`
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s><title>%s</title></line>`,
				x, top+boxH, x, y, stroke, dash, esc(l.Peer+" on "+n.Name+": "+l.State+" "+l.Detail))
			fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="%s"/>`, x, y, stroke)
			text := l.Addr
			if l.State != record.LinkUp {
				text = strings.TrimSpace(l.State + " " + text)
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s" font-size="11">%s</text>`, x+6, y-6, stroke, esc(text))
		}
	}
	for i, p := range peers {
		x := gutter + i*colW
		fill := stateFill[p.state]
		if fill == "" {
			fill = "#fef3c7" // building its image
		}
		rx := 4
		if p.host {
			fill, rx = "#eef4ff", 16
		}
		fmt.Fprintf(&b, `<g class="peer"><rect x="%d" y="%d" width="%d" height="%d" rx="%d" fill="%s" stroke="#9ca3af"/>`, x, top, boxW, boxH, rx, fill)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="600">%s</text>`, x+boxW/2, top+19, esc(p.name))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#6b7280" font-size="11">%s</text></g>`, x+boxW/2, top+35, esc(short(p.state, 22)))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// short cuts s to n runes, with an ellipsis.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
