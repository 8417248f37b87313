package netstack

import (
	"fmt"
	"net"
	"strconv"
)

// Address is a network and address as Go's net package writes them
// ("tcp6", "web:80"), taken apart.
type Address struct {
	// Transport is "tcp" or "udp".
	Transport string
	// V6 is set for "tcp6" and "udp6".
	V6 bool
	// Host is what came before the port: an IP, a name, or "".
	Host string
	Port uint16
}

// ParseAddress parses network ("tcp", "tcp4", "tcp6", "udp", "udp4",
// "udp6") and addr ("host:port").
func ParseAddress(network, addr string) (Address, error) {
	var a Address
	switch network {
	case "tcp", "tcp4", "udp", "udp4":
		a.Transport = network[:3]
	case "tcp6", "udp6":
		a.Transport, a.V6 = network[:3], true
	default:
		return a, fmt.Errorf("network %q: want tcp, tcp4, tcp6, udp, udp4 or udp6", network)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return a, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return a, fmt.Errorf("port %q: want 0 to 65535", portStr)
	}
	a.Host, a.Port = host, uint16(port)
	return a, nil
}
