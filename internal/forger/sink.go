package forger

import (
	"fmt"
	"iter"
	"net"
	"net/netip"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
)

// Sink sends forged packets.
type Sink interface {
	Send(pkt []byte) error
}

// SinkFunc sends a packet by calling itself: feed a receiver's HandlePacket
// (with the session's source address) for a test on an injectable clock.
// HandlePacket decrypts in place: hand it a copy to keep the packet (for a
// replay, say).
type SinkFunc func(pkt []byte) error

// Send implements Sink.
func (f SinkFunc) Send(pkt []byte) error { return f(pkt) }

// SendAll sends every packet of pkts to s, stopping at the first error.
func SendAll(s Sink, pkts iter.Seq[[]byte]) (n int, err error) {
	for p := range pkts {
		if err := s.Send(p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Replay sends captured packets to s again, unchanged.
func Replay(s Sink, captured [][]byte) error {
	for _, p := range captured {
		if err := s.Send(p); err != nil {
			return err
		}
	}
	return nil
}

// Conn sends packets to a session's group. It always sends on the
// interface it was opened on, with TTL 1.
type Conn struct {
	send  func([]byte) error
	close func() error
}

// Send implements Sink.
func (c *Conn) Send(pkt []byte) error { return c.send(pkt) }

// Close closes the socket.
func (c *Conn) Close() error { return c.close() }

// Dial opens a UDP socket that sends to p's group on interface ifname (lo
// in tests), bound to p's source address, so that receivers that check the
// SSM source accept its packets: on loopback the source is 127.0.0.1, in a
// network namespace run the forger on the sender's host (or use
// DialSpoofed).
func Dial(p *mquic.Params, ifname string) (*Conn, error) {
	if ifname == "" {
		return nil, fmt.Errorf("forger: dial: an interface is required")
	}
	c, err := mcast.ListenSender(mcast.Config{Group: p.Group, Source: p.Source, Interface: ifname, TTL: 1, DisableGSO: true})
	if err != nil {
		return nil, fmt.Errorf("forger: dial %s from %s on %s: %w", p.Group, p.Source, ifname, err)
	}
	dst := net.UDPAddrFromAddrPort(p.Group)
	return &Conn{
		send: func(pkt []byte) error {
			_, err := c.WriteTo(pkt, dst)
			return err
		},
		close: c.Close,
	}, nil
}

// DialSpoofed opens a raw IPv4 socket on interface ifname that writes
// whole IP packets to p's group with p's source address as their source,
// whatever the host's own addresses: a forger on another host of a test
// network. It needs CAP_NET_RAW (root) and an IPv4 session.
func DialSpoofed(p *mquic.Params, ifname string) (*Conn, error) {
	if ifname == "" {
		return nil, fmt.Errorf("forger: dial spoofed: an interface is required")
	}
	src, grp := p.Source.Unmap(), p.Group.Addr().Unmap()
	if !src.Is4() || !grp.Is4() {
		return nil, fmt.Errorf("forger: dial spoofed: IPv4 only (source %s, group %s)", p.Source, p.Group.Addr())
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("forger: dial spoofed: %w", err)
	}
	return dialRaw(ifi, netip.AddrPortFrom(src, p.Group.Port()), netip.AddrPortFrom(grp, p.Group.Port()))
}
