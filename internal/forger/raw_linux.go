//go:build linux

package forger

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// dialRaw opens an IPPROTO_RAW socket (IP_HDRINCL) bound to ifi that sends
// UDP datagrams from src to the IPv4 multicast group dst with TTL 1.
func dialRaw(ifi *net.Interface, src, dst netip.AddrPort) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("forger: raw socket: %w", err)
	}
	fail := func(what string, err error) (*Conn, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("forger: raw socket: %s: %w", what, err)
	}
	if err := unix.BindToDevice(fd, ifi.Name); err != nil {
		return fail("bind to "+ifi.Name, err)
	}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}); err != nil {
		return fail("multicast interface", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
		return fail("multicast loop", err)
	}
	to := &unix.SockaddrInet4{Addr: dst.Addr().As4()}
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	var id atomic.Uint32
	return &Conn{
		send: func(pkt []byte) error {
			b := make([]byte, 28, 28+len(pkt))
			// IPv4 header: the kernel fills in the checksum and total length
			// (raw(7), IP_HDRINCL); the TTL is 1, as for every test socket.
			b[0] = 0x45
			binary.BigEndian.PutUint16(b[2:], uint16(28+len(pkt)))
			binary.BigEndian.PutUint16(b[4:], uint16(id.Add(1)))
			b[8] = 1
			b[9] = unix.IPPROTO_UDP
			copy(b[12:16], s4[:])
			copy(b[16:20], d4[:])
			// UDP header, checksum 0 (none, allowed over IPv4).
			binary.BigEndian.PutUint16(b[20:], src.Port())
			binary.BigEndian.PutUint16(b[22:], dst.Port())
			binary.BigEndian.PutUint16(b[24:], uint16(8+len(pkt)))
			b = append(b, pkt...)
			return unix.Sendto(fd, b, 0, to)
		},
		close: func() error { return unix.Close(fd) },
	}, nil
}
