package fec

import (
	"crypto/subtle"
	"math/bits"
	"time"

	"github.com/klauspost/reedsolomon"
)

// DecoderStats are a Decoder's counters.
type DecoderStats struct {
	RepairPackets uint64 // REPAIR frames taken
	Recovered     uint64 // source packets rebuilt
	// BlocksRecovered counts blocks that lost packets and rebuilt them all;
	// BlocksUnrecoverable blocks that lost more than their repair packets
	// could rebuild, and Unrecovered the packets those still lack (reported
	// to the layer above as lost, as without FEC).
	BlocksRecovered     uint64
	BlocksUnrecoverable uint64
	Unrecovered         uint64
	// BadRepair counts REPAIR frames inconsistent with the block other
	// frames described (counts, symbol length, overlapping blocks) and
	// blocks that cannot be decoded (a source payload whose tail past the
	// symbol length is not padding, or is longer than MaxPadding) or that
	// decode to a payload longer than that.
	BadRepair uint64
	// UnusedRepair counts REPAIR frames that came after their block was
	// decided (it lost nothing, was rebuilt, or was given up), or too late
	// for its source packets to be still at hand.
	UnusedRepair uint64
	// RepairSkipped counts datagrams dropped unopened (Skip): repair
	// packets, by their packet numbers, of blocks already decided.
	RepairSkipped uint64
}

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	Params Params
	// ReorderThreshold and ReorderDelay tell when a block's missing repair
	// packets are given up: once a packet this many numbers past the
	// block's last repair packet has arrived, or this long after its last
	// symbol arrived.
	ReorderThreshold int
	ReorderDelay     time.Duration
}

// Decoder is the receiver side: it keeps the payloads of the recent
// packets (Source), collects each block's repair symbols (Repair), and
// rebuilds the packets a block lost as soon as it holds as many symbols as
// the block has source packets. The rebuilt payloads wait in order for
// Next. Buffers are reused: in steady state nothing is allocated per packet
// or per block. A Decoder is not safe for concurrent use.
type Decoder struct {
	cfg  DecoderConfig
	ll   reedsolomon.LowLevel
	ring []slot // the payloads of the last len(ring) packet numbers
	mask uint64

	blocks []*block // known blocks, by increasing ID
	spare  []*block
	ready  []uint64 // rebuilt packet numbers not yet handed out
	head   int

	have    bool
	largest uint64 // largest packet number seen
	known   uint64 // end of the newest known block (its last repair packet + 1)

	// With GFNI (haveGFNI): the kernel's matrix of each byte value, and
	// the scratch of syndromesGFNI.
	gfniTab *[256]uint64
	gmat    []uint64
	gin     [][]byte
	gout    [][]byte
	zero    []byte

	lent []uint64 // packet numbers whose payloads are lent (Lend)

	// Scratch of a decoding.
	miss []int
	rows []int
	lost [MaxSymbols]bool
	mat  []byte // e × 2e augmented matrix

	st DecoderStats
}

// slot is one packet's payload, as its source symbol without the zeros up
// to the symbol length: Length (16) followed by the payload (which may be
// longer than a block's symbols: its tail is then padding).
type slot struct {
	pn  uint64
	ok  bool
	buf []byte
	// lent: the payload, lent by the caller until Keep (then buf is not
	// the symbol).
	lent []byte
}

// block is what REPAIR frames told of one block.
type block struct {
	id      uint64
	k, m, s int
	rep     [][]byte  // repair symbols by index (buffers kept across blocks)
	got     [4]uint64 // repair indices received
	nrep    int
	decided bool
	last    time.Time // when its last symbol arrived
}

func (b *block) end() uint64 { return b.id + uint64(b.k+b.m) }

// maxBlocks bounds the blocks a decoder tracks; past it the oldest are
// decided (given up) early. Blocks follow each other: a handful are open at
// a time.
const maxBlocks = 32

// NewDecoder returns a decoder for a session with the FEC parameters
// cfg.Params.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	if err := cfg.Params.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReorderThreshold <= 0 {
		cfg.ReorderThreshold = 3
	}
	if cfg.ReorderDelay <= 0 {
		cfg.ReorderDelay = 20 * time.Millisecond
	}
	// Room for two blocks' worth of packets: a block's repair packets
	// arrive while its source packets are still in the ring.
	n := 1 << bits.Len(uint(2*(cfg.Params.MaxSourceCount+cfg.Params.MaxRepairCount)-1))
	d := &Decoder{cfg: cfg, ring: make([]slot, n), mask: uint64(n - 1)}
	m := cfg.Params.MaxRepairCount
	d.mat = make([]byte, 0, 2*m*m)
	if haveGFNI {
		d.gfniTab = new([256]uint64)
		for c := range 256 {
			d.gfniTab[c] = mulMatrix(byte(c))
		}
	}
	return d, nil
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() DecoderStats { return d.st }

