package wire

import "errors"

// MaxConnIDLen is the longest connection ID QUIC v1 allows (RFC 9000 §17.2),
// and so the longest session ID.
const MaxConnIDLen = 20

// The short-header bits of the first byte (RFC 9000 §17.3.1).
const (
	headerFormLong  = 0x80 // Header Form: 1 = long header
	headerFixedBit  = 0x40 // Fixed Bit, always 1 on send
	headerPNLenMask = 0x03 // Packet Number Length - 1
)

// Errors of ParseShortHeader. They are plain sentinels so that dropping a
// garbage datagram costs no allocation.
var (
	ErrNotShortHeader = errors.New("wire: not a short-header packet (long-header bit 0x80 set)")
	ErrPacketTooShort = errors.New("wire: packet too short for a short header with this session ID")
	ErrConnIDLen      = errors.New("wire: connection ID length outside 0..20")
)

// AppendShortHeader appends a 1-RTT short header to b: the first byte
// 0x40|(pnLen-1) (fixed bit 1; spin, reserved and key-phase bits 0), the
// destination connection ID, and the low pnLen bytes of pn in network byte
// order. It panics if pnLen is not 1..4, which is a programming error.
func AppendShortHeader(b []byte, dcid []byte, pn uint64, pnLen int) []byte {
	if pnLen < 1 || pnLen > 4 {
		panic("wire: packet number length must be 1..4")
	}
	b = append(b, headerFixedBit|byte(pnLen-1))
	b = append(b, dcid...)
	for i := pnLen - 1; i >= 0; i-- {
		b = append(b, byte(pn>>(8*i)))
	}
	return b
}

// ParseShortHeader checks the unprotected part of a received short-header
// packet whose destination connection ID has the session's length dcidLen
// (a short header carries no length). The long-header bit must be clear and
// the packet must hold the first byte, the DCID and at least one packet
// number byte. The packet-number length is not known here: header protection
// still covers it.
//
// The fixed bit is not checked, as nghq's receiver does not check it either.
// dcid aliases pkt; pnOffset (1+dcidLen) is where the packet number starts.
func ParseShortHeader(pkt []byte, dcidLen int) (dcid []byte, pnOffset int, err error) {
	if dcidLen < 0 || dcidLen > MaxConnIDLen {
		return nil, 0, ErrConnIDLen
	}
	if len(pkt) == 0 {
		return nil, 0, ErrPacketTooShort
	}
	if pkt[0]&headerFormLong != 0 {
		return nil, 0, ErrNotShortHeader
	}
	pnOffset = 1 + dcidLen
	if len(pkt) < pnOffset+1 {
		return nil, 0, ErrPacketTooShort
	}
	return pkt[1:pnOffset:pnOffset], pnOffset, nil
}

// PacketNumberLen returns the packet-number length that an unprotected first
// byte encodes in its low two bits.
func PacketNumberLen(firstByte byte) int { return int(firstByte&headerPNLenMask) + 1 }
