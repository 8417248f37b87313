package network

import "sync/atomic"

// Counters are a port's (or, summed, a switch's) traffic figures since it
// was created. Rx is what the switch received from the port, Tx what it
// handed to the port's peer; a frame counted in Rx and dropped shows in
// Drops under its reason.
type Counters struct {
	// RxFrames and RxBytes count what the switch received from the port.
	RxFrames, RxBytes uint64
	// TxFrames and TxBytes count what reached the port's peer: written
	// to QEMU's socket, or returned by ReadFrame.
	TxFrames, TxBytes uint64
	// Drops are the frames this port lost, by reason: on the way in for
	// Malformed, Oversize, BadLength and Truncated, on either way for the
	// others.
	Drops Drops
	// Duplicated, Corrupted and Reordered count frames an impairment
	// duplicated, corrupted or held back to be overtaken.
	Duplicated, Corrupted, Reordered uint64
	// Disconnects counts the times the port's peer went away (QEMU exited
	// or closed its end); the port is removed then.
	Disconnects uint64
}

// Drops counts dropped frames by reason.
type Drops struct {
	// Malformed frames are shorter than an Ethernet header.
	Malformed uint64
	// Oversize frames are longer than the MTU admits.
	Oversize uint64
	// BadLength counts length prefixes that no frame can have; the stream
	// is out of step after one, so the port is closed.
	BadLength uint64
	// Truncated frames were cut short by the peer's disconnect.
	Truncated uint64
	// LinkDown frames were sent from or to a port whose link is down,
	// including those queued when it went down.
	LinkDown uint64
	// Partition frames were between ports in different partition groups.
	Partition uint64
	// QueueFull frames found the egress queue full: the receiving port's
	// peer is slower than its senders, or stopped.
	QueueFull uint64
	// Loss frames were dropped by a loss impairment.
	Loss uint64
	// RateLimit frames would have waited longer than the rate limit's
	// queue allows.
	RateLimit uint64
	// Closed frames were still queued when their port was removed.
	Closed uint64
}

// Total is the sum of all drops.
func (d Drops) Total() uint64 {
	return d.Malformed + d.Oversize + d.BadLength + d.Truncated + d.LinkDown +
		d.Partition + d.QueueFull + d.Loss + d.RateLimit + d.Closed
}

type dropReason int

const (
	dropMalformed dropReason = iota
	dropOversize
	dropBadLength
	dropTruncated
	dropLinkDown
	dropPartition
	dropQueueFull
	dropLoss
	dropRateLimit
	dropClosed
	numDropReasons
)

// portCounters are updated from every goroutine that forwards a frame.
type portCounters struct {
	rxFrames, rxBytes atomic.Uint64
	txFrames, txBytes atomic.Uint64
	drops             [numDropReasons]atomic.Uint64
	duplicated        atomic.Uint64
	corrupted         atomic.Uint64
	reordered         atomic.Uint64
	disconnects       atomic.Uint64
}

func (c *portCounters) drop(r dropReason) { c.drops[r].Add(1) }

func (c *portCounters) snapshot() Counters {
	d := func(r dropReason) uint64 { return c.drops[r].Load() }
	return Counters{
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(),
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(),
		Drops: Drops{
			Malformed: d(dropMalformed), Oversize: d(dropOversize),
			BadLength: d(dropBadLength), Truncated: d(dropTruncated),
			LinkDown: d(dropLinkDown), Partition: d(dropPartition),
			QueueFull: d(dropQueueFull), Loss: d(dropLoss),
			RateLimit: d(dropRateLimit), Closed: d(dropClosed),
		},
		Duplicated:  c.duplicated.Load(),
		Corrupted:   c.corrupted.Load(),
		Reordered:   c.reordered.Load(),
		Disconnects: c.disconnects.Load(),
	}
}

// add sums o into c.
func (c *Counters) add(o Counters) {
	c.RxFrames += o.RxFrames
	c.RxBytes += o.RxBytes
	c.TxFrames += o.TxFrames
	c.TxBytes += o.TxBytes
	c.Drops.Malformed += o.Drops.Malformed
	c.Drops.Oversize += o.Drops.Oversize
	c.Drops.BadLength += o.Drops.BadLength
	c.Drops.Truncated += o.Drops.Truncated
	c.Drops.LinkDown += o.Drops.LinkDown
	c.Drops.Partition += o.Drops.Partition
	c.Drops.QueueFull += o.Drops.QueueFull
	c.Drops.Loss += o.Drops.Loss
	c.Drops.RateLimit += o.Drops.RateLimit
	c.Drops.Closed += o.Drops.Closed
	c.Duplicated += o.Duplicated
	c.Corrupted += o.Corrupted
	c.Reordered += o.Reordered
	c.Disconnects += o.Disconnects
}
