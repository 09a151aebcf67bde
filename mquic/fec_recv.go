package mquic

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/wire"
)

// Forward error correction at the receiver (spec/transport.md, "Forward
// error correction"). The payload of every packet that opens (its AEAD
// verified, its frames valid) goes to the decoder, and so does every REPAIR
// frame, even before a manifest authenticates the packet in an asymmetric
// session: what the decoder rebuilds is checked again. A rebuilt payload is
// protected again with its packet number, which gives back the datagram as
// sent, and that datagram is processed like one read from the socket:
// replay window, manifests, frames. It is processed at once, before the
// rest of the packet whose payload or REPAIR frame completed the block:
// the decoder holds a rebuilt payload in its ring of recent packets, where
// the packets that follow in the same read may take its place. Stream holes
// wait (a bounded time) while the decoder may still rebuild a packet before
// them.
//
// Repair packets of a block the decoder has decided are dropped unopened,
// by their packet numbers (publishHint, skipRepair; spec "Blocks at the
// receiver").
//
// Those waits, and the decoder's for a block's missing repair packets,
// count only time in which the receiver had drained its socket: time spent
// reading a backlog (reads that fill the batch) does not count, since the
// repair packets waited for may be in it.

// recvFEC is a receiver's FEC state.
type recvFEC struct {
	dec *fec.Decoder
	buf []byte   // the rebuilt datagram
	pkt rxPacket // its processing
	op  opener   // opens it (the packet that completed its block may still be in seq's frame space)
	src netip.AddrPort
	// rebuilding: rebuilt packets are being processed (the processing of
	// one of them is not to start that of the next).
	rebuilding bool

	// The decoder's clock: the receiver's, less behind.
	last     time.Time     // when the read being handled was made
	lastFull bool          // it filled the batch: the time until the next read does not count
	behind   time.Duration // time between reads that followed a full one
	// The last call of clock: its now and what it returned.
	atFor, at time.Time

	// Which packet numbers are likely repair packets that the ordered
	// processing may skip (repairLikely): Run's openers leave those
	// unopened. Written by the ordered processing, read by the openers;
	// a torn pair only makes an opener leave another packet to the ordered
	// processing, which opens it.
	// skip: repair packets not needed may be skipped (symmetric sessions
	// only: see spec, "Blocks at the receiver").
	skip      bool
	hintBase  atomic.Uint64 // the newest known block's ID
	hintShape atomic.Uint64 // its k | m<<9 | full<<18 (0: no hint)
}

// hintHorizon is how many blocks past the newest known one the hint
// predicts, when that one was full: blocks of a bulk transfer follow each
// other with the same counts, and Run's reading runs at most a few batches
// (of up to a few hundred packets each) ahead of the ordered processing.
const hintHorizon = 16

// publishHint tells the openers the repair packets to expect from the
// newest block the decoder knows: the rest of its own, and, if it was full
// (K source packets), those of the blocks that follow if they are alike.
// The first repair packet of each predicted block is left out: it tells
// the decoder of its block, which then decides whether the rest is
// needed.
func (f *recvFEC) publishHint() {
	id, k, m, ok := f.dec.Newest()
	if !ok || !f.skip {
		return
	}
	shape := uint64(k) | uint64(m)<<9
	if k == f.dec.MaxSourceCount() {
		shape |= 1 << 18
	}
	if id == f.hintBase.Load() && shape == f.hintShape.Load() {
		return // (only the ordered processing writes the hint)
	}
	f.hintShape.Store(0) // (no torn hint while it changes)
	f.hintBase.Store(id)
	f.hintShape.Store(shape)
}

// repairLikely reports whether the hint expects packet pn to be a repair
// packet, past the first, of the newest known block or of one predicted.
func (f *recvFEC) repairLikely(pn uint64) bool {
	shape := f.hintShape.Load()
	if shape == 0 {
		return false
	}
	base := f.hintBase.Load()
	k, n := shape&0x1ff, shape&0x1ff+shape>>9&0x1ff
	if pn <= base+k || n == 0 {
		return false
	}
	span := pn - base
	if span >= n && (shape>>18 == 0 || span >= hintHorizon*n) {
		return false
	}
	return span%n > k
}

// skipRepair drops, unopened, a datagram that an opener left for the
// ordered processing if it is a repair packet the decoder does not need
// (Decoder.Skip).
func (r *Receiver) skipRepair(p *rxPacket) bool {
	if r.fec == nil || !r.fec.skip {
		return false
	}
	pn := p.truncated
	if r.win.have {
		pn = wire.DecodePacketNumber(r.win.largest, p.truncated, p.pnLen)
	}
	if r.win.check(pn) != pnNew || !r.fec.dec.Skip(pn) {
		return false
	}
	// It arrived: not a loss, and a copy is a duplicate. (The number is in
	// the range of a block that authenticated REPAIR frames told of.)
	r.win.markAt(pn, r.now)
	if r.tr != nil {
		r.tr.arrived(pn)
		r.tr.droppedPN(pn, len(p.pkt), dropRepairSkipped)
	}
	return true
}

