package mquic

import (
	"errors"
	"fmt"
	"time"

	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/wire"
)

// Forward error correction at the sender (spec/transport.md, "Forward error
// correction"). Every packet's plaintext payload is kept for the open block
// as the packet is sealed (finishPacket); when the block closes (full, at
// its deadline, or on Close) its repair packets get the next slots of the
// queue and the next packet numbers, and are sealed when the writer is
// about to write them, so that every block is a run of consecutive packet
// numbers followed by its repair packets, sent in order.

// sessionFEC returns the FEC parameters the session advertises, or nil.
func sessionFEC(p *Params) (*fec.Params, error) {
	for _, e := range p.Extensions {
		if e.ID == fec.ExtensionID {
			fp, err := fec.ParseParams(e.Value)
			if err != nil {
				return nil, &ParamError{Param: "extensions", Err: fmt.Errorf("transport parameter %04x: %w", e.ID, err)}
			}
			return &fp, nil
		}
	}
	return nil, nil
}

// setupFEC creates the encoder of a session that advertises FEC, and
// shortens the packets' payload so that a repair packet, whose symbol is a
// payload plus its length, still fits in MaxPacketSize (by 21 bytes with
// 1200-byte packets: 1.8 %). Full packets are padded back to MaxPacketSize
// (fecAdd), and so are repair packets (fecSeal): a bulk transfer is one size of
// datagrams, which GSO and GRO keep in whole trains (a repair packet of
// another size would cut them at every block; the padding is left out of
// the symbols), unless unpadded (SenderConfig.FECUnpadded). The sender
// adds the overhead the parameters allow: MaxRepairCount per
// MaxSourceCount.
func (s *Sender) setupFEC(p *Params, unpadded bool) error {
	fp, err := sessionFEC(p)
	if err != nil || fp == nil {
		return err
	}
	room := s.payloadEnd - s.hdrLen
	payload := room - 2 - fec.MaxFrameOverhead(room)
	for payload > 0 && 2+payload+fec.MaxFrameOverhead(2+payload) > room {
		payload--
	}
	// Symbols of a multiple of 64 bytes are what the vectorized encoder
	// takes whole; a tail costs it a scalar pass per symbol pair.
	if sym := (2 + payload) &^ 63; sym >= 128 {
		payload = sym - 2
	}
	s.fec, err = fec.NewEncoder(*fp, float64(fp.MaxRepairCount)/float64(fp.MaxSourceCount), payload)
	if err != nil {
		return err
	}
	s.fecPadEnd = s.payloadEnd
	s.payloadEnd = s.hdrLen + payload
	if unpadded {
		s.fecPadEnd = s.payloadEnd // nothing to pad to
	}
	return nil
}

// SetRepairOverhead sets the share of repair packets of the FEC blocks
// that open from now on (0.1: ⌈0.1 · k⌉ repair packets for a block of k
// packets; 0: none, and no block at all), up to the session's Maximum
// Repair Count per Maximum Source Count: an adaptive policy's knob
// (spec/transport.md, "The sender's policy"). Each block carries its own
// repair count, so receivers need nothing new. It is safe for concurrent
// use; it fails in a session without FEC.
func (s *Sender) SetRepairOverhead(overhead float64) error {
	if s.fec == nil {
		return errors.New("mquic: sender: the session advertises no FEC")
	}
	return s.fec.SetOverhead(overhead)
}

// fecPadSlack: a packet filled to within this many bytes of its payload's
// end is full (what a stream write leaves is a STREAM frame header's
// worth at most), and padded to fecPadEnd.
const fecPadSlack = 64

// FECPaddingCost is what the padding of a session's full packets to the
// size of repair packets adds, per payload byte, while blocks with repair
// packets are sent (none at overhead 0, nor without FEC, nor unpadded
// (SenderConfig.FECUnpadded)): the payloads are
// shorter by what a repair packet adds to a symbol, the datagrams not.
func (s *Sender) FECPaddingCost() float64 {
	if s.fec == nil {
		return 0
	}
	return float64(s.fecPadEnd-s.payloadEnd) / float64(s.payloadEnd-s.hdrLen)
}

