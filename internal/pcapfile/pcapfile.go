// Package pcapfile reads the UDP datagrams out of a classic libpcap capture
// file. It exists so tests can replay real captures (testdata/nghq holds one
// of nghq's multicast sender) without a pcap library; it is not a general
// packet dissector.
//
// Supported: both byte orders, microsecond and nanosecond timestamps, and the
// link types Ethernet (with 802.1Q tags), Linux cooked v1 and v2, BSD
// loopback (NULL/LOOP) and raw IPv4/IPv6. Records that are not UDP over IP,
// and IP fragments, are skipped.
package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// Packet is one UDP datagram from a capture.
type Packet struct {
	Time     time.Time
	Src, Dst netip.AddrPort
	Payload  []byte
}

// Link-layer header types (tcpdump.org/linktypes.html) this package decodes.
const (
	linkNull     = 0   // BSD loopback: 4-byte address family in host order
	linkEthernet = 1   // EN10MB
	linkRaw      = 101 // raw IP, version from the first nibble
	linkLoop     = 108 // OpenBSD loopback: address family in network order
	linkSLL      = 113 // Linux cooked capture v1
	linkIPv4     = 228
	linkIPv6     = 229
	linkSLL2     = 276 // Linux cooked capture v2
)

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	protoUDP      = 17
)

// maxSnapLen bounds a record's captured length so that a corrupt header
// cannot make the reader allocate gigabytes.
const maxSnapLen = 1 << 18

// ErrFormat is wrapped by every error about a malformed capture file.
var ErrFormat = errors.New("pcapfile: malformed capture")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// ReadUDPPayloads reads a whole classic pcap stream and returns its UDP
// datagrams in capture order. It fails on an unknown magic number or link
// type, on a truncated file, and on a UDP datagram that the capture's snap
// length cut short.
func ReadUDPPayloads(r io.Reader) ([]Packet, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, formatErr("file header: %v", err)
	}
	var bo binary.ByteOrder
	nanos := false
	switch binary.LittleEndian.Uint32(hdr[0:4]) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nanos = binary.BigEndian, true
	default:
		return nil, formatErr("file header: unknown magic %x (pcapng is not supported)", hdr[0:4])
	}
	link := bo.Uint32(hdr[20:24]) & 0x0fffffff // the top bits carry FCS flags
	switch link {
	case linkNull, linkEthernet, linkRaw, linkLoop, linkSLL, linkIPv4, linkIPv6, linkSLL2:
	default:
		return nil, formatErr("file header: unsupported link type %d", link)
	}

	var pkts []Packet
	var rec [16]byte
	for n := 1; ; n++ {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			if err == io.EOF {
				return pkts, nil
			}
			return nil, formatErr("record %d header: %v", n, err)
		}
		sec, frac := bo.Uint32(rec[0:4]), bo.Uint32(rec[4:8])
		capLen, origLen := bo.Uint32(rec[8:12]), bo.Uint32(rec[12:16])
		if capLen > maxSnapLen {
			return nil, formatErr("record %d: captured length %d exceeds %d", n, capLen, maxSnapLen)
		}
		data := make([]byte, capLen)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, formatErr("record %d data: %v", n, err)
		}
		p, ok, err := decodeLink(link, bo, data)
		if err != nil {
			if capLen < origLen {
				err = fmt.Errorf("%w (record cut to %d of %d bytes by the snap length)", err, capLen, origLen)
			}
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
		if !ok {
			continue
		}
		if nanos {
			p.Time = time.Unix(int64(sec), int64(frac))
		} else {
			p.Time = time.Unix(int64(sec), int64(frac)*1000)
		}
		pkts = append(pkts, p)
	}
}

