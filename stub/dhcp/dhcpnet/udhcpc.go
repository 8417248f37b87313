package dhcpnet

import "github.com/shakedown-dev/shakedown"

// UdhcpcEvents is the guest file the script of UdhcpcScript appends a line
// to at each of udhcpc's events, once the event is handled:
//
//	START END EVENT INTERFACE IP
//
// START and END are the guest's uptime in seconds (/proc/uptime, to the
// hundredth) when the script began and ended; EVENT is udhcpc's (deconfig,
// bound, renew, nak, leasefail); IP is the lease's address, empty for
// deconfig and leasefail. A test waits on it (grep ' bound ') and times
// with it: udhcpc runs deconfig right before its first DISCOVER, so from
// deconfig's END to bound's END is DISCOVER to a configured address.
const UdhcpcEvents = "/tmp/udhcpc.events"

// udhcpcScript applies a lease as a distribution's udhcpc script does,
// with busybox's ip alone: the initramfs has no ifconfig or route. A
// renewal of the same address leaves the address be (re-adding it would
// fail, and flushing it would cut the machine off for a moment); the
// options are applied again, as the server may have changed them.
const udhcpcScript = `#!/bin/sh
# udhcpc runs this at each event ($1), with the lease in its environment.
read start _ < /proc/uptime
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set dev "$interface" up
	;;
bound|renew)
	if [ "$1" = bound ]; then
		ip -4 addr flush dev "$interface"
		ip addr add "$ip/$mask" dev "$interface"
	fi
	if [ -n "$mtu" ]; then
		ip link set dev "$interface" mtu "$mtu"
	fi
	for r in $router; do
		ip route replace default via "$r" dev "$interface"
		break
	done
	if [ -n "$dns$domain$search" ]; then
		{
			if [ -n "$domain$search" ]; then
				echo "search $domain $search"
			fi
			for d in $dns; do
				echo "nameserver $d"
			done
		} > /etc/resolv.conf
	fi
	;;
esac
read end _ < /proc/uptime
echo "$start $end $1 $interface $ip" >> ` + UdhcpcEvents + `
exit 0
`

// UdhcpcScript is a File placing at guestPath a script for busybox's
// udhcpc (udhcpc -s guestPath) in an initramfs machine, which has none of
// its own: at bound it sets the lease's address with its prefix length,
// the MTU (option 26), a default route through the first router (option
// 3), and /etc/resolv.conf's nameservers (option 6) and search line (the
// domain, option 15, then the search list, option 119); deconfig removes
// the interface's IPv4 addresses. Each event is noted in UdhcpcEvents.
func UdhcpcScript(guestPath string) shakedown.File {
	return shakedown.File{Guest: guestPath, Data: []byte(udhcpcScript), Mode: 0o755}
}