// see records that packet pn arrived, and gives up the blocks whose
// repair packets are then not to come any more by packet numbers (see
// Expire): now, while their packets are still in the ring, so that what
// they lack is counted right even when many more packets follow before the
// next Expire.
func (d *Decoder) see(pn uint64) {
	if d.have && pn <= d.largest {
		return
	}
	d.largest, d.have = pn, true
	for _, b := range d.blocks {
		if !b.decided && pn >= b.end()+uint64(d.cfg.ReorderThreshold) {
			d.decide(b)
		}
	}
}

// Source keeps a copy of the plaintext payload of packet pn, which arrived
// (and was authenticated by its AEAD), for the block it belongs to; if
// that block now has enough symbols, its lost packets are rebuilt.
func (d *Decoder) Source(pn uint64, payload []byte) { d.source(pn, payload, false) }

// Lend is Source without the copy: the decoder uses payload in place until
// the next Keep, which copies it only if its block may still need it. The
// caller must not change payload before then.
func (d *Decoder) Lend(pn uint64, payload []byte) { d.source(pn, payload, true) }

// Keep ends the loans of payloads since the last Keep: it copies those
// whose blocks are not decided (unknown yet, or still waiting for
// symbols) and lets go of the others, which nothing reads any more. The
// caller may then reuse their buffers. A receiver that reads datagrams in
// batches lends each batch's payloads and calls Keep before reusing its
// buffers: a block whose repair packets came in the same batch as its
// source packets is then decided without a copy of them.
func (d *Decoder) Keep() {
	for _, pn := range d.lent {
		s := &d.ring[pn&d.mask]
		if s.pn != pn || s.lent == nil {
			continue // its place was taken since
		}
		if d.sourceDecided(pn) {
			s.ok, s.lent = false, nil
			continue
		}
		s.keep(s.lent)
	}
	d.lent = d.lent[:0]
}

// sourceDecided reports whether pn is a source packet of a decided block.
func (d *Decoder) sourceDecided(pn uint64) bool {
	for _, b := range d.blocks {
		if pn >= b.id && pn < b.id+uint64(b.k) {
			return b.decided
		}
	}
	return false
}

// keep copies payload into s's own buffer, as its symbol.
func (s *slot) keep(payload []byte) {
	n := len(payload)
	s.buf = append(append(s.buf[:0], byte(n>>8), byte(n)), payload...)
	s.lent = nil
}

func (d *Decoder) source(pn uint64, payload []byte, lend bool) {
	if 2+len(payload) > MaxSymbolLen {
		return
	}
	d.see(pn)
	s := &d.ring[pn&d.mask]
	s.pn, s.ok = pn, true
	if lend {
		s.lent = payload
		d.lent = append(d.lent, pn)
	} else {
		s.keep(payload)
	}
	for _, b := range d.blocks {
		if !b.decided && pn >= b.id && pn < b.id+uint64(b.k) {
			d.try(b)
			return
		}
	}
}

// Repair takes the REPAIR frame r of packet pn, which arrived at now.
func (d *Decoder) Repair(r *Repair, pn uint64, now time.Time) {
	d.see(pn)
	d.st.RepairPackets++
	end := r.BlockID + uint64(r.SourceCount+r.RepairCount)
	var b *block
	at := len(d.blocks)
	for i, x := range d.blocks {
		if x.id == r.BlockID {
			b = x
			break
		}
		if r.BlockID < x.end() && x.id < end {
			d.st.BadRepair++ // overlaps another block
			return
		}
		if x.id > r.BlockID && at == len(d.blocks) {
			at = i
		}
	}
	switch {
	case b == nil && d.largest >= r.BlockID+uint64(len(d.ring)):
		// Its source packets have left the ring (and it may have been
		// decided and forgotten).
		d.st.UnusedRepair++
		return
	case b == nil:
		b = d.newBlock(r, at)
	case b.k != r.SourceCount || b.m != r.RepairCount || b.s != len(r.Symbol):
		d.st.BadRepair++
		return
	}
	if b.decided {
		d.st.UnusedRepair++
		return
	}
	w, bit := r.Index/64, uint64(1)<<(r.Index%64)
	if b.got[w]&bit != 0 {
		return // a copy (the replay window keeps these out)
	}
	b.got[w] |= bit
	b.nrep++
	b.last = now
	b.rep[r.Index] = append(b.rep[r.Index][:0], r.Symbol...)
	d.known = max(d.known, end)
	d.try(b)
}