// decodeLink strips the link-layer header. ok is false for records that are
// not UDP over IP.
func decodeLink(link uint32, fileOrder binary.ByteOrder, b []byte) (p Packet, ok bool, err error) {
	switch link {
	case linkEthernet:
		if len(b) < 14 {
			return p, false, formatErr("ethernet header: %d bytes", len(b))
		}
		et, rest := binary.BigEndian.Uint16(b[12:14]), b[14:]
		for et == etherTypeVLAN || et == etherTypeQinQ {
			if len(rest) < 4 {
				return p, false, formatErr("802.1Q tag: %d bytes", len(rest))
			}
			et, rest = binary.BigEndian.Uint16(rest[2:4]), rest[4:]
		}
		return decodeEtherType(et, rest)
	case linkSLL:
		if len(b) < 16 {
			return p, false, formatErr("Linux cooked header: %d bytes", len(b))
		}
		return decodeEtherType(binary.BigEndian.Uint16(b[14:16]), b[16:])
	case linkSLL2:
		if len(b) < 20 {
			return p, false, formatErr("Linux cooked v2 header: %d bytes", len(b))
		}
		return decodeEtherType(binary.BigEndian.Uint16(b[0:2]), b[20:])
	case linkNull, linkLoop:
		if len(b) < 4 {
			return p, false, formatErr("loopback header: %d bytes", len(b))
		}
		// The family is in the capturing host's order for NULL; accept
		// either order rather than guess. AF_INET is 2 everywhere; AF_INET6
		// is 10, 24, 28 or 30 depending on the OS.
		af := fileOrder.Uint32(b[0:4])
		if link == linkLoop {
			af = binary.BigEndian.Uint32(b[0:4])
		}
		if af > 0xffff {
			af = bswap32(af)
		}
		switch af {
		case 2:
			return decodeIPv4(b[4:])
		case 10, 24, 28, 30:
			return decodeIPv6(b[4:])
		}
		return p, false, nil
	case linkRaw:
		if len(b) == 0 {
			return p, false, formatErr("raw IP: empty record")
		}
		switch b[0] >> 4 {
		case 4:
			return decodeIPv4(b)
		case 6:
			return decodeIPv6(b)
		}
		return p, false, nil
	case linkIPv4:
		return decodeIPv4(b)
	case linkIPv6:
		return decodeIPv6(b)
	}
	return p, false, formatErr("unsupported link type %d", link)
}

func bswap32(v uint32) uint32 {
	return v>>24 | (v>>8)&0xff00 | (v<<8)&0xff0000 | v<<24
}

func decodeEtherType(et uint16, b []byte) (Packet, bool, error) {
	switch et {
	case etherTypeIPv4:
		return decodeIPv4(b)
	case etherTypeIPv6:
		return decodeIPv6(b)
	}
	return Packet{}, false, nil
}

func decodeIPv4(b []byte) (p Packet, ok bool, err error) {
	if len(b) < 20 {
		return p, false, formatErr("IPv4 header: %d bytes", len(b))
	}
	if b[0]>>4 != 4 {
		return p, false, formatErr("IPv4 header: version %d", b[0]>>4)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl {
		return p, false, formatErr("IPv4 header: header length %d, total length %d", ihl, total)
	}
	if total > len(b) {
		return p, false, formatErr("IPv4 total length %d, only %d bytes captured", total, len(b))
	}
	if b[9] != protoUDP {
		return p, false, nil
	}
	if frag := binary.BigEndian.Uint16(b[6:8]); frag&0x3fff != 0 { // MF or offset
		return p, false, nil
	}
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	// Ethernet pads short frames: the IP total length, not the record, ends the packet.
	return decodeUDP(src, dst, b[ihl:total])
}

func decodeIPv6(b []byte) (p Packet, ok bool, err error) {
	if len(b) < 40 {
		return p, false, formatErr("IPv6 header: %d bytes", len(b))
	}
	if b[0]>>4 != 6 {
		return p, false, formatErr("IPv6 header: version %d", b[0]>>4)
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if 40+plen > len(b) {
		return p, false, formatErr("IPv6 payload length %d, only %d bytes captured", plen, len(b)-40)
	}
	// Extension headers are not followed: captures made for this project
	// carry UDP directly.
	if b[6] != protoUDP {
		return p, false, nil
	}
	src, _ := netip.AddrFromSlice(b[8:24])
	dst, _ := netip.AddrFromSlice(b[24:40])
	return decodeUDP(src, dst, b[40:40+plen])
}

func decodeUDP(src, dst netip.Addr, b []byte) (p Packet, ok bool, err error) {
	if len(b) < 8 {
		return p, false, formatErr("UDP header: %d bytes", len(b))
	}
	ulen := int(binary.BigEndian.Uint16(b[4:6]))
	if ulen < 8 || ulen > len(b) {
		return p, false, formatErr("UDP length %d, IP payload %d bytes", ulen, len(b))
	}
	p.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:2]))
	p.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:4]))
	p.Payload = b[8:ulen:ulen]
	return p, true, nil
}

// ReadFile reads the UDP datagrams of the capture file name
// (ReadUDPPayloads).
func ReadFile(name string) ([]Packet, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadUDPPayloads(f)
}
