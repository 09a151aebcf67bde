//go:build linux

package mcast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Conn is a multicast UDP socket. It implements net.PacketConn, BatchWriter
// and BatchReader. Its methods are safe for concurrent use; batch reads (and
// batch writes) are serialized among themselves.
type Conn struct {
	uc       *net.UDPConn
	rc       syscall.RawConn
	ifi      *net.Interface
	group    netip.AddrPort
	source   netip.Addr // receivers: SSM source (zero = ASM); senders: bound address
	v6       bool
	receiver bool
	log      *slog.Logger

	rcvbuf, sndbuf int
	gsoMaxSeg      int // largest segment the interface MTU allows with GSO
	gso, gro       atomic.Bool
	groEver        bool // GRO was enabled at open: ReadFrom must split
	left           atomic.Bool

	wmu sync.Mutex
	w   writer
	rmu sync.Mutex
	r   reader

	fromMu sync.Mutex
	from   fromState
}

var (
	_ net.PacketConn = (*Conn)(nil)
	_ BatchWriter    = (*Conn)(nil)
	_ BatchReader    = (*Conn)(nil)
)

// ListenSender opens a socket that sends to cfg.Group from cfg.Source (or
// the interface's first address of the group's family) on an ephemeral port.
// The multicast interface is always set to cfg.Interface, the TTL or hop
// limit to cfg.TTL, multicast loopback is on (so receivers on the same host,
// e.g. on lo, get the packets), the send buffer is enlarged and GSO is probed.
func ListenSender(cfg Config) (*Conn, error) {
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("mcast: Config.Interface %q: %w", cfg.Interface, err)
	}
	v6 := cfg.Group.Addr().Unmap().Is6()
	local := cfg.Source.Unmap()
	if !local.IsValid() {
		if local, err = interfaceAddr(ifi, v6); err != nil {
			return nil, err
		}
	}
	c, err := listen(&cfg, ifi, netip.AddrPortFrom(local, 0), false)
	if err != nil {
		return nil, err
	}
	c.source = local
	c.setSendBuffer(cfg.sendBuffer())
	c.rcvbuf = c.readBuffer(unix.SO_RCVBUF)
	c.log.Debug("mcast: sender open",
		"group", c.group, "interface", ifi.Name, "local", c.uc.LocalAddr().String(),
		"ttl", cfg.ttl(), "sndbuf", c.sndbuf, "gso", c.gso.Load())
	return c, nil
}

// ListenReceiver opens a socket bound to cfg.Group's address and port (with
// SO_REUSEADDR, so several receivers on one host each get every packet),
// joins (cfg.Source, cfg.Group) — or (*, cfg.Group) without a source — on
// cfg.Interface, enlarges the receive buffer and enables GRO.
//
// The socket deliberately has no SO_REUSEPORT: for IPv4 multicast that
// arrives from a device (not looped back on lo), Linux's early
// demultiplexing finds the one socket a datagram matches and then lets that
// socket's SO_REUSEPORT group pick a member by a hash of the flow — any
// socket bound to the same address and port, whatever it joined.
// SO_REUSEADDR alone still lets several sockets bind one group and port, and
// each gets its own copy.
func ListenReceiver(cfg Config) (*Conn, error) {
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("mcast: Config.Interface %q: %w", cfg.Interface, err)
	}
	c, err := listen(&cfg, ifi, netip.AddrPortFrom(cfg.Group.Addr().Unmap(), cfg.Group.Port()), true)
	if err != nil {
		return nil, err
	}
	c.source = cfg.Source.Unmap()
	// Buffer and GRO first, so that the first packets after the join find
	// the socket ready.
	c.setRecvBuffer(cfg.recvBuffer())
	c.sndbuf = c.readBuffer(unix.SO_SNDBUF)
	if !cfg.DisableGRO {
		if err := c.control(func(fd int) error {
			return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
		}); err != nil {
			c.log.Warn("mcast: UDP_GRO unavailable, receiving datagrams one by one", "err", err)
		} else {
			c.gro.Store(true)
			c.groEver = true
		}
	}
	if err := c.join(); err != nil {
		c.uc.Close()
		return nil, err
	}
	src := "any"
	if c.source.IsValid() {
		src = c.source.String()
	}
	c.log.Debug("mcast: receiver joined",
		"group", c.group, "source", src, "interface", ifi.Name,
		"rcvbuf", c.rcvbuf, "rcvbuf_requested", cfg.recvBuffer(), "gro", c.gro.Load())
	return c, nil
}

