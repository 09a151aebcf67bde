package protect

// ProtectError is why Open rejected a packet. The package's errors are the
// sentinel values below, so rejecting a packet allocates nothing; compare
// with errors.Is.
type ProtectError struct {
	reason string
}

func (e *ProtectError) Error() string { return "protect: " + e.reason }

// The errors Open returns. After any of them the packet is garbage: Open may
// already have removed header protection in place.
var (
	// ErrDecrypt means the AEAD tag did not verify: wrong key, corrupted or
	// forged packet, or a wrongly decoded packet number.
	ErrDecrypt = &ProtectError{"authentication failed"}
	// ErrShortPacket means the packet cannot hold its header, the
	// header-protection sample or the AEAD tag.
	ErrShortPacket = &ProtectError{"packet too short"}
	// ErrPNLength means the (unprotected) first byte encodes a packet-number
	// length other than the session's.
	ErrPNLength = &ProtectError{"packet number length differs from the session's"}
	// ErrReservedBits means an authenticated packet has a reserved header
	// bit set (RFC 9000 §17.3.1 makes that a protocol violation).
	ErrReservedBits = &ProtectError{"reserved header bits set"}
)
