package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// RelayConfig describes a multicast relay: it joins (Source, Group) on
// InInterface and sends every datagram it gets, possibly altered, to Group
// from Source on OutInterface. It is the runner's attacker in the integrity
// case; h3m's own endpoint ("h3m interop relay", and its deliberately broken
// sender) uses the same relay to corrupt its packets.
type RelayConfig struct {
	Group        netip.AddrPort
	Source       netip.Addr
	InInterface  string
	OutInterface string
	// Flip inverts the lowest bit of each datagram's last byte (the AEAD
	// tag in a protected packet, body data in an unprotected one).
	Flip bool
	// FlipMiddle inverts the lowest bit of the middle byte instead (the
	// integrity case's attacker, so that it never undoes a Flip).
	FlipMiddle bool
	// Observe, when set, is shown each datagram as it arrived, before it
	// is altered (the integrity case's key holder keeps in step with the
	// sender this way). It must not keep the slice.
	Observe func(pkt []byte)
}

// Relay forwards datagrams.
type Relay struct {
	cfg     RelayConfig
	in, out net.PacketConn
	// Forwarded counts datagrams sent on.
	Forwarded atomic.Int64
}

// NewRelay opens the relay's sockets (in the caller's network namespace;
// see Host.Do).
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.InInterface == "" || cfg.OutInterface == "" {
		return nil, errors.New("interop: relay: both interfaces are required")
	}
	if !cfg.Group.Addr().IsMulticast() || !cfg.Source.IsValid() || cfg.Source.Is4() != cfg.Group.Addr().Is4() {
		return nil, fmt.Errorf("interop: relay: group %v and source %v must be a multicast group and a source of its family", cfg.Group, cfg.Source)
	}
	ifIn, err := net.InterfaceByName(cfg.InInterface)
	if err != nil {
		return nil, fmt.Errorf("interop: relay: %w", err)
	}
	ifOut, err := net.InterfaceByName(cfg.OutInterface)
	if err != nil {
		return nil, fmt.Errorf("interop: relay: %w", err)
	}
	network := "udp4"
	if cfg.Group.Addr().Is6() {
		network = "udp6"
	}
	bindDev := func(dev string) func(string, string, syscall.RawConn) error {
		return func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				// SO_REUSEADDR only: with SO_REUSEPORT, Linux may hand
				// multicast that arrives from a device to another socket
				// of the port (see mcast.ListenReceiver).
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
					return
				}
				serr = unix.BindToDevice(int(fd), dev)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	r := &Relay{cfg: cfg}
	lcIn := net.ListenConfig{Control: bindDev(cfg.InInterface)}
	r.in, err = lcIn.ListenPacket(context.Background(), network, cfg.Group.String())
	if err != nil {
		return nil, fmt.Errorf("interop: relay: listen %v: %w", cfg.Group, err)
	}
	grp := &net.UDPAddr{IP: cfg.Group.Addr().AsSlice()}
	src := &net.UDPAddr{IP: cfg.Source.AsSlice()}
	lcOut := net.ListenConfig{Control: bindDev(cfg.OutInterface)}
	r.out, err = lcOut.ListenPacket(context.Background(), network, netip.AddrPortFrom(cfg.Source, 0).String())
	if err != nil {
		r.in.Close()
		return nil, fmt.Errorf("interop: relay: bind %v: %w", cfg.Source, err)
	}
	if network == "udp4" {
		pin, pout := ipv4.NewPacketConn(r.in), ipv4.NewPacketConn(r.out)
		err = errors.Join(pin.JoinSourceSpecificGroup(ifIn, grp, src),
			pout.SetMulticastInterface(ifOut), pout.SetMulticastTTL(1), pout.SetMulticastLoopback(false))
	} else {
		pin, pout := ipv6.NewPacketConn(r.in), ipv6.NewPacketConn(r.out)
		err = errors.Join(pin.JoinSourceSpecificGroup(ifIn, grp, src),
			pout.SetMulticastInterface(ifOut), pout.SetMulticastHopLimit(1), pout.SetMulticastLoopback(false))
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("interop: relay: socket options: %w", err)
	}
	return r, nil
}

// Run forwards until ctx ends or a socket fails.
func (r *Relay) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.in.Close() })
	defer stop()
	dst := net.UDPAddrFromAddrPort(r.cfg.Group)
	buf := make([]byte, 65536)
	for {
		n, _, err := r.in.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("interop: relay: read: %w", err)
		}
		if n == 0 {
			continue
		}
		if r.cfg.Observe != nil {
			r.cfg.Observe(buf[:n])
		}
		switch {
		case r.cfg.FlipMiddle:
			buf[n/2] ^= 1
		case r.cfg.Flip:
			buf[n-1] ^= 1
		}
		if _, err := r.out.WriteTo(buf[:n], dst); err != nil {
			return fmt.Errorf("interop: relay: write: %w", err)
		}
		r.Forwarded.Add(1)
	}
}

// Close closes the sockets.
func (r *Relay) Close() error {
	return errors.Join(r.in.Close(), r.out.Close())
}
