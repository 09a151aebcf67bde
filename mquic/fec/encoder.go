package fec

import (
	"fmt"
	"time"

	"github.com/klauspost/reedsolomon"
)

// EncoderStats are an Encoder's counters.
type EncoderStats struct {
	Blocks        uint64 // blocks closed with repair packets
	SourcePackets uint64 // packets covered by those blocks
	RepairPackets uint64 // REPAIR frames handed out
	RepairBytes   uint64 // repair symbol bytes handed out
	// Uncovered counts packets left out of every block: packets that carry
	// nothing worth repairing (only PING, PADDING or MANIFEST frames)
	// while no block is open, and blocks of only such packets.
	Uncovered uint64
}

// Encoder is the sender side: it keeps a copy of each packet's payload, as
// the packet is sealed, as a source symbol of the block being filled, and
// when the block closes computes its repair symbols (in one pass of the
// library's vectorized encoder over the whole block: less than half the
// time of adding each symbol to every repair symbol as it comes) and hands
// out its REPAIR frames. A block opens with the
// first packet worth repairing, takes every packet after it, and closes
// when it has MaxSourceCount packets or at its deadline (BlockTime after it
// opened), whichever comes first; the sender then sends its repair packets
// before any other packet, so that a block's packet numbers are
// consecutive. An Encoder is not safe for concurrent use.
type Encoder struct {
	p        Params
	overhead float64
	symLen   int // largest symbol: 2 + the largest payload
	rs       reedsolomon.Encoder
	src      [][]byte // MaxSourceCount source symbols of symLen bytes, zero past their payload
	srcLen   []int    // the length of each source symbol's payload + 2
	zero     []byte   // stands for the source symbols a short block lacks
	shards   [][]byte // the block as the library encodes it: sources, then repairs
	parity   [][]byte // MaxRepairCount repair symbols of symLen bytes

	open    bool
	id      uint64
	k       int
	maxLen  int // longest payload in the block
	worthy  bool
	started time.Time

	// The closed block whose REPAIR frames are being handed out.
	next, m int
	closed  Repair
	encoded bool // its repair symbols are computed

	st EncoderStats
}

// NewEncoder returns the encoder of a sender that adds overhead (0.05 for
// 5 %) of repair packets to blocks p describes, for packets whose payloads
// are at most maxPayload bytes.
func NewEncoder(p Params, overhead float64, maxPayload int) (*Encoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxPayload < 1 || 2+maxPayload > MaxSymbolLen {
		return nil, fmt.Errorf("fec: payloads of %d bytes cannot be symbols", maxPayload)
	}
	if RepairCount(overhead, p.MaxSourceCount) > p.MaxRepairCount {
		return nil, fmt.Errorf("fec: overhead %v needs %d repair packets per block, the parameters allow %d", overhead, RepairCount(overhead, p.MaxSourceCount), p.MaxRepairCount)
	}
	k, m := p.MaxSourceCount, p.MaxRepairCount
	matrix := make([][]byte, m)
	for j := range matrix {
		matrix[j] = make([]byte, k)
		for i := range k {
			matrix[j][i] = Coefficient(j, i)
		}
	}
	rs, err := reedsolomon.New(k, m, reedsolomon.WithCustomMatrix(matrix))
	if err != nil {
		return nil, fmt.Errorf("fec: %w", err)
	}
	e := &Encoder{p: p, overhead: overhead, symLen: 2 + maxPayload, rs: rs}
	e.src, e.srcLen = make([][]byte, k), make([]int, k)
	for i := range e.src {
		e.src[i] = make([]byte, e.symLen)
	}
	e.zero = make([]byte, e.symLen)
	e.parity = make([][]byte, m)
	for j := range e.parity {
		e.parity[j] = make([]byte, e.symLen)
	}
	e.shards = make([][]byte, k+m)
	return e, nil
}

// Params returns the parameters the encoder follows.
func (e *Encoder) Params() Params { return e.p }

// SymbolLen is the longest symbol the encoder makes: 2 + the largest
// payload.
func (e *Encoder) SymbolLen() int { return e.symLen }

