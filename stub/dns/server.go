package dnsstub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// Timeouts of the transports.
const (
	// TCPIdleTimeout closes a TCP connection that sent no query for this
	// long, as RFC 7766 6.2.3 asks of servers; clients reconnect. It is
	// long beside a test's queries, which come in bursts, so that a
	// client reusing its connection is not cut off mid-test.
	TCPIdleTimeout = 30 * time.Second
	// ednsSize is the UDP payload size the server advertises in EDNS
	// answers: the size that avoids IP fragmentation (DNS flag day 2020).
	ednsSize = 1232
)

// Config configures a Server. The zero value is a server with no zones,
// no per-query log lines, and a query log of DefaultLogLimit queries.
type Config struct {
	// Logf, if not nil, gets a line per query (Query.String), e.g. t.Logf.
	// With t.Logf, Close the server before the test ends (t.Cleanup):
	// testing panics on a log line after.
	Logf func(format string, args ...any)
	// LogLimit is how many queries the log keeps, the oldest dropped
	// first; 0 means DefaultLogLimit.
	LogLimit int
	// Updates says who may change zones with DNS UPDATE (RFC 2136); the
	// zero value refuses every update.
	Updates UpdatePolicy
}

// Server is a stand-in authoritative DNS server. Its zero value is ready
// to use, as is New's; it is safe for concurrent use, and its zones and
// faults change while it serves. It serves UDP and TCP from any number of
// Serve calls (Start serves on loopback); Close stops them all. It also
// implements dns.Handler, for a dns.Server of the test's own.
//
// Whoever serves with it must call Close, which stops every goroutine it
// started; closing the connections given to Serve stops only that Serve.
type Server struct {
	cfg Config

	// state is what queries answer from, replaced whole by updates
	// (copy-on-write) so that a query reads it without a lock.
	state    atomic.Pointer[state]
	updateMu sync.Mutex // serialises updates

	faultMu sync.Mutex
	faults  map[string]*Fault // by canonical name

	log eventlog.Log[Query]

	mu      sync.Mutex
	closed  bool
	done    chan struct{} // closed by Close: cuts Delay faults short
	closers map[io.Closer]bool
	wg      sync.WaitGroup // every goroutine of the server, counted under mu
	addr    string         // Start's address
}

// New returns a server configured by cfg, with no zones, not serving yet.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// Start serves UDP and TCP on one port of addr ("host:port"; "" means
// "127.0.0.1:0", a free loopback port) in the background, until Close:
// the net/http/httptest way. Addr returns the address.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	pc, ln, err := listen(addr)
	if err != nil {
		return fmt.Errorf("start dns stub on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		ln.Close()
		return fmt.Errorf("start dns stub on %s: %w", addr, ErrServerClosed)
	}
	if s.addr == "" {
		s.addr = pc.LocalAddr().String()
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if err := s.Serve(pc, ln); err != nil && !errors.Is(err, ErrServerClosed) {
			s.logf("dns stub: %v", err)
		}
	}()
	return nil
}

// listenAttempts bounds the tries for a port free for both UDP and TCP,
// when the port is picked.
const listenAttempts = 20

// listen opens UDP and TCP on one port of addr.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for range listenAttempts {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
		// The free UDP port is some TCP listener's: pick another.
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP after %d tries", listenAttempts)
}

// Addr returns the address Start serves on, "127.0.0.1:PORT"; "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve answers queries from pc (UDP) and ln (TCP), either of which may be
// nil, until Close, or until either fails or is closed; it closes both
// before it returns. After Close it returns ErrServerClosed. Serve may be
// called for several pairs at once: a server on loopback and on a
// testbed's network, say.
func (s *Server) Serve(pc net.PacketConn, ln net.Listener) error {
	if pc == nil && ln == nil {
		return errors.New("serve dns: no PacketConn and no Listener: give one, or both")
	}
	var closers []io.Closer
	if pc != nil {
		closers = append(closers, pc)
	}
	if ln != nil {
		closers = append(closers, ln)
	}
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	errc := make(chan error, 2)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		closeAll()
		return ErrServerClosed
	}
	if s.closers == nil {
		s.closers = map[io.Closer]bool{}
	}
	for _, c := range closers {
		s.closers[c] = true
	}
	if pc != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); errc <- s.serveUDP(pc) }()
	}
	if ln != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); errc <- s.serveTCP(ln) }()
	}
	s.mu.Unlock()

	err := <-errc // the first to end ends the other
	closeAll()
	if len(closers) == 2 {
		<-errc
	}
	s.mu.Lock()
	for _, c := range closers {
		delete(s.closers, c)
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	where := ""
	if pc != nil {
		where = pc.LocalAddr().String()
	} else {
		where = ln.Addr().String()
	}
	return fmt.Errorf("serve dns on %s: %w", where, err)
}