// newBlock starts tracking the block r describes, at index at of d.blocks.
func (d *Decoder) newBlock(r *Repair, at int) *block {
	if len(d.blocks) >= maxBlocks {
		d.decide(d.blocks[0])
		d.blocks = d.blocks[1:]
		at--
	}
	var b *block
	if n := len(d.spare); n > 0 {
		b, d.spare = d.spare[n-1], d.spare[:n-1]
	} else {
		b = &block{}
	}
	rep := b.rep
	if cap(rep) < r.RepairCount {
		rep = make([][]byte, r.RepairCount)
		copy(rep, b.rep)
	}
	*b = block{id: r.BlockID, k: r.SourceCount, m: r.RepairCount, s: len(r.Symbol), rep: rep[:r.RepairCount]}
	d.blocks = append(d.blocks, nil)
	copy(d.blocks[at+1:], d.blocks[at:])
	d.blocks[at] = b
	return b
}

// holds reports whether the ring holds packet pn.
func (d *Decoder) holds(pn uint64) bool {
	s := &d.ring[pn&d.mask]
	return s.ok && s.pn == pn
}

// missing lists the indices of b's source packets the ring lacks.
func (d *Decoder) missing(b *block) []int {
	d.miss = d.miss[:0]
	for i := range b.k {
		if !d.holds(b.id + uint64(i)) {
			d.miss = append(d.miss, i)
		}
	}
	return d.miss
}

// try decides b if it lacks nothing, or rebuilds what it lacks if it has
// enough repair symbols.
func (d *Decoder) try(b *block) {
	miss := d.missing(b)
	switch {
	case len(miss) == 0:
		b.decided = true
	case len(miss) <= b.nrep:
		d.decode(b, miss)
	}
}

// decode rebuilds the source packets miss of b from the others and as many
// repair symbols. With e = len(miss), repair rows j_1..j_e give
//
//	R_j + Σ_{i present} C(j,i)·X_i = Σ_{i missing} C(j,i)·X_i
//
// whose left sides (the syndromes, computed in place in the repair
// buffers) and the inverse of the e×e Cauchy matrix on the right give the
// missing symbols: e·(k−e) + e² slice multiplications, and an e×e
// inversion — not the k×k one of a general decoder.
func (d *Decoder) decode(b *block, miss []int) {
	b.decided = true
	e := len(miss)
	for _, i := range miss {
		d.lost[i] = true
	}
	defer func() {
		for _, i := range miss {
			d.lost[i] = false
		}
	}()
	d.rows = d.rows[:0]
	for j := 0; j < b.m && len(d.rows) < e; j++ {
		if b.got[j/64]&(1<<(j%64)) != 0 {
			d.rows = append(d.rows, j)
		}
	}
	for i := range b.k {
		if s := &d.ring[(b.id+uint64(i))&d.mask]; !d.lost[i] && s.lent != nil {
			s.keep(s.lent) // the symbol, in a buffer of the decoder's own
		}
	}
	for i := range b.k {
		if src := d.ring[(b.id+uint64(i))&d.mask].buf; !d.lost[i] && len(src) > b.s {
			// The symbol leaves out the payload's tail, which must be
			// padding.
			if len(src) > b.s+MaxPadding || !zeros(src[b.s:]) {
				d.fail(b, e, true) // a payload longer than the block's symbols
				return
			}
		}
	}
	if d.gfniTab != nil {
		d.syndromesGFNI(b)
	} else {
		for _, j := range d.rows {
			syn := b.rep[j][:b.s]
			for i := range b.k {
				if !d.lost[i] {
					src := d.ring[(b.id+uint64(i))&d.mask].buf
					d.ll.GalMulSliceXor(Coefficient(j, i), src[:min(len(src), b.s)], syn)
				}
			}
		}
	}
	if !d.invert(b, miss) {
		d.fail(b, e, true)
		return
	}
	inv := d.mat // row c, columns e..2e-1: the inverse
	for c, i := range miss {
		s := &d.ring[(b.id+uint64(i))&d.mask]
		out := s.buf[:0]
		if cap(out) < b.s {
			out = make([]byte, b.s, max(b.s, 1280))
		}
		out = out[:b.s]
		clear(out)
		for a, j := range d.rows {
			d.ll.GalMulSliceXor(inv[c*2*e+e+a], b.rep[j][:b.s], out)
		}
		// A payload longer than the symbol ends in padding the symbol
		// leaves out: zeros.
		n := int(out[0])<<8 | int(out[1])
		if 2+n > b.s+MaxPadding {
			s.ok = false
			d.fail(b, e, true)
			return
		}
		if 2+n > b.s {
			if cap(out) < 2+n {
				out = append(out, make([]byte, 2+n-len(out))...)
			}
			clear(out[b.s : 2+n])
		}
		s.pn, s.ok, s.buf, s.lent = b.id+uint64(i), true, out[:2+n], nil
	}
	for _, i := range miss {
		d.ready = append(d.ready, b.id+uint64(i))
	}
	d.st.Recovered += uint64(e)
	d.st.BlocksRecovered++
}

