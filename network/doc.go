// Package network owns shakedown's virtual networks: one in-process layer-2
// switch per network, with learning, flooding, 802.1Q passthrough, per-port
// and per-pair impairments, partitions and pcap capture.
//
// QEMU NICs attach through a socketpair whose far end QEMU gets as a file
// descriptor (-netdev stream, see Port); Go code attaches in process
// (HostPort). The switch knows nothing of machines, addresses or QEMU's
// command line beyond that one -netdev argument: it is layer 5 of
// DESIGN.md and imports nothing of shakedown's.
//
// A Switch never blocks on one port for the sake of another: each port has
// a bounded egress queue and a frame that does not fit is dropped and
// counted, as a real switch does. Every drop is counted per port by reason
// (see Counters), so a test can tell a lost frame from a bug.
package network
