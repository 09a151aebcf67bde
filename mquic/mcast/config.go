// Package mcast opens the real multicast UDP sockets of h3m's transport:
// source-specific (or any-source) joins for IPv4 and IPv6 on a named
// interface, large socket buffers, and batched I/O with sendmmsg/recvmmsg,
// UDP GSO on send and UDP GRO on receive, falling back automatically where the
// kernel or device refuses them.
//
// Safety: every socket has its multicast interface set explicitly (and, where
// the kernel allows it, is bound to that device), so a multicast packet never
// follows the default route. A Config without an Interface is an error.
package mcast

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
)

// Default buffer sizes and limits.
const (
	// DefaultRecvBuffer is the receive buffer requested when Config.RecvBuffer
	// is 0. Measurements on a 2-core box lost ~1 % of 64-packet bursts with
	// 4 MiB effective and nothing with 8 MiB.
	DefaultRecvBuffer = 8 << 20
	// DefaultSendBuffer is the send buffer requested when Config.SendBuffer is 0.
	DefaultSendBuffer = 4 << 20
	// MaxGSOSegments is the kernel's limit of segments per GSO super-packet
	// (UDP_MAX_SEGMENTS).
	MaxGSOSegments = 64
	// MaxGSOBytes bounds the payload of one GSO super-packet; it stays below
	// the 16-bit IP/UDP length limits of both families.
	MaxGSOBytes = 65000
	// GROBufferSize is the smallest Message.Buf that holds any coalesced
	// GRO super-packet. ReadBatch on a GRO conn turns GRO off when it is given
	// smaller buffers, because the kernel would truncate super-packets.
	GROBufferSize = 65535
)

// ErrNoInterface is returned when a Config has no Interface: the package never
// lets a multicast socket fall back to the default route.
var ErrNoInterface = errors.New("mcast: Config.Interface is required (refusing to use the default route for multicast)")

// Config describes one multicast socket.
type Config struct {
	// Group is the multicast group address and UDP port.
	Group netip.AddrPort
	// Source is, for receivers, the SSM source to join (S,G); the zero value
	// means an any-source join (*,G). For senders it is the local address to
	// bind and send from; the zero value means the interface's first address
	// of the group's family.
	Source netip.Addr
	// Interface names the network interface (e.g. "lo") the socket sends on
	// and joins on. Required.
	Interface string
	// TTL is the multicast TTL (IPv4) or hop limit (IPv6); 0 means 1 and a
	// negative value means 0 (host-local).
	TTL int
	// RecvBuffer is the receive buffer size to request; 0 means
	// DefaultRecvBuffer. SO_RCVBUFFORCE is tried first (needs CAP_NET_ADMIN),
	// then SO_RCVBUF; RecvBufferSize reports what the kernel granted.
	RecvBuffer int
	// SendBuffer is the send buffer size to request; 0 means
	// DefaultSendBuffer. Same approach as RecvBuffer.
	SendBuffer int
	// DisableGSO keeps a sender from using UDP_SEGMENT.
	DisableGSO bool
	// DisableGRO keeps a receiver from enabling UDP_GRO.
	DisableGRO bool
	// Logger receives the effective buffer sizes, GSO/GRO state, joins and
	// fallbacks. Nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) ttl() int {
	switch {
	case c.TTL == 0:
		return 1
	case c.TTL < 0:
		return 0
	}
	return c.TTL
}

func (c *Config) recvBuffer() int {
	if c.RecvBuffer <= 0 {
		return DefaultRecvBuffer
	}
	return c.RecvBuffer
}

func (c *Config) sendBuffer() int {
	if c.SendBuffer <= 0 {
		return DefaultSendBuffer
	}
	return c.SendBuffer
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// validate checks what both socket kinds need.
func (c *Config) validate(receiver bool) error {
	if c.Interface == "" {
		return ErrNoInterface
	}
	g := c.Group.Addr()
	if !g.IsValid() {
		return errors.New("mcast: Config.Group has no address")
	}
	if g.Zone() != "" {
		return fmt.Errorf("mcast: Config.Group %v: zones are not supported, name the interface in Config.Interface", g)
	}
	g = g.Unmap()
	if !g.IsMulticast() {
		return fmt.Errorf("mcast: Config.Group %v is not a multicast address", g)
	}
	if c.Group.Port() == 0 {
		return fmt.Errorf("mcast: Config.Group %v has port 0", c.Group)
	}
	if c.TTL > 255 {
		return fmt.Errorf("mcast: Config.TTL %d exceeds 255", c.TTL)
	}
	if s := c.Source; s.IsValid() {
		s = s.Unmap()
		if s.Is4() != g.Is4() {
			return fmt.Errorf("mcast: Config.Source %v and Config.Group %v are of different address families", s, g)
		}
		if s.IsMulticast() || s.IsUnspecified() {
			return fmt.Errorf("mcast: Config.Source %v is not a unicast address", s)
		}
		if receiver && s.Zone() != "" {
			return fmt.Errorf("mcast: Config.Source %v: zones are not supported", s)
		}
	}
	return nil
}