// syndromesGFNI computes the syndromes of decode with the GFNI kernel:
// the block's received source symbols times the coefficients of the repair
// rows used (up to ten per pass over the symbols, the lost ones replaced
// by zeros), added to those rows' repair symbols. One pass reads each
// source symbol once for ten rows, where the library's slice
// multiplication reads it once per row (e·(k−e) passes of a symbol).
func (d *Decoder) syndromesGFNI(b *block) {
	n, e := roundUp64(b.s), len(d.rows)
	if len(d.zero) < n {
		d.zero = make([]byte, n)
	}
	d.gin = d.gin[:0]
	for i := range b.k {
		if d.lost[i] {
			d.gin = append(d.gin, d.zero[:n])
			continue
		}
		s := &d.ring[(b.id+uint64(i))&d.mask]
		if cap(s.buf) < n {
			s.buf = append(make([]byte, 0, n), s.buf...)
		}
		// The symbol is the payload's first bytes then zeros, to n: the
		// buffer is zeroed past the payload (the tail of a longer payload is
		// padding, zeros already).
		if l := len(s.buf); l < n {
			clear(s.buf[l:n])
		}
		d.gin = append(d.gin, s.buf[:n])
	}
	// Passes of ten rows; of four when four do (the usual few losses): a
	// pass costs about as many multiplications as it has outputs.
	outs, kernel := gfniOutputs, gfniMulAdd10
	if e <= gfniSmallOutputs {
		outs, kernel = gfniSmallOutputs, gfniMulAdd4
	}
	groups := roundUp(e, outs) / outs
	for len(d.gout) < groups*outs {
		d.gout = append(d.gout, nil)
	}
	for o := range d.gout[:groups*outs] {
		if cap(d.gout[o]) < n {
			d.gout[o] = make([]byte, n)
		}
		d.gout[o] = d.gout[o][:n]
	}
	if need := b.k * outs; cap(d.gmat) < need {
		d.gmat = make([]uint64, need)
	}
	mat := d.gmat[:b.k*outs]
	for g := range groups {
		for i := range b.k {
			for o := range outs {
				var c uint64
				if a := g*outs + o; a < e && !d.lost[i] {
					c = d.gfniTab[Coefficient(d.rows[a], i)]
				}
				mat[i*outs+o] = c
			}
		}
		kernel(&mat[0], &d.gin[0], b.k, &d.gout[g*outs], n)
	}
	for a, j := range d.rows {
		syn := b.rep[j][:b.s]
		subtle.XORBytes(syn, syn, d.gout[a][:b.s])
	}
}

// fail decides b as unrecoverable with e packets missing.
func (d *Decoder) fail(b *block, e int, bad bool) {
	b.decided = true
	d.st.BlocksUnrecoverable++
	d.st.Unrecovered += uint64(e)
	if bad {
		d.st.BadRepair++
	}
}

// invert fills d.mat with [A | A⁻¹] reduced to [I | A⁻¹], where A[a][c] =
// C(rows[a], miss[c]). A Cauchy matrix is never singular; false means a
// bug or a forged block.
func (d *Decoder) invert(b *block, miss []int) bool {
	e := len(miss)
	w := 2 * e
	m := d.mat[:e*w]
	clear(m)
	for a, j := range d.rows {
		for c, i := range miss {
			m[a*w+c] = Coefficient(j, i)
		}
		m[a*w+e+a] = 1
	}
	for col := range e {
		p := col
		for p < e && m[p*w+col] == 0 {
			p++
		}
		if p == e {
			return false
		}
		if p != col {
			for x := range w {
				m[p*w+x], m[col*w+x] = m[col*w+x], m[p*w+x]
			}
		}
		if f := m[col*w+col]; f != 1 {
			inv := gfInv(f)
			for x := range w {
				m[col*w+x] = gfMul(m[col*w+x], inv)
			}
		}
		for r := range e {
			if f := m[r*w+col]; r != col && f != 0 {
				for x := range w {
					m[r*w+x] ^= gfMul(f, m[col*w+x])
				}
			}
		}
	}
	// The rows of the inverse are the right halves; Decode reads them as
	// inv[c*w+e+a] through d.mat.
	d.mat = m
	return true
}

