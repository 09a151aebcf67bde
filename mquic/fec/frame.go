package fec

import (
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"

	"github.com/h3m-project/h3m/mquic/wire"
)

// FrameType is the type of the REPAIR frame, next to the MANIFEST frame's
// in the experimental range this project uses for its extensions (in the
// style of draft-jholland-quic-multicast's 0xff3e8xx). It is a 4-byte
// varint on the wire.
//
//	REPAIR Frame {
//	  Type (i) = 0xff3e8a1,
//	  Block ID (i),          // packet number of the block's first source packet
//	  Source Count (8),      // k: the source packets are Block ID .. Block ID + k - 1
//	  Repair Count (8),      // m: the block's repair packets
//	  Repair Index (8),      // j: this symbol's index, 0 .. m - 1
//	  Symbol Length (i),     // S: bytes of every symbol of the block
//	  Repair Symbol (8 * S),
//	}
//
// A packet carries at most one REPAIR frame and nothing else but PADDING,
// so that a receiver that does not know the frame loses nothing when it
// drops the packet. It is known only in sessions that advertise
// ExtensionID.
const FrameType wire.FrameType = 0xff3e8a1

// frameTypeLen is the length of FrameType's varint encoding.
var frameTypeLen = quicvarint.Len(uint64(FrameType))

// MinSymbolLen and MaxSymbolLen bound a block's symbol length: the 2-byte
// length and at least one byte of payload; at most what the 16-bit length
// can describe.
const (
	MinSymbolLen = 3
	MaxSymbolLen = 2 + 0xffff
)

// MaxPadding is the most bytes of padding a source symbol leaves out of a
// payload (spec/transport.md, "What is protected"): a payload is at most
// this much longer than its block's symbol length less 2. It bounds what a
// forged block makes a receiver rebuild.
const MaxPadding = 255

// Repair is a parsed REPAIR frame.
type Repair struct {
	BlockID     uint64 // packet number of the block's first source packet
	SourceCount int    // k
	RepairCount int    // m
	Index       int    // j
	Symbol      []byte // the repair symbol (aliases the parsed packet)
}

// ParseError is a malformed REPAIR frame; it names the field.
type ParseError struct {
	Field string
	Err   error
}

func (e *ParseError) Error() string { return "fec: REPAIR frame: " + e.Field + ": " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// IsFrame reports whether b starts with the REPAIR frame type.
func IsFrame(b []byte) bool {
	return len(b) >= frameTypeLen && b[0] == 0x8f && b[1] == 0xf3 && b[2] == 0xe8 && b[3] == 0xa1
}

// FrameLen returns the length of a REPAIR frame of block blockID with
// symbols of symbolLen bytes.
func FrameLen(blockID uint64, symbolLen int) int {
	return frameTypeLen + quicvarint.Len(blockID) + 3 + quicvarint.Len(uint64(symbolLen)) + symbolLen
}

// MaxFrameOverhead is the most bytes a REPAIR frame adds to a symbol of
// symbolLen bytes (whatever its block ID).
func MaxFrameOverhead(symbolLen int) int {
	return FrameLen(quicvarint.Max, symbolLen) - symbolLen
}

// AppendFrame appends the REPAIR frame r.
func AppendFrame(dst []byte, r *Repair) []byte {
	dst = quicvarint.Append(dst, uint64(FrameType))
	dst = quicvarint.Append(dst, r.BlockID)
	dst = append(dst, byte(r.SourceCount), byte(r.RepairCount), byte(r.Index))
	dst = quicvarint.Append(dst, uint64(len(r.Symbol)))
	return append(dst, r.Symbol...)
}

// ParseFrame parses the REPAIR frame at the start of b, type included, into
// r and returns its length. The symbol aliases b. Values the code cannot
// carry are errors (k + m > MaxSymbols, j ≥ m, a symbol length out of
// bounds, a block whose packet numbers pass 2^62 − 1).
func ParseFrame(b []byte, r *Repair) (int, error) {
	typ, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, &ParseError{"type", wire.ErrTruncated}
	}
	if wire.FrameType(typ) != FrameType || n != frameTypeLen {
		return 0, &ParseError{"type", fmt.Errorf("%w: 0x%x in %d bytes, want 0x%x in %d", ErrInvalid, typ, n, uint64(FrameType), frameTypeLen)}
	}
	id, l, err := quicvarint.Parse(b[n:])
	if err != nil {
		return 0, &ParseError{"block ID", wire.ErrTruncated}
	}
	n += l
	if len(b)-n < 3 {
		return 0, &ParseError{"counts", wire.ErrTruncated}
	}
	k, m, j := int(b[n]), int(b[n+1]), int(b[n+2])
	n += 3
	switch {
	case k == 0:
		return 0, &ParseError{"source count", fmt.Errorf("%w: 0", ErrInvalid)}
	case m == 0 || k+m > MaxSymbols:
		return 0, &ParseError{"repair count", fmt.Errorf("%w: %d with %d source packets (k + m ≤ %d)", ErrInvalid, m, k, MaxSymbols)}
	case j >= m:
		return 0, &ParseError{"repair index", fmt.Errorf("%w: %d of %d", ErrInvalid, j, m)}
	case id > quicvarint.Max-uint64(k+m):
		return 0, &ParseError{"block ID", fmt.Errorf("%w: block %d of %d packets passes 2^62-1", ErrInvalid, id, k+m)}
	}
	s, l, err := quicvarint.Parse(b[n:])
	if err != nil {
		return 0, &ParseError{"symbol length", wire.ErrTruncated}
	}
	n += l
	if s < MinSymbolLen || s > MaxSymbolLen {
		return 0, &ParseError{"symbol length", fmt.Errorf("%w: %d, must be %d to %d", ErrInvalid, s, MinSymbolLen, MaxSymbolLen)}
	}
	if uint64(len(b)-n) < s {
		return 0, &ParseError{"repair symbol", wire.ErrTruncated}
	}
	*r = Repair{BlockID: id, SourceCount: k, RepairCount: m, Index: j, Symbol: b[n : n+int(s)]}
	return n + int(s), nil
}