// Close stops every Serve, closing their connections, cuts Delay faults
// short, and waits for every goroutine of the server to end. The zones,
// faults and log stay readable. Close may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.done == nil {
			s.done = make(chan struct{})
		}
		close(s.done)
		for c := range s.closers {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// doneChan is closed by Close.
func (s *Server) doneChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// goCounted runs f in a goroutine that Close waits for, with c (if not
// nil) closed by Close; it returns false, running nothing, once the server
// is closed.
func (s *Server) goCounted(c io.Closer, f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if c != nil {
		if s.closers == nil {
			s.closers = map[io.Closer]bool{}
		}
		s.closers[c] = true
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
		if c != nil {
			s.mu.Lock()
			delete(s.closers, c)
			s.mu.Unlock()
		}
	}()
	return true
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// serveUDP answers each datagram in a goroutine of its own, so that a
// Delay fault holds back only its own answers.
func (s *Server) serveUDP(pc net.PacketConn) error {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		pkt := append([]byte(nil), buf[:n]...)
		if !s.goCounted(nil, func() {
			if out := s.reply(pkt, addr, "udp"); out != nil {
				pc.WriteTo(out, addr) // a client gone is the client's problem
			}
		}) {
			return ErrServerClosed
		}
	}
}

// serveTCP serves each connection in a goroutine of its own.
func (s *Server) serveTCP(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if !s.goCounted(c, func() { s.serveConn(c) }) {
			c.Close()
			return ErrServerClosed
		}
	}
}

// serveConn answers the queries of one TCP connection, each as it comes
// (RFC 7766 pipelining: a delayed answer holds back no other), until the
// client closes it or goes idle for TCPIdleTimeout.
func (s *Server) serveConn(c net.Conn) {
	var (
		writeMu  sync.Mutex
		inflight sync.WaitGroup
	)
	defer c.Close()
	defer inflight.Wait() // answers to queries read before the client's EOF still go out
	for {
		c.SetReadDeadline(time.Now().Add(TCPIdleTimeout))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		inflight.Add(1)
		if !s.goCounted(nil, func() {
			defer inflight.Done()
			out := s.reply(msg, c.RemoteAddr(), "tcp")
			if out == nil {
				return
			}
			writeMu.Lock()
			defer writeMu.Unlock()
			c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out))))
			c.Write(out)
		}) {
			inflight.Done()
			return
		}
	}
}

// reply answers the packed query pkt; nil means send nothing.
func (s *Server) reply(pkt []byte, client net.Addr, transport string) []byte {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if len(pkt) < 12 || pkt[2]&0x80 != 0 {
			return nil // no header to answer, or an answer itself
		}
		// FORMERR, as RFC 1035 4.1.1 asks, with the query's ID.
		resp := &dns.Msg{MsgHdr: dns.MsgHdr{Id: binary.BigEndian.Uint16(pkt), Response: true, Rcode: dns.RcodeFormatError}}
		s.record(Query{Time: time.Now(), Client: addrPort(client), Transport: transport, Rcode: dns.RcodeFormatError})
		out, _ := resp.Pack()
		return out
	}
	auth := s.verifyTSIG(pkt, req.IsTsig())
	resp := s.handle(req, client, transport, auth)
	if resp == nil {
		return nil
	}
	var out []byte
	var err error
	if auth.rr != nil {
		out, err = auth.sign(resp)
	} else {
		out, err = resp.Pack()
	}
	if err != nil {
		// Records the server holds always pack; say so if one did not.
		s.logf("dns stub: pack answer to %s: %v", client, err)
		fail := new(dns.Msg)
		fail.SetRcode(req, dns.RcodeServerFailure)
		out, _ = fail.Pack()
	}
	return out
}