// Skip reports whether the datagram of packet number pn, not opened yet,
// need not be: pn is among the repair packets of a known block that is
// decided (it lacks nothing, or was rebuilt or given up), so that its
// REPAIR frame would only be counted unused. It counts the datagrams it
// skips. pn is not authenticated: a forged number can only make the
// caller skip a datagram that was not needed (a forged datagram fails its
// AEAD anyway), so Skip changes nothing else.
func (d *Decoder) Skip(pn uint64) bool {
	for _, b := range d.blocks {
		if pn >= b.id+uint64(b.k) && pn < b.end() {
			if b.decided {
				d.st.RepairSkipped++
			}
			return b.decided
		}
	}
	return false
}

// MaxSourceCount is the session's K: the source packets of a full block.
func (d *Decoder) MaxSourceCount() int { return d.cfg.Params.MaxSourceCount }

// Newest returns the block ID, source and repair counts of the newest
// block known (whose REPAIR frames came), if any.
func (d *Decoder) Newest() (id uint64, k, m int, ok bool) {
	if len(d.blocks) == 0 {
		return 0, 0, 0, false
	}
	b := d.blocks[len(d.blocks)-1]
	return b.id, b.k, b.m, true
}

// Ready reports whether a rebuilt packet waits for Next. The caller should
// take it before it gives the decoder packets past the ring's reach after
// it (twice a block's packets): Next no longer hands out a packet whose
// place in the ring a later packet took.
func (d *Decoder) Ready() bool { return d.head < len(d.ready) }

// Next hands out the next rebuilt packet: its number and plaintext payload,
// valid until the decoder's next call. ok is false when none is waiting.
func (d *Decoder) Next() (pn uint64, payload []byte, ok bool) {
	for d.head < len(d.ready) {
		pn = d.ready[d.head]
		d.head++
		if s := &d.ring[pn&d.mask]; s.ok && s.pn == pn {
			return pn, s.buf[2:], true
		}
	}
	d.ready, d.head = d.ready[:0], 0
	return 0, nil, false
}

// Expire gives up the blocks whose missing repair packets will not come
// any more at now (see DecoderConfig), counting what they could not
// rebuild, and forgets decided blocks whose packets have left the ring.
func (d *Decoder) Expire(now time.Time) {
	keep := d.blocks[:0]
	for _, b := range d.blocks {
		if !b.decided && (d.largest >= b.end()+uint64(d.cfg.ReorderThreshold) || now.Sub(b.last) >= d.cfg.ReorderDelay) {
			d.decide(b)
		}
		if b.decided && d.largest >= b.id+uint64(len(d.ring)) {
			d.spare = append(d.spare, b)
			continue
		}
		keep = append(keep, b)
	}
	clear(d.blocks[len(keep):])
	d.blocks = keep
}

// decide gives b up: whatever it lacks now stays lost.
func (d *Decoder) decide(b *block) {
	if b.decided {
		return
	}
	if miss := d.missing(b); len(miss) > 0 {
		d.fail(b, len(miss), false)
		return
	}
	b.decided = true
}

// Deadline is when Expire has something to give up by time, if anything.
func (d *Decoder) Deadline() (time.Time, bool) {
	var t time.Time
	for _, b := range d.blocks {
		if !b.decided {
			if dl := b.last.Add(d.cfg.ReorderDelay); t.IsZero() || dl.Before(t) {
				t = dl
			}
		}
	}
	return t, !t.IsZero()
}

// Pending reports whether a packet older than pn may still be rebuilt: a
// block that starts before pn is undecided, or packets before pn are past
// every block known so far (their block's repair packets have not come yet). The receiver
// holds stream holes back while it is so (for a bounded time).
func (d *Decoder) Pending(pn uint64) bool {
	for _, b := range d.blocks {
		if !b.decided && b.id < pn {
			return true
		}
	}
	return pn > d.known
}

// zeros reports whether b holds only zero bytes.
func zeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
