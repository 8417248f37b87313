//go:build linux

package agent

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shakedown-dev/shakedown/internal/addrplan"
	"github.com/shakedown-dev/shakedown/internal/agentproto"
)

// ParamNet lists a machine's NICs on the kernel command line (see
// agentproto.ParamNet).
const ParamNet = agentproto.ParamNet

// nicWait bounds the wait for the virtio-net driver to create the
// interfaces; it probes them asynchronously after its module loads.
const nicWait = 30 * time.Second

// NIC is one interface's automatic configuration.
type NIC struct {
	Name    string // eth0, eth1, ...
	Net     int    // network number, 1..255
	Host    int    // machine number, 1..254
	Address bool   // false: leave the interface unconfigured but up
}

// ParseNICs parses the value of ParamNet.
func ParseNICs(v string) ([]NIC, error) {
	if v == "" {
		return nil, nil
	}
	var nics []NIC
	for i, f := range strings.Split(v, ",") {
		nic := NIC{Name: fmt.Sprintf("eth%d", i), Address: true}
		if f == "-" {
			nic.Address = false
			nics = append(nics, nic)
			continue
		}
		a, b, ok := strings.Cut(f, ":")
		var err1, err2 error
		nic.Net, err1 = strconv.Atoi(a)
		nic.Host, err2 = strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || nic.Net < 1 || nic.Net > 255 || nic.Host < 1 || nic.Host > 254 {
			return nil, fmt.Errorf("%s: NIC %d: %q is not NET:HOST with NET 1-255 and HOST 1-254", ParamNet, i, f)
		}
		nics = append(nics, nic)
	}
	return nics, nil
}

// Addrs returns the NIC's addresses in the address plan (addrplan, shared
// with the host): 192.168.NET.HOST/24 and 2001:db8:NET::HOST/64.
func (n NIC) Addrs() []*net.IPNet {
	if !n.Address {
		return nil
	}
	return []*net.IPNet{
		{IP: addrplan.IPv4(n.Net, n.Host).AsSlice(), Mask: net.CIDRMask(addrplan.Bits4, 32)},
		{IP: addrplan.IPv6(n.Net, n.Host).AsSlice(), Mask: net.CIDRMask(addrplan.Bits6, 128)},
	}
}

// ConfigureNetwork brings up the NICs named on the command line with their
// addresses. There is no default route: only the declared networks exist.
func ConfigureNetwork() error {
	nics, err := ParseNICs(cmdlineParam(ParamNet))
	if err != nil || len(nics) == 0 {
		return err
	}
	var errs []error
	deadline := time.Now().Add(nicWait)
	for _, nic := range nics {
		link, err := waitLink(nic.Name, deadline)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := netlink.LinkSetUp(link); err != nil {
			errs = append(errs, fmt.Errorf("%s up: %w", nic.Name, err))
		}
		for _, a := range nic.Addrs() {
			// No duplicate address detection: the addressing scheme
			// rules out duplicates, and DAD would hold IPv6 back a second.
			addr := &netlink.Addr{IPNet: a, Flags: unix.IFA_F_NODAD}
			// EEXIST: a restarted agent service configured it before.
			if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
				errs = append(errs, fmt.Errorf("%s address %s: %w", nic.Name, a, err))
			}
		}
	}
	return errors.Join(errs...)
}

func waitLink(name string, deadline time.Time) (netlink.Link, error) {
	for {
		link, err := netlink.LinkByName(name)
		if err == nil {
			return link, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("interface %s did not appear within %v (is virtio_net loaded?): %w", name, nicWait, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