// ServeDNS answers a query for a dns.Server of the caller's: the server
// is a dns.Handler. Faults, the log and truncation apply as in Serve.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	transport := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		transport = "tcp"
	}
	// A dns.Server verifies TSIG itself, given the keys (its TsigSecret),
	// and signs what WriteMsg sends: trust what it found.
	var auth tsigAuth
	if rr := req.IsTsig(); rr != nil {
		auth = tsigAuth{rr: rr, key: dns.CanonicalName(rr.Hdr.Name), err: dns.RcodeBadSig}
		if w.TsigStatus() == nil {
			auth.err = 0
		}
	}
	if resp := s.handle(req, w.RemoteAddr(), transport, auth); resp != nil {
		if rr := req.IsTsig(); rr != nil && w.TsigStatus() == nil {
			resp.SetTsig(rr.Hdr.Name, rr.Algorithm, TSIGFudge, time.Now().Unix())
		}
		w.WriteMsg(resp)
	}
}

// handle answers req, applying faults and logging it; nil means send
// nothing (a Drop fault, a message that is not a query, or Close during
// a Delay).
func (s *Server) handle(req *dns.Msg, client net.Addr, transport string, auth tsigAuth) *dns.Msg {
	if req.Response {
		return nil // answering answers makes loops
	}
	q := Query{Time: time.Now(), Client: addrPort(client), Transport: transport, Opcode: req.Opcode}
	if auth.rr != nil {
		q.Key = auth.key
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Compress = true
	resp.RecursionAvailable = false
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(ednsSize, false)
	}
	var fault *Fault
	switch {
	case auth.err != 0:
		// RFC 8945 5.2: NOTAUTH, the TSIG error in the TSIG record.
		resp.Rcode = dns.RcodeNotAuth
		q.Note = tsigErrorName(auth.err)
		if len(req.Question) == 1 {
			q.Name, q.Type = req.Question[0].Name, req.Question[0].Qtype
		}
	case req.Opcode != dns.OpcodeQuery && req.Opcode != dns.OpcodeUpdate:
		resp.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		resp.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3
	default:
		question := req.Question[0]
		q.Name, q.Type = question.Name, question.Qtype
		name := dns.CanonicalName(question.Name)
		fault = s.takeFault(name, question.Qtype)
		switch {
		case fault != nil && fault.Drop:
		case fault != nil && fault.Rcode != 0:
			resp.Rcode = fault.Rcode
		case fault != nil && fault.Truncate && transport == "udp":
			resp.Truncated = true
		case req.Opcode == dns.OpcodeUpdate:
			key := ""
			if auth.rr != nil {
				key = auth.key
			}
			resp.Rcode, q.Changes, q.Note = s.applyUpdate(req, key)
		case question.Qclass != dns.ClassINET && question.Qclass != dns.ClassANY:
			resp.Rcode = dns.RcodeRefused // CHAOS and the like: not ours
		default:
			s.load().answer(resp, name, question.Qtype)
		}
	}
	q.Fault = fault
	if fault != nil && fault.Drop {
		q.Rcode = -1
		s.record(q)
		return nil
	}
	if transport == "udp" {
		fit(resp, udpLimit(opt))
	}
	q.Rcode, q.Answers, q.Truncated = resp.Rcode, len(resp.Answer), resp.Truncated
	s.record(q)
	if fault != nil && fault.Delay > 0 {
		t := time.NewTimer(fault.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.doneChan():
			return nil
		}
	}
	return resp
}

// udpLimit is the largest UDP answer the client takes: its EDNS size, or
// 512 bytes without EDNS (RFC 1035 4.2.1).
func udpLimit(opt *dns.OPT) int {
	if opt == nil {
		return dns.MinMsgSize
	}
	return max(dns.MinMsgSize, int(opt.UDPSize()))
}

// fit makes resp fit in limit bytes: without its additional records if
// that is enough (they are a courtesy: RFC 2181 9 says not to set TC for
// them), else with the TC bit and no records, so that the client asks
// again over TCP.
func fit(resp *dns.Msg, limit int) {
	if resp.Len() <= limit {
		return
	}
	opt := resp.IsEdns0()
	resp.Extra = nil
	if opt != nil {
		resp.Extra = []dns.RR{opt}
	}
	if resp.Len() <= limit {
		return
	}
	resp.Truncated = true
	resp.Answer, resp.Ns = nil, nil
}

// addrPort turns a client's address into a netip.AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return netip.AddrPortFrom(addrOf(a.IP), uint16(a.Port))
	case *net.TCPAddr:
		return netip.AddrPortFrom(addrOf(a.IP), uint16(a.Port))
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
