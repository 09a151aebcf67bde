package wire

// MaxPacketNumber is the largest packet number QUIC allows (RFC 9000 §12.3).
const MaxPacketNumber = 1<<62 - 1

// DecodePacketNumber recovers a full packet number from its truncated
// encoding of pnLen bytes (1..4), given the largest packet number received so
// far, as RFC 9000 Appendix A.3 specifies: the result is the value closest to
// largest+1 whose low pnLen bytes equal truncated. For a pnLen outside 1..4
// it returns truncated unchanged.
func DecodePacketNumber(largest, truncated uint64, pnLen int) uint64 {
	if pnLen < 1 || pnLen > 4 {
		return truncated
	}
	expected := largest + 1
	win := uint64(1) << (8 * pnLen)
	hwin := win / 2
	mask := win - 1
	truncated &= mask
	candidate := expected&^mask | truncated
	// Unsigned arithmetic: each comparison is arranged so that no side can
	// underflow (RFC 9000 A.3 writes expected - hwin).
	if candidate+hwin <= expected && candidate < (1<<62)-win {
		return candidate + win
	}
	if candidate > expected+hwin && candidate >= win {
		return candidate - win
	}
	return candidate
}

// ReadPacketNumber returns the truncated packet number stored in the first
// pnLen bytes of b in network byte order. b must hold pnLen (1..4) bytes.
func ReadPacketNumber(b []byte, pnLen int) uint64 {
	var pn uint64
	for _, c := range b[:pnLen] {
		pn = pn<<8 | uint64(c)
	}
	return pn
}