// Add adds packet pn, whose plaintext payload is payload, to the open
// block, opening one if none is and worthy says the packet carries
// something worth repairing (packets that are not, while no block is open,
// stay uncovered). It returns true when the block is full: the caller
// closes it (Close) and sends its repair packets before any other packet.
// pn must follow the block's last packet; payload must fit the symbol
// length, and no repair may be pending: Add panics otherwise (a sender
// bug).
func (e *Encoder) Add(pn uint64, payload []byte, worthy bool, now time.Time) (full bool) {
	if e.Pending() > 0 {
		panic("fec: Add while repair packets are pending")
	}
	n := len(payload)
	if 2+n > e.symLen {
		panic(fmt.Sprintf("fec: payload of %d bytes exceeds the symbol length %d", n, e.symLen))
	}
	if !e.open {
		if !worthy {
			e.st.Uncovered++
			return false
		}
		e.open, e.id, e.k, e.maxLen, e.worthy, e.started = true, pn, 0, 0, false, now
	} else if pn != e.id+uint64(e.k) {
		panic(fmt.Sprintf("fec: packet %d added to block %d+%d: packet numbers must be consecutive", pn, e.id, e.k))
	}
	sym := e.src[e.k]
	sym[0], sym[1] = byte(n>>8), byte(n)
	copy(sym[2:], payload)
	if old := e.srcLen[e.k]; old > 2+n {
		clear(sym[2+n : old])
	}
	e.srcLen[e.k] = 2 + n
	e.k++
	e.maxLen = max(e.maxLen, n)
	e.worthy = e.worthy || worthy
	return e.k == e.p.MaxSourceCount
}

// Deadline is when the open block must close, if one is open.
func (e *Encoder) Deadline() (time.Time, bool) {
	if !e.open {
		return time.Time{}, false
	}
	return e.started.Add(e.p.BlockTime), true
}

// Close closes the open block and returns how many repair packets it
// calls for (0 when none is open, or when it holds nothing worth
// repairing). Encode then computes them.
func (e *Encoder) Close() int {
	if !e.open {
		return 0
	}
	e.open = false
	if !e.worthy {
		e.st.Uncovered += uint64(e.k)
		return 0
	}
	e.m, e.next, e.encoded = min(RepairCount(e.overhead, e.k), e.p.MaxRepairCount), 0, false
	e.maxLen = symbolLen(e.maxLen, e.symLen)
	e.closed = Repair{BlockID: e.id, SourceCount: e.k, RepairCount: e.m}
	e.st.Blocks++
	e.st.SourcePackets += uint64(e.k)
	return e.m
}

// NeedsEncode reports whether the closed block's repair symbols are still
// to be computed (Encode).
func (e *Encoder) NeedsEncode() bool { return e.Pending() > 0 && !e.encoded }

// Encode computes the closed block's repair symbols: the one long step
// (about 50 µs for 200 packets), which touches only the encoder's own
// buffers, so that the sender can run it without its lock while nothing
// else uses the encoder.
func (e *Encoder) Encode() {
	if !e.NeedsEncode() {
		return
	}
	// Symbols are as long as the block's longest payload needs; a short
	// block is the full-size code with zero symbols past its end (which
	// change no repair symbol).
	for i := range e.src {
		if i < e.k {
			e.shards[i] = e.src[i][:e.maxLen]
		} else {
			e.shards[i] = e.zero[:e.maxLen]
		}
	}
	for j, p := range e.parity {
		e.shards[len(e.src)+j] = p[:e.maxLen]
	}
	if err := e.rs.Encode(e.shards); err != nil {
		panic(fmt.Sprintf("fec: encode: %v", err)) // shards of equal size, always
	}
	e.encoded = true
}

// symbolLen is the symbol length of a block whose longest payload is n
// bytes, with symbols of at most limit bytes: the payload and its length,
// and from 256 bytes on rounded up to a multiple of 64 (within limit),
// which the vectorized encoder takes whole: a tail would cost it a scalar
// pass per pair of symbols. The padding is zeros, like any symbol's.
func symbolLen(n, limit int) int {
	s := n + 2
	if s >= 256 {
		s = min((s+63)&^63, limit)
	}
	return s
}

// Pending is how many REPAIR frames of the closed block are still to be
// handed out.
func (e *Encoder) Pending() int { return e.m - e.next }

// NextFrameLen is the length of the next REPAIR frame (Pending must be
// positive).
func (e *Encoder) NextFrameLen() int { return FrameLen(e.closed.BlockID, e.maxLen) }

// MaxFrameLen is the longest REPAIR frame the encoder makes.
func (e *Encoder) MaxFrameLen() int { return MaxFrameOverhead(e.symLen) + e.symLen }

// AppendNext appends the next REPAIR frame of the closed block to dst.
func (e *Encoder) AppendNext(dst []byte) []byte {
	if e.Pending() <= 0 {
		panic("fec: AppendNext with no repair pending")
	}
	e.Encode()
	r := e.closed
	r.Index = e.next
	r.Symbol = e.parity[e.next][:e.maxLen]
	e.next++
	e.st.RepairPackets++
	e.st.RepairBytes += uint64(len(r.Symbol))
	return AppendFrame(dst, &r)
}

// Stats returns the encoder's counters.
func (e *Encoder) Stats() EncoderStats { return e.st }