// listen creates the socket bound to laddr with the multicast interface, TTL
// and loopback set; receivers also get SO_REUSEADDR.
func listen(cfg *Config, ifi *net.Interface, laddr netip.AddrPort, receiver bool) (*Conn, error) {
	log := cfg.logger()
	network := "udp4"
	if laddr.Addr().Is6() {
		network = "udp6"
	}
	var (
		pc         net.PacketConn
		bindDevErr error
		err        error
	)
	if receiver {
		pc, bindDevErr, err = bindReceiver(ifi, laddr)
	} else {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { bindDevErr = bindToDevice(int(fd), ifi) })
		}}
		pc, err = lc.ListenPacket(context.Background(), network, laddr.String())
	}
	if err != nil {
		return nil, fmt.Errorf("mcast: bind %s on %s: %w", laddr, ifi.Name, err)
	}
	uc := pc.(*net.UDPConn)
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("mcast: %w", err)
	}
	c := &Conn{
		uc:       uc,
		rc:       rc,
		ifi:      ifi,
		group:    netip.AddrPortFrom(cfg.Group.Addr().Unmap(), cfg.Group.Port()),
		v6:       network == "udp6",
		receiver: receiver,
		log:      log,
	}
	c.w.fn = c.w.do
	c.r.fn = c.r.do
	if bindDevErr != nil {
		log.Warn("mcast: SO_BINDTODEVICE refused; relying on the multicast interface option", "interface", ifi.Name, "err", bindDevErr)
	}
	if err := c.setMulticastOptions(cfg.ttl(), laddr.Addr()); err != nil {
		uc.Close()
		return nil, err
	}
	hdr := 20 + 8
	if c.v6 {
		hdr = 40 + 8
	}
	c.gsoMaxSeg = ifi.MTU - hdr
	if c.gsoMaxSeg <= 0 || c.gsoMaxSeg > MaxGSOBytes {
		c.gsoMaxSeg = MaxGSOBytes
	}
	if !cfg.DisableGSO {
		// The getsockopt succeeds exactly on kernels that accept UDP_SEGMENT.
		if err := c.control(func(fd int) error {
			_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
			return err
		}); err != nil {
			log.Info("mcast: UDP GSO unavailable, sending datagrams one by one", "err", err)
		} else {
			c.gso.Store(true)
		}
	}
	return c, nil
}

// bindToDevice binds the socket to ifi: a second fence next to the multicast
// interface option, so that nothing the socket sends can leave through
// another interface. Unprivileged processes may be refused on old kernels;
// the interface option still holds then.
func bindToDevice(fd int, ifi *net.Interface) error {
	return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
}

// bindReceiver opens a UDP socket bound to the group address itself. It is
// written with raw system calls because package net, given a multicast
// address to listen on, binds the wildcard address instead: such a socket
// matches every group at its port and counts only on IP_MULTICAST_ALL=0 to
// filter. Bound to the group, the kernel matches the destination before
// anything else. IP_MULTICAST_ALL=0 is set before the bind as well, so no
// datagram of a group another socket joined is queued in between.
func bindReceiver(ifi *net.Interface, laddr netip.AddrPort) (pc net.PacketConn, bindDevErr, err error) {
	family := unix.AF_INET6
	var sa unix.Sockaddr
	if laddr.Addr().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(laddr.Port()), Addr: laddr.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(laddr.Port()), Addr: laddr.Addr().As16(), ZoneId: uint32(ifi.Index)}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_UDP)
	if err != nil {
		return nil, nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "mcast-receiver")
	defer f.Close() // net.FilePacketConn works on a duplicate
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return nil, nil, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
		// Refused only by kernels before 4.20; binding to the group still
		// keeps other groups out.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
	}
	bindDevErr = bindToDevice(fd, ifi)
	if err := unix.Bind(fd, sa); err != nil {
		return nil, nil, err
	}
	pc, err = net.FilePacketConn(f)
	if err != nil {
		return nil, nil, err
	}
	return pc, bindDevErr, nil
}

