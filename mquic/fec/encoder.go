package fec

import (
	"fmt"
	"math"
	"sync/atomic"
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
	// while no block is open, and blocks of only such packets; and, at
	// overhead 0 (SetOverhead), every packet.
	Uncovered uint64
	// Overhead is the repair overhead in force (m per k), as SetOverhead
	// set it, taken when a block would open; OverheadChanges counts its
	// changes.
	Overhead        float64
	OverheadChanges uint64
}

// Encoder is the sender side. It keeps a copy of each packet's payload, as
// the packet is sealed, as a source symbol of the open block. A block
// opens with the first packet worth repairing, takes every packet after
// it, and closes when it has MaxSourceCount packets or at its deadline
// (BlockTime after it opened), whichever comes first. Once closed, its
// repair symbols are computed (Encode: one pass over the whole block, with
// the GFNI kernel of gfni_amd64.s where the CPU has AVX-512 GFNI and the
// library's vectorized encoder elsewhere; less than half the time of adding
// each symbol to every repair symbol as it comes) and its REPAIR frames
// handed out (AppendNext); the sender gives the repair packets the packet
// numbers right after the block's. The source symbols are kept in two
// sets, so that the next block fills while the closed one is encoded:
// Encode touches only the closed block's state and may run concurrently
// with Add, Deadline and Open; nothing else may.
type Encoder struct {
	p        Params
	overhead float64
	symLen   int // largest symbol: 2 + the largest payload
	sets     [2]symbolSet
	parity   [][]byte // MaxRepairCount repair symbols of symLen bytes
	// Every symbol buffer has room for symLen rounded up to 64 bytes, zero
	// past its symbol (the GFNI kernel works on whole 64-byte vectors).

	// With GFNI: the coefficient matrices (gfniMatrices) and the kernel's
	// outputs, the repair symbols and scratch up to a multiple of ten.
	gfniMat []uint64
	gfniOut [][]byte
	// Without: the library's encoder, and the block as it takes it.
	rs     reedsolomon.Encoder
	zero   []byte   // stands for the source symbols a short block lacks
	shards [][]byte // sources, then repairs

	// The open block, in sets[cur].
	cur     int
	open    bool
	id      uint64
	k       int
	maxLen  int // longest payload in the block
	worthy  bool
	started time.Time

	// The closed block, in sets[1-cur], whose REPAIR frames are handed out.
	next, m  int
	closed   Repair
	closedK  int
	closedS  int  // its symbol length
	encoded  bool // its repair symbols are computed
	inFlight bool // closed and not all handed out

	st EncoderStats

	// want is the overhead SetOverhead asked for (math.Float64bits): a
	// block takes it when it opens.
	want atomic.Uint64
}

// symbolSet is a block's source symbols.
type symbolSet struct {
	src    [][]byte // MaxSourceCount symbols of symLen bytes, zero past their payload
	srcLen []int    // each symbol's payload + 2
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
	e := &Encoder{p: p, overhead: overhead, symLen: 2 + maxPayload}
	e.want.Store(math.Float64bits(overhead))
	e.st.Overhead = overhead
	symbol := func() []byte { return make([]byte, e.symLen, roundUp64(e.symLen)) }
	for s := range e.sets {
		set := &e.sets[s]
		set.src, set.srcLen = make([][]byte, k), make([]int, k)
		for i := range set.src {
			set.src[i] = symbol()
		}
	}
	e.parity = make([][]byte, m)
	for j := range e.parity {
		e.parity[j] = symbol()
	}
	if haveGFNI {
		e.gfniMat = gfniMatrices(k, m)
		e.gfniOut = make([][]byte, roundUp(m, gfniOutputs))
		for j := range e.gfniOut {
			if j < m {
				e.gfniOut[j] = e.parity[j]
			} else {
				e.gfniOut[j] = symbol()
			}
		}
		return e, nil
	}
	rs, err := reedsolomon.New(k, m, reedsolomon.WithCustomMatrix(repairRows(k, m)))
	if err != nil {
		return nil, fmt.Errorf("fec: %w", err)
	}
	e.rs = rs
	e.zero = symbol()
	e.shards = make([][]byte, k+m)
	return e, nil
}