// MaxPayload is the largest plaintext payload of the sender's packets: its
// packet size less the header and the AEAD tag, and, in a session with
// FEC, less what a repair packet adds to a symbol.
func (s *Sender) MaxPayload() int { return s.payloadEnd - s.hdrLen }

// onlyPingOrPadding reports whether a payload holds only PING and PADDING
// frames (both one byte, 0x01 and 0x00; every other frame type has a byte
// above 1): nothing a receiver misses if it is lost.
func onlyPingOrPadding(payload []byte) bool {
	for _, b := range payload {
		if b > 1 {
			return false
		}
	}
	return true
}

// fecAdd adds the packet being filled (not yet sealed) to the open block,
// padding it to fecPadEnd if it is full, and reports whether the block is
// full.
func (s *Sender) fecAdd() bool {
	payload := s.cur[s.hdrLen:]
	worthy := s.curTrigger && !onlyPingOrPadding(payload)
	pad := 0
	if s.fecPadEnd > s.payloadEnd && s.payloadEnd-len(s.cur) <= fecPadSlack {
		// At most fecPadSlack + the 19 to 84 bytes setupFEC takes off.
		pad = min(s.fecPadEnd-len(s.cur), fec.MaxPadding)
	}
	full := s.fec.Add(s.curPN, payload, pad, worthy, s.curSince)
	if s.fec.Open() {
		// Only packets of a block: with no repair packets (overhead 0,
		// SetRepairOverhead) there is no size to match, and the padding
		// would cost what the shorter payloads save in bytes.
		s.cur = wire.AppendPadding(s.cur, pad)
	}
	return full
}

// fecReservation is the closed block whose repair packets have their slots
// in the queue and their packet numbers (right after the block's), but are
// not sealed yet: the writer seals them before the batch they fall in, computing the
// repair symbols first (without the lock, while the stream writers go on
// filling the next block). So the sealing goroutine does not pay for
// encoding, and every block is still one run of consecutive packet numbers,
// sent in order.
type fecReservation struct {
	pending bool
	first   uint64 // slot index of the first repair packet
	pn      uint64 // its packet number
	m       int
	since   time.Time
	sealing bool // a goroutine is computing or sealing them
}

// fecClose closes the open block and reserves the slots and packet numbers
// of its repair packets. The previous block's are sealed first (one closed
// block at a time). In an asymmetric session the repairs are sealed at
// once: manifests list packets in number order. It waits for room (the
// stream writers wait meanwhile: repairWaiting); on the writer's goroutine
// it does not (errQueueFull: the block closes on a later round).
func (s *Sender) fecClose() error {
	// Every wait releases the lock: look at the state again after it
	// (another goroutine may have closed the block meanwhile, and opened
	// the next).
	id, open := s.fec.OpenBlock()
	for {
		if now, still := s.fec.OpenBlock(); !open || !still || now != id {
			return nil
		}
		if s.cur != nil {
			// A stream writer started a packet while a wait below released
			// the lock: it belongs to the open block, so it is sealed first
			// (it may fill the block, which then closes on its own).
			if err := s.finishPacket(); err != nil {
				return err
			}
			continue
		}
		if s.res.pending || s.res.sealing {
			if err := s.fecSeal(); err != nil {
				return err
			}
			continue
		}
		if m := s.fec.RepairsOnClose(); m == 0 || uint64(len(s.slots))-(s.tail-s.head) >= uint64(m) {
			break
		}
		if err := s.fecWait(&s.repairWaiting); err != nil {
			return err
		}
		if err := s.usable(); err != nil && !s.closed {
			return err
		}
	}
	// The loop left with no packet started: nothing released the lock
	// since it looked.
	m := s.fec.RepairsOnClose()
	if s.fec.Close() == 0 {
		return nil
	}
	now := time.Now()
	s.res = fecReservation{pending: true, first: s.tail, pn: s.nextPN, m: m, since: now}
	for range m {
		s.since[s.tail%uint64(len(s.slots))] = now
		s.tail++
	}
	s.nextPN += uint64(m)
	if s.signer != nil {
		return s.fecSeal()
	}
	if s.tail-s.head >= uint64(s.batchN) {
		s.wakeWriter()
	}
	return nil
}