// setMulticastOptions sets the outgoing multicast interface, TTL/hop limit,
// loopback and IP_MULTICAST_ALL=0 (deliver only groups this socket joined).
func (c *Conn) setMulticastOptions(ttl int, local netip.Addr) error {
	return c.control(func(fd int) error {
		if c.v6 {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, c.ifi.Index); err != nil {
				return fmt.Errorf("mcast: IPV6_MULTICAST_IF %s: %w", c.ifi.Name, err)
			}
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, ttl); err != nil {
				return fmt.Errorf("mcast: IPV6_MULTICAST_HOPS %d: %w", ttl, err)
			}
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 1); err != nil {
				return fmt.Errorf("mcast: IPV6_MULTICAST_LOOP: %w", err)
			}
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0); err != nil {
				c.log.Debug("mcast: IPV6_MULTICAST_ALL not supported", "err", err)
			}
			return nil
		}
		// ip_mreqn with the interface index selects the device; the address
		// makes getsockopt(IP_MULTICAST_IF) report something checkable.
		mreq := &unix.IPMreqn{Ifindex: int32(c.ifi.Index)}
		if local.Is4() && !local.IsMulticast() {
			mreq.Address = local.As4()
		} else if a, err := interfaceAddr(c.ifi, false); err == nil {
			mreq.Address = a.As4()
		}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mreq); err != nil {
			return fmt.Errorf("mcast: IP_MULTICAST_IF %s: %w", c.ifi.Name, err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl); err != nil {
			return fmt.Errorf("mcast: IP_MULTICAST_TTL %d: %w", ttl, err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
			return fmt.Errorf("mcast: IP_MULTICAST_LOOP: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
			c.log.Debug("mcast: IP_MULTICAST_ALL not supported", "err", err)
		}
		return nil
	})
}

// join joins (S,G) or (*,G) on the interface.
func (c *Conn) join() error {
	grp := &net.UDPAddr{IP: c.group.Addr().AsSlice()}
	var err error
	if c.source.IsValid() {
		src := &net.UDPAddr{IP: c.source.AsSlice()}
		if c.v6 {
			err = ipv6.NewPacketConn(c.uc).JoinSourceSpecificGroup(c.ifi, grp, src)
		} else {
			err = ipv4.NewPacketConn(c.uc).JoinSourceSpecificGroup(c.ifi, grp, src)
		}
		if err != nil {
			return fmt.Errorf("mcast: join (%v, %v) on %s: %w", c.source, c.group.Addr(), c.ifi.Name, err)
		}
		return nil
	}
	if c.v6 {
		err = ipv6.NewPacketConn(c.uc).JoinGroup(c.ifi, grp)
	} else {
		err = ipv4.NewPacketConn(c.uc).JoinGroup(c.ifi, grp)
	}
	if err != nil {
		return fmt.Errorf("mcast: join (*, %v) on %s: %w", c.group.Addr(), c.ifi.Name, err)
	}
	return nil
}

func (c *Conn) leave() error {
	grp := &net.UDPAddr{IP: c.group.Addr().AsSlice()}
	var err error
	switch {
	case c.source.IsValid() && c.v6:
		err = ipv6.NewPacketConn(c.uc).LeaveSourceSpecificGroup(c.ifi, grp, &net.UDPAddr{IP: c.source.AsSlice()})
	case c.source.IsValid():
		err = ipv4.NewPacketConn(c.uc).LeaveSourceSpecificGroup(c.ifi, grp, &net.UDPAddr{IP: c.source.AsSlice()})
	case c.v6:
		err = ipv6.NewPacketConn(c.uc).LeaveGroup(c.ifi, grp)
	default:
		err = ipv4.NewPacketConn(c.uc).LeaveGroup(c.ifi, grp)
	}
	if err != nil {
		return fmt.Errorf("mcast: leave %v on %s: %w", c.group.Addr(), c.ifi.Name, err)
	}
	return nil
}

// setRecvBuffer requests n bytes of receive buffer, forcing past rmem_max
// when privileged, and records what the kernel granted.
func (c *Conn) setRecvBuffer(n int) {
	c.rcvbuf = c.setBuffer(unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, n, "rcvbuf")
}

func (c *Conn) setSendBuffer(n int) {
	c.sndbuf = c.setBuffer(unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, n, "sndbuf")
}

func (c *Conn) setBuffer(force, opt, n int, name string) int {
	eff := 0
	err := c.control(func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, n); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, n); err != nil {
				return err
			}
		}
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
		eff = v
		return err
	})
	if err != nil {
		c.log.Warn("mcast: setting socket buffer failed", "buffer", name, "requested", n, "err", err)
	}
	// The kernel doubles the request for its bookkeeping overhead and caps an
	// unprivileged request at 2 × [rw]mem_max.
	if eff < n {
		c.log.Warn("mcast: socket buffer smaller than requested (raise net.core.rmem_max/wmem_max or run with CAP_NET_ADMIN)",
			"buffer", name, "requested", n, "effective", eff)
	}
	return eff
}

// readBuffer returns the socket's current buffer size (0 if unreadable).
func (c *Conn) readBuffer(opt int) int {
	v := 0
	c.control(func(fd int) (err error) {
		v, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
		return err
	})
	return v
}

func (c *Conn) control(f func(fd int) error) error {
	var err error
	if cerr := c.rc.Control(func(fd uintptr) { err = f(int(fd)) }); cerr != nil {
		return cerr
	}
	return err
}

