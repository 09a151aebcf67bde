package fec

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ExtensionID is the transport parameter ID under which a session's
// extensions parameter advertises forward error correction (an experimental
// value, like the asymmetric-authentication extension's). Its value is the
// session's Params. A receiver that does not know it ignores it, and drops
// the repair packets as packets with an unknown frame type: they carry
// nothing else.
const ExtensionID uint16 = 0xfec0

// SchemeReedSolomon8 is the only FEC scheme: the Reed-Solomon code over
// GF(2^8) with a Cauchy generator matrix described in the package comment,
// over source symbols that may leave out a payload's trailing padding
// (spec/transport.md, "What is protected"). It is 2: scheme 1, an earlier
// version whose symbols held every payload whole, is no longer sent nor
// known (its receivers would misread the symbols of padded packets; a
// receiver treats it as any unknown scheme).
const SchemeReedSolomon8 = 2

// MaxSymbols is the most symbols (source and repair) a block of
// SchemeReedSolomon8 has: the code's matrix needs k + m ≤ 256.
const MaxSymbols = 256

// Defaults of a sender's FEC configuration.
const (
	// DefaultMaxSourceCount is the most source packets in a block. Large
	// blocks recover more for the same overhead (any m losses of k + m are
	// recoverable, wherever they fall); 200 keeps a block under 40 ms at
	// 50 Mbit/s and decoding under 100 µs per block (spec/transport.md).
	DefaultMaxSourceCount = 200
	// DefaultBlockTime is the longest a block stays open: at low rates it
	// closes before it is full, so that repair follows loss within this
	// long.
	DefaultBlockTime = 50 * time.Millisecond
)

// Params are what a session advertises about its FEC: the value of the
// ExtensionID extension.
//
//	FEC Parameters {
//	  FEC Scheme (8),            // 2: SchemeReedSolomon8
//	  Maximum Source Count (8),  // K: source packets per block, 1..255
//	  Maximum Repair Count (8),  // M: repair packets per block, 1..256-K
//	  Maximum Block Time (16),   // milliseconds from a block's first packet to its last repair packet being sealed
//	}
type Params struct {
	Scheme         uint8
	MaxSourceCount int
	MaxRepairCount int
	BlockTime      time.Duration
}

// paramsLen is the length of the encoded Params.
const paramsLen = 1 + 1 + 1 + 2

// Errors wrapped by those of malformed FEC parameters and REPAIR frames.
var (
	ErrInvalid = errors.New("invalid")
	// ErrUnknownScheme: the parameters name a scheme this package does not
	// implement. A receiver then treats the extension as unknown (and drops
	// the repair packets), as a receiver that does not know FEC at all does.
	ErrUnknownScheme = errors.New("unknown FEC scheme")
)

// NewParams returns the parameters of a sender that adds overhead (a
// fraction: 0.05 for 5 %) of repair packets to blocks of at most
// maxSource packets (0: DefaultMaxSourceCount) closed within blockTime
// (0: DefaultBlockTime).
func NewParams(overhead float64, maxSource int, blockTime time.Duration) (Params, error) {
	if maxSource == 0 {
		maxSource = DefaultMaxSourceCount
	}
	if blockTime == 0 {
		blockTime = DefaultBlockTime
	}
	p := Params{Scheme: SchemeReedSolomon8, MaxSourceCount: maxSource, BlockTime: blockTime}
	if !(overhead > 0) || overhead > 4 {
		return p, fmt.Errorf("fec: overhead %v: want a fraction above 0 (0.05 for 5 %%), at most 4", overhead)
	}
	p.MaxRepairCount = RepairCount(overhead, maxSource)
	return p, p.Validate()
}

// RepairCount is how many repair packets a block of k source packets gets
// at overhead: ⌈overhead · k⌉, at least 1, at most what the code allows.
func RepairCount(overhead float64, k int) int {
	m := int(math.Ceil(overhead*float64(k) - 1e-9))
	return max(1, min(m, MaxSymbols-k))
}

// Validate checks that the parameters describe blocks the code can carry.
func (p *Params) Validate() error {
	switch {
	case p.Scheme != SchemeReedSolomon8:
		return fmt.Errorf("fec: %w %d (only %d, Reed-Solomon over GF(2^8), is defined)", ErrUnknownScheme, p.Scheme, SchemeReedSolomon8)
	case p.MaxSourceCount < 1 || p.MaxSourceCount > MaxSymbols-1:
		return fmt.Errorf("fec: %w: maximum source count %d, must be 1 to %d", ErrInvalid, p.MaxSourceCount, MaxSymbols-1)
	case p.MaxRepairCount < 1 || p.MaxSourceCount+p.MaxRepairCount > MaxSymbols:
		return fmt.Errorf("fec: %w: maximum repair count %d, must be 1 to %d with %d source packets", ErrInvalid, p.MaxRepairCount, MaxSymbols-p.MaxSourceCount, p.MaxSourceCount)
	case p.BlockTime < time.Millisecond || p.BlockTime > math.MaxUint16*time.Millisecond:
		return fmt.Errorf("fec: %w: block time %v, must be 1 ms to %d ms", ErrInvalid, p.BlockTime, math.MaxUint16)
	case p.BlockTime%time.Millisecond != 0:
		return fmt.Errorf("fec: %w: block time %v is not whole milliseconds", ErrInvalid, p.BlockTime)
	}
	return nil
}

// AppendValue appends the encoded parameters, the extension's value.
func (p *Params) AppendValue(dst []byte) []byte {
	ms := p.BlockTime / time.Millisecond
	return append(dst, p.Scheme, byte(p.MaxSourceCount), byte(p.MaxRepairCount), byte(ms>>8), byte(ms))
}

// Value returns the encoded parameters.
func (p *Params) Value() []byte { return p.AppendValue(make([]byte, 0, paramsLen)) }

// ParseParams parses and validates an extension value. A value longer than
// the fields is an error (a later version would be a new scheme); a scheme
// other than SchemeReedSolomon8 is ErrUnknownScheme, whatever follows it.
func ParseParams(b []byte) (Params, error) {
	if len(b) > 0 && b[0] != SchemeReedSolomon8 {
		return Params{Scheme: b[0]}, fmt.Errorf("fec: %w %d", ErrUnknownScheme, b[0])
	}
	if len(b) != paramsLen {
		return Params{}, fmt.Errorf("fec: %w: parameters of %d bytes, want %d", ErrInvalid, len(b), paramsLen)
	}
	p := Params{Scheme: b[0], MaxSourceCount: int(b[1]), MaxRepairCount: int(b[2]),
		BlockTime: time.Duration(int(b[3])<<8|int(b[4])) * time.Millisecond}
	return p, p.Validate()
}