// repairRows is the code's matrix for k source and m repair symbols, as
// the library takes it: row j holds C(j, i) for i < k.
func repairRows(k, m int) [][]byte {
	rows := make([][]byte, m)
	for j := range rows {
		rows[j] = make([]byte, k)
		for i := range k {
			rows[j][i] = Coefficient(j, i)
		}
	}
	return rows
}

// Params returns the parameters the encoder follows.
func (e *Encoder) Params() Params { return e.p }

// SymbolLen is the longest symbol the encoder makes: 2 + the largest
// payload.
func (e *Encoder) SymbolLen() int { return e.symLen }

// Add adds packet pn, whose plaintext payload is payload followed by
// padding zero bytes (PADDING frames), to the open block, opening one if
// none is and worthy says the packet carries something worth repairing
// (packets that are not, while no block is open, stay uncovered). The
// padding is outside the symbol but for its length (spec/transport.md,
// "What is protected"): a sender pads full packets to the size of repair
// packets at no cost in symbol length. It returns true when the block is
// full: the caller closes it (Close) before adding another packet. pn must
// follow the block's last packet and payload must fit the symbol length:
// Add panics otherwise (a sender bug).
func (e *Encoder) Add(pn uint64, payload []byte, padding int, worthy bool, now time.Time) (full bool) {
	n := len(payload)
	if 2+n > e.symLen || padding < 0 || padding > MaxPadding {
		panic(fmt.Sprintf("fec: payload of %d+%d bytes exceeds the symbol length %d", n, padding, e.symLen))
	}
	if !e.open {
		if o := math.Float64frombits(e.want.Load()); o != e.overhead {
			e.overhead, e.st.Overhead = o, o
			e.st.OverheadChanges++
		}
		if !worthy || e.overhead == 0 {
			e.st.Uncovered++
			return false
		}
		e.open, e.id, e.k, e.maxLen, e.worthy, e.started = true, pn, 0, 0, false, now
	} else if pn != e.id+uint64(e.k) || e.k == e.p.MaxSourceCount {
		panic(fmt.Sprintf("fec: packet %d added to block %d+%d", pn, e.id, e.k))
	}
	set := &e.sets[e.cur]
	sym := set.src[e.k]
	sym[0], sym[1] = byte((n+padding)>>8), byte(n+padding)
	copy(sym[2:], payload)
	if old := set.srcLen[e.k]; old > 2+n {
		clear(sym[2+n : old])
	}
	set.srcLen[e.k] = 2 + n
	e.k++
	e.maxLen = max(e.maxLen, n)
	e.worthy = e.worthy || worthy
	return e.k == e.p.MaxSourceCount
}

// SetOverhead sets the repair overhead of the blocks that open from now
// on (0.1: m = ⌈0.1 · k⌉ repair packets for a block of k packets; 0: no
// block, no repair packet). It may be called from any goroutine; the
// overhead may not call for more repair packets than the parameters'
// MaxRepairCount for a full block.
func (e *Encoder) SetOverhead(overhead float64) error {
	if overhead < 0 || math.IsNaN(overhead) || (overhead > 0 && RepairCount(overhead, e.p.MaxSourceCount) > e.p.MaxRepairCount) {
		return fmt.Errorf("fec: overhead %v: want 0 to %d repair packets per %d", overhead, e.p.MaxRepairCount, e.p.MaxSourceCount)
	}
	e.want.Store(math.Float64bits(overhead))
	return nil
}

// Open reports whether a block is open.
func (e *Encoder) Open() bool { return e.open }

// OpenBlock returns the ID of the open block, if one is open.
func (e *Encoder) OpenBlock() (id uint64, open bool) { return e.id, e.open }

// Full reports whether the open block is full: it must close before
// another packet is added.
func (e *Encoder) Full() bool { return e.open && e.k == e.p.MaxSourceCount }

// Deadline is when the open block must close, if one is open.
func (e *Encoder) Deadline() (time.Time, bool) {
	if !e.open {
		return time.Time{}, false
	}
	return e.started.Add(e.p.BlockTime), true
}