// interfaceAddr returns the first address of the family on ifi, preferring
// addresses that need no zone.
func interfaceAddr(ifi *net.Interface, v6 bool) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mcast: addresses of %s: %w", ifi.Name, err)
	}
	var linkLocal netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is6() != v6 {
			continue
		}
		if ip.IsLinkLocalUnicast() {
			if !linkLocal.IsValid() {
				linkLocal = ip.WithZone(ifi.Name)
			}
			continue
		}
		return ip, nil
	}
	if linkLocal.IsValid() {
		return linkLocal, nil
	}
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	return netip.Addr{}, fmt.Errorf("mcast: interface %s has no %s address to send from; set Config.Source", ifi.Name, fam)
}

// Close leaves the group (receivers) and closes the socket.
func (c *Conn) Close() error {
	var lerr error
	if c.receiver && c.left.CompareAndSwap(false, true) {
		lerr = c.leave()
	}
	if err := c.uc.Close(); err != nil {
		return err
	}
	return lerr
}

// RecvBufferSize returns the effective receive buffer size as getsockopt
// SO_RCVBUF reported it at open (the kernel counts its overhead, so it is
// about twice the request). Senders keep the system default.
func (c *Conn) RecvBufferSize() int { return c.rcvbuf }

// SendBufferSize returns the effective send buffer size read back at open.
// Receivers keep the system default.
func (c *Conn) SendBufferSize() int { return c.sndbuf }

// GSO reports whether WriteBatch currently builds UDP GSO super-packets.
func (c *Conn) GSO() bool { return c.gso.Load() }

// GRO reports whether the socket currently has UDP_GRO enabled, so that
// ReadBatch may return coalesced messages (Message.SegSize > 0).
func (c *Conn) GRO() bool { return c.gro.Load() }

// MaxSegments returns the most packets WriteBatch puts into one GSO
// super-packet; a super-packet also never exceeds MaxGSOBytes.
func (c *Conn) MaxSegments() int { return MaxGSOSegments }

// Group returns the multicast group and port of the conn.
func (c *Conn) Group() netip.AddrPort { return c.group }

// Source returns the SSM source a receiver joined (zero for any-source) or
// the address a sender is bound to.
func (c *Conn) Source() netip.Addr { return c.source }

// Interface returns the interface the conn sends and joins on.
func (c *Conn) Interface() *net.Interface { return c.ifi }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.uc.LocalAddr() }

// SetDeadline sets the read and write deadlines (see net.PacketConn).
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// SetReadDeadline sets the deadline for ReadFrom and ReadBatch.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for WriteTo and WriteBatch.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// disableGSO turns GSO off after the kernel refused a super-packet.
func (c *Conn) disableGSO(err error) {
	if c.gso.CompareAndSwap(true, false) {
		c.log.Warn("mcast: kernel refused a UDP GSO super-packet; GSO disabled for this socket", "group", c.group, "err", err)
	}
}

// disableGRO turns UDP_GRO off on the socket.
func (c *Conn) disableGRO(reason string) {
	if !c.gro.CompareAndSwap(true, false) {
		return
	}
	err := c.control(func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 0)
	})
	c.log.Warn("mcast: UDP GRO disabled for this socket", "group", c.group, "reason", reason, "err", err)
}

// checkDst refuses anything but a multicast destination of the conn's
// family: unicast traffic would follow the routing table, not the interface.
func (c *Conn) checkDst(dst netip.AddrPort) (netip.AddrPort, error) {
	a := dst.Addr().Unmap()
	if !a.IsMulticast() {
		return dst, fmt.Errorf("mcast: destination %v is not a multicast address", dst)
	}
	if a.Is6() != c.v6 {
		return dst, fmt.Errorf("mcast: destination %v is not of the socket's address family", dst)
	}
	if dst.Port() == 0 {
		return dst, fmt.Errorf("mcast: destination %v has port 0", dst)
	}
	return netip.AddrPortFrom(a, dst.Port()), nil
}

// WriteTo sends one datagram to addr, which must be a multicast *net.UDPAddr.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.uc.LocalAddr(), Addr: addr, Err: errors.New("mcast: destination is not a *net.UDPAddr")}
	}
	dst, err := c.checkDst(ua.AddrPort())
	if err != nil {
		return 0, err
	}
	return c.uc.WriteToUDPAddrPort(p, dst)
}

// opError wraps a socket error the way package net does, so that
// errors.Is(err, os.ErrDeadlineExceeded) and net.Error.Timeout work.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.uc.LocalAddr(), Err: err}
}