// fecWait waits (releasing the lock) for the writer to make progress, with
// *priority set meanwhile when given; on the writer's own goroutine it
// returns errQueueFull instead.
func (s *Sender) fecWait(priority *bool) error {
	if s.inWriter {
		return errQueueFull
	}
	if priority != nil {
		*priority = true
		defer func() { *priority = false }()
	}
	s.roomWaiters++
	defer func() { s.roomWaiters-- }()
	return s.wait()
}

// fecSeal computes and seals the reserved repair packets, if any. Outside
// an asymmetric session it computes the repair symbols without the lock.
// If another goroutine is at it, it waits (errQueueFull on the writer's
// goroutine, which comes back when woken).
func (s *Sender) fecSeal() error {
	for s.res.sealing {
		if err := s.fecWait(nil); err != nil {
			return err
		}
	}
	if !s.res.pending {
		return nil
	}
	s.res.sealing = true
	defer func() {
		s.res.sealing = false
		s.cond.Broadcast()
		s.wakeWriter()
	}()
	if s.fec.NeedsEncode() && s.signer == nil {
		// inWriter describes the goroutine that holds the lock: not ours
		// while we do without it.
		inWriter := s.inWriter
		s.inWriter = false
		s.mu.Unlock()
		s.fec.Encode()
		s.mu.Lock()
		s.inWriter = inWriter
	}
	r := s.res
	for j := range r.m {
		i := (r.first + uint64(j)) % uint64(len(s.slots))
		pn := r.pn + uint64(j)
		pkt := wire.AppendShortHeader(s.slots[i][:0], s.sessionID, pn, s.pnLen)
		pkt = s.fec.AppendNext(pkt)
		if s.fecPadEnd > s.payloadEnd {
			pkt = wire.AppendPadding(pkt, s.fecPadEnd-len(pkt)) // the size of full source packets
		}
		if s.tr != nil {
			s.tr.sent(pn, pkt[s.hdrLen:], len(pkt)+s.overhead)
		}
		pkt = s.prot.Seal(pkt, 1+len(s.sessionID), pn)
		if s.signer != nil {
			s.signer.Add(pn, pkt, true, r.since)
		}
		if s.onPacket != nil {
			s.onPacket(pn, pkt)
		}
		s.slots[i] = pkt
	}
	s.res = fecReservation{}
	return nil
}

// fecTimers closes the open block at its deadline; it runs on the writer's
// goroutine (timers) and returns how long until the deadline of the open
// block (-1: none).
func (s *Sender) fecTimers(now time.Time) time.Duration {
	if s.fec == nil || s.err != nil {
		return -1
	}
	due, ok := s.fec.Deadline()
	if !ok {
		return -1
	}
	if d := due.Sub(now); d > 0 {
		return d
	}
	if s.cur != nil {
		// The packet being filled belongs to the block: seal it first (it
		// may fill the block, which then closes on its own).
		if err := s.finishPacket(); err != nil {
			return time.Millisecond / 10
		}
	}
	if err := s.fecClose(); err != nil {
		return time.Millisecond / 10 // queue full: after the next write
	}
	s.flushTo = s.tail
	return -1
}

// fecReserved returns the slot index of the first reserved repair packet,
// if any: the writer seals the reserved ones (fecSeal) when they fall in the
// batch it is about to write, and never writes past them unsealed.
func (s *Sender) fecReserved() (first uint64, ok bool) {
	return s.res.first, s.fec != nil && s.res.pending
}
