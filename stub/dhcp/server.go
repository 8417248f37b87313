package dhcpstub

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/shakedown-dev/shakedown/internal/eventlog"
)

// Server is a stand-in DHCPv4 server. It is safe for concurrent use; its
// static leases, faults and outage change while it serves. It serves any
// number of Serve calls at once (Start serves on loopback), from one lease
// table; Close stops them all.
//
// Whoever serves with it must call Close, which stops every goroutine it
// started; closing the connection given to Serve stops only that Serve.
type Server struct {
	cfg    Config
	cfgErr error // what is wrong with the Config given to New

	stateMu  sync.Mutex
	statics  map[string]netip.Addr // by MAC (its String)
	leases   map[string]*lease     // by MAC: offered, bound, or lapsed
	declined map[netip.Addr]time.Time
	outage   bool
	fault    *Fault

	log eventlog.Log[Event]

	mu      sync.Mutex
	closed  bool
	done    chan struct{} // closed by Close: cuts Delay faults short
	closers map[net.PacketConn]bool
	wg      sync.WaitGroup // every goroutine of the server, counted under mu
	addr    string         // Start's address
}

// New returns a server configured by cfg, not serving yet. What is wrong
// with cfg (ErrBadConfig, and the static leases' errors) comes back from
// Start and Serve, and from AddStatic.
func New(cfg Config) *Server {
	s := &Server{done: make(chan struct{}), statics: map[string]netip.Addr{}, leases: map[string]*lease{},
		declined: map[netip.Addr]time.Time{}}
	s.cfg, s.cfgErr = cfg.resolve()
	if s.cfgErr != nil {
		return s
	}
	var errs []error
	for _, st := range cfg.Static {
		errs = append(errs, s.AddStatic(st.MAC, st.Addr))
	}
	if err := errors.Join(errs...); err != nil {
		s.cfgErr = fmt.Errorf("Config.Static: %w", err)
	}
	return s
}

// Check returns what is wrong with the Config given to New, nil if
// nothing: the error Start and Serve would return. Code that serves in a
// goroutine of its own checks first, so as not to lose it.
func (s *Server) Check() error { return s.cfgErr }

// Config returns the server's configuration with its defaults filled in:
// the pool and server identifier it picked, say.
func (s *Server) Config() Config { return s.cfg }

// Start serves on addr ("host:port"; "" means "127.0.0.1:0", a free
// loopback port) in the background, until Close: the net/http/httptest
// way. Addr returns the address. Clients on loopback need
// Config.ReplyToSender.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if s.cfgErr != nil {
		return fmt.Errorf("start dhcp stub on %s: %w", addr, s.cfgErr)
	}
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return fmt.Errorf("start dhcp stub on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		return fmt.Errorf("start dhcp stub on %s: %w", addr, ErrServerClosed)
	}
	if s.addr == "" {
		s.addr = pc.LocalAddr().String()
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if err := s.Serve(pc); err != nil && !errors.Is(err, ErrServerClosed) {
			s.logf("dhcp stub: %v", err)
		}
	}()
	return nil
}

// Addr returns the address Start serves on, "127.0.0.1:PORT"; "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// maxMessage is the largest DHCP message read: an Ethernet frame's worth,
// well above the 576 bytes every client takes (RFC 2131 2).
const maxMessage = 1500

// Serve answers DHCP messages from pc until Close, or until pc fails or
// is closed; it closes pc before it returns. After Close it returns
// ErrServerClosed; for a bad Config, its error (ErrBadConfig). Replies go
// where RFC 2131 4.1 sends them, unless Config.ReplyToSender: pc must be
// able to send to 255.255.255.255 then (a testbed host's can; a Linux
// socket needs SO_BROADCAST).
func (s *Server) Serve(pc net.PacketConn) error {
	if s.cfgErr != nil {
		pc.Close()
		return fmt.Errorf("serve dhcp on %s: %w", pc.LocalAddr(), s.cfgErr)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	}
	if s.closers == nil {
		s.closers = map[net.PacketConn]bool{}
	}
	s.closers[pc] = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	err := s.serve(pc)
	pc.Close()
	s.mu.Lock()
	delete(s.closers, pc)
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	return fmt.Errorf("serve dhcp on %s: %w", pc.LocalAddr(), err)
}

// serve reads and answers messages one at a time, so that the lease table
// changes in the order messages came; a Delay fault holds back its reply
// in a goroutine of its own, and no other.
func (s *Server) serve(pc net.PacketConn) error {
	buf := make([]byte, maxMessage)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest {
			// Not DHCP, or a reply (another server's, broadcast):
			// nothing to answer, but a test may want to know.
			s.record(Event{Time: time.Now(), From: addrPort(from), Note: "not a DHCP request"})
			continue
		}
		resp, to, delay := s.handle(req, addrPort(from))
		if resp == nil {
			continue
		}
		send := func() {
			if _, err := pc.WriteTo(resp.ToBytes(), net.UDPAddrFromAddrPort(to)); err != nil {
				s.logf("dhcp stub: send %s to %s: %v", resp.MessageType(), to, err)
			}
		}
		if delay <= 0 {
			send()
			continue
		}
		if !s.goCounted(func() {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
				send()
			case <-s.done:
			}
		}) {
			return ErrServerClosed
		}
	}
}

// Close stops every Serve, closing their connections, cuts Delay faults
// short (their replies are not sent), and waits for every goroutine of the
// server to end. The leases and the log stay readable. Close may be called
// more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		for pc := range s.closers {
			pc.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// goCounted runs f in a goroutine that Close waits for; it returns false,
// running nothing, once the server is closed.
func (s *Server) goCounted(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// addrPort turns a sender's address into a netip.AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(ua.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(ua.Port))
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