// clock returns the decoder's time at the read made at now, which filled
// the batch if full.
func (f *recvFEC) clock(now time.Time, full bool) time.Time {
	if full == f.lastFull && !f.atFor.IsZero() && now.Equal(f.atFor) {
		// Every packet of a read asks: after its first, nothing moves.
		return f.at
	}
	if !f.last.IsZero() && now.After(f.last) && f.lastFull {
		f.behind += now.Sub(f.last)
	}
	if f.last.IsZero() || now.After(f.last) {
		f.last = now
	}
	f.lastFull = full
	f.atFor, f.at = now, now.Add(-f.behind)
	return f.at
}

// fecClock returns the decoder's time at the read made at now, and tells
// the reassembler how far behind the receiver's clock it is.
func (r *Receiver) fecClock(now time.Time) time.Time {
	t := r.fec.clock(now, r.readFull)
	r.ra.fecBehind = r.fec.behind
	return t
}

// setupFEC creates the decoder of a session that advertises FEC. A scheme
// this receiver does not implement leaves the extension unknown: REPAIR
// frames are then dropped with their packets, which carry nothing else.
func (r *Receiver) setupFEC(p *Params) error {
	fp, err := sessionFEC(p)
	if errors.Is(err, fec.ErrUnknownScheme) {
		r.log.Info("session advertises an unknown FEC scheme; receiving without FEC", "err", err)
		return nil
	}
	if err != nil || fp == nil {
		return err
	}
	dec, err := fec.NewDecoder(fec.DecoderConfig{Params: *fp, ReorderThreshold: r.cfg.ReorderThreshold, ReorderDelay: r.cfg.ReorderDelay})
	if err != nil {
		return err
	}
	r.fec = &recvFEC{dec: dec, src: netip.AddrPortFrom(r.source, 0), op: r.newOpener(r.prot), skip: !r.asym}
	// A block's repair packets are sealed at most BlockTime after its first
	// packet; they may then wait in the sender's queue and on the path.
	r.ra.fecWait = 2*fp.BlockTime + r.cfg.ReorderDelay
	r.ra.fecPending = dec.Pending
	return nil
}

// noteFEC gives the decoder an opened packet: its payload, or its REPAIR
// frame, and processes the packets it rebuilt thereby.
func (r *Receiver) noteFEC(p *rxPacket) {
	switch {
	case r.fec == nil:
		return
	case p.hasRepair:
		r.fec.dec.Repair(&p.repair, p.pn, r.fecClock(r.now))
		r.fec.publishHint()
	case r.fec.rebuilding:
		// (Its payload is in a buffer the next rebuilt packet takes.)
		r.fecClock(r.now)
		r.fec.dec.Source(p.pn, p.payload)
	default:
		// Lent until the end of the read's processing (recoverFEC): a
		// block whose repair packets came in the same read is decided
		// without a copy of its payloads.
		r.fecClock(r.now)
		r.fec.dec.Lend(p.pn, p.payload)
	}
	r.processRebuilt()
}

// recoverFEC processes the packets the decoder rebuilt (none wait: noteFEC
// processes them), gives up the blocks whose repair packets will not come
// any more, and ends the loans of the read's payloads to the decoder.
func (r *Receiver) recoverFEC(now time.Time) {
	if r.fec == nil {
		return
	}
	r.processRebuilt()
	r.fec.dec.Expire(r.fecClock(now))
	// The read's buffers are reused after this.
	r.fec.dec.Keep()
}

// processRebuilt processes the packets the decoder has rebuilt, as
// datagrams read.
func (r *Receiver) processRebuilt() {
	f := r.fec
	if f.rebuilding || !f.dec.Ready() {
		return // (rebuilding: the loop below, further up the stack, takes them)
	}
	f.rebuilding = true
	defer func() { f.rebuilding = false }()
	pnLen := r.pnLen
	if pnLen == 0 {
		pnLen = r.cfg.Params.PNLen()
	}
	for {
		pn, payload, ok := f.dec.Next()
		if !ok {
			break
		}
		pkt := wire.AppendShortHeader(f.buf[:0], r.sessionID, pn, pnLen)
		pkt = append(pkt, payload...)
		pkt = r.seq.prot.Seal(pkt, 1+len(r.sessionID), pn)
		f.buf = pkt[:0]
		f.pkt = rxPacket{pkt: pkt, src: f.src}
		f.op.reset()
		f.op.open(&f.pkt, r.win.largest, r.win.have, r.pnLen)
		// Not a datagram read, though process counts it as one: Datagrams
		// plus FEC.Recovered is what ends accepted or dropped.
		r.stats.Datagrams--
		r.process(&f.pkt)
	}
}

// fecDeadline is when the decoder gives up a block by time, on the
// receiver's clock, if it waits for one.
func (r *Receiver) fecDeadline() (time.Time, bool) {
	if r.fec == nil {
		return time.Time{}, false
	}
	t, ok := r.fec.dec.Deadline()
	return t.Add(r.fec.behind), ok
}

// parseRepair parses the REPAIR frame at the start of b into the opener's
// space for the packet being parsed; a second one in a packet is an error.
func (o *opener) parseRepair(b []byte) (int, error) {
	if o.hasRepair {
		return 0, errors.New("mquic: two REPAIR frames in a packet")
	}
	n, err := fec.ParseFrame(b, &o.repair)
	o.hasRepair = err == nil
	return n, err
}