// RepairsOnClose is how many repair packets the open block would get if it
// closed now (0 when none is open, or when it holds nothing worth
// repairing).
func (e *Encoder) RepairsOnClose() int {
	if !e.open || !e.worthy {
		return 0
	}
	return min(RepairCount(e.overhead, e.k), e.p.MaxRepairCount)
}

// Close closes the open block and returns how many repair packets it
// calls for (RepairsOnClose). The previous closed block must be done (all
// its frames handed out): Close panics otherwise. Encode then computes the
// repair symbols.
func (e *Encoder) Close() int {
	if !e.open {
		return 0
	}
	if e.inFlight {
		panic("fec: Close while the previous block's repair packets are pending")
	}
	e.open = false
	if !e.worthy {
		e.st.Uncovered += uint64(e.k)
		return 0
	}
	e.m, e.next, e.encoded, e.inFlight = min(RepairCount(e.overhead, e.k), e.p.MaxRepairCount), 0, false, true
	e.closed = Repair{BlockID: e.id, SourceCount: e.k, RepairCount: e.m}
	e.closedK, e.closedS = e.k, symbolLen(e.maxLen, e.symLen)
	e.cur = 1 - e.cur // the next block fills the other set
	e.st.Blocks++
	e.st.SourcePackets += uint64(e.k)
	return e.m
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

// NeedsEncode reports whether the closed block's repair symbols are still
// to be computed (Encode).
func (e *Encoder) NeedsEncode() bool { return e.inFlight && !e.encoded }

// Encode computes the closed block's repair symbols: the one long step
// (about 20 µs for 200 packets of 1150 bytes with GFNI, 50 µs without).
// It touches only the closed block's state,
// so the sender may run it without its lock while Add fills the next
// block.
func (e *Encoder) Encode() {
	if !e.NeedsEncode() {
		return
	}
	set := &e.sets[1-e.cur]
	if e.gfniMat != nil {
		// Only the block's own symbols: zero ones would change nothing.
		n, k := roundUp64(e.closedS), e.p.MaxSourceCount
		for g := range roundUp(e.m, gfniOutputs) / gfniOutputs {
			gfniMulAdd10(&e.gfniMat[g*k*gfniOutputs], &set.src[0], e.closedK, &e.gfniOut[g*gfniOutputs], n)
		}
		e.encoded = true
		return
	}
	// A short block is the full-size code with zero symbols past its end
	// (which change no repair symbol).
	for i := range set.src {
		if i < e.closedK {
			e.shards[i] = set.src[i][:e.closedS]
		} else {
			e.shards[i] = e.zero[:e.closedS]
		}
	}
	for j, p := range e.parity {
		e.shards[len(set.src)+j] = p[:e.closedS]
	}
	if err := e.rs.Encode(e.shards); err != nil {
		panic(fmt.Sprintf("fec: encode: %v", err)) // shards of equal size, always
	}
	e.encoded = true
}

// Pending is how many REPAIR frames of the closed block are still to be
// handed out.
func (e *Encoder) Pending() int {
	if !e.inFlight {
		return 0
	}
	return e.m - e.next
}

// MaxFrameLen is the longest REPAIR frame the encoder makes.
func (e *Encoder) MaxFrameLen() int { return MaxFrameOverhead(e.symLen) + e.symLen }

// AppendNext appends the next REPAIR frame of the closed block to dst,
// computing the repair symbols first if Encode has not.
func (e *Encoder) AppendNext(dst []byte) []byte {
	if e.Pending() <= 0 {
		panic("fec: AppendNext with no repair pending")
	}
	e.Encode()
	r := e.closed
	r.Index = e.next
	r.Symbol = e.parity[e.next][:e.closedS]
	e.next++
	if e.next == e.m {
		e.inFlight = false
	}
	e.st.RepairPackets++
	e.st.RepairBytes += uint64(len(r.Symbol))
	return AppendFrame(dst, &r)
}

// Stats returns the encoder's counters.
func (e *Encoder) Stats() EncoderStats { return e.st }
