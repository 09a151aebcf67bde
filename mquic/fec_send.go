package mquic

import (
	"fmt"
	"time"

	"github.com/h3m-project/h3m/mquic/fec"
)

// Forward error correction at the sender (spec/transport.md, "Forward error
// correction"). Every packet's plaintext payload is added to the open
// block's repair symbols as the packet is sealed (finishPacket); when the
// block closes (full, at its deadline, or on Close) its repair packets are
// sealed at once, before any other packet, so that every block is a run of
// consecutive packet numbers followed by its repair packets.

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
// 1200-byte packets: 1.8 %). The sender adds
// the overhead the parameters allow: MaxRepairCount per MaxSourceCount.
func (s *Sender) setupFEC(p *Params) error {
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
	s.payloadEnd = s.hdrLen + payload
	return nil
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

// fecAdd adds the packet being filled (not yet sealed) to the open block and
// reports whether the block is full.
func (s *Sender) fecAdd() bool {
	payload := s.cur[s.hdrLen:]
	worthy := s.curTrigger && !onlyPingOrPadding(payload)
	return s.fec.Add(s.curPN, payload, worthy, s.curSince)
}

// fecClose closes the open block and seals its repair packets (and any
// still pending).
func (s *Sender) fecClose() error {
	s.fec.Close()
	return s.emitRepairs()
}

// emitRepairs computes and seals the pending repair packets of the closed
// block, each a packet of its own, before any other packet: while it runs
// (fecEmitting), writers of data and manifests wait (ensurePacket). It
// computes the repair symbols without the lock, so that the writer goes on
// writing the packets already queued meanwhile. On the writer's goroutine
// it does not wait for room (errQueueFull): the repairs stay pending, and
// no packet starts before they are sealed.
func (s *Sender) emitRepairs() error {
	if s.fec == nil || s.fecEmitting {
		return nil
	}
	s.fecEmitting = true
	defer func() {
		s.fecEmitting = false
		s.cond.Broadcast() // writers waiting for the repairs to be sealed
	}()
	if s.fec.NeedsEncode() {
		// inWriter describes the goroutine that holds the lock: not ours
		// while we do without it.
		inWriter := s.inWriter
		s.inWriter = false
		s.mu.Unlock()
		s.fec.Encode()
		s.mu.Lock()
		s.inWriter = inWriter
	}
	for s.fec.Pending() > 0 {
		if s.cur != nil {
			panic("mquic: a packet was started while repair packets were pending")
		}
		if !s.slotFree() {
			if s.inWriter {
				return errQueueFull
			}
			s.repairWaiting = true
			s.roomWaiters++
			err := s.wait()
			s.roomWaiters--
			s.repairWaiting = false
			if err != nil {
				return err
			}
			if err := s.usable(); err != nil && !s.closed {
				return err
			}
			continue
		}
		s.startPacket()
		s.cur = s.fec.AppendNext(s.cur)
		s.curRepair = true
		if err := s.finishPacket(); err != nil {
			return err
		}
	}
	s.fecEmitting = false
	s.cond.Broadcast()
	// Manifests that fell due while the repairs were sealed.
	if s.signer != nil && s.signer.Ready() {
		return s.emitManifests(false)
	}
	return nil
}

// fecFirst seals the pending repair packets before the caller starts a
// packet, or, when another goroutine is sealing them, waits until it has.
func (s *Sender) fecFirst() error {
	if !s.fecEmitting {
		return s.emitRepairs()
	}
	if s.inWriter {
		return errQueueFull
	}
	s.roomWaiters++
	err := s.wait()
	s.roomWaiters--
	if err != nil {
		return err
	}
	return s.usable()
}

// fecTimers closes the open block at its deadline and seals repairs still
// pending; it runs on the writer's goroutine (timers) and returns how long
// until the deadline of the open block (-1: none).
func (s *Sender) fecTimers(now time.Time) time.Duration {
	if s.fec == nil || s.err != nil {
		return -1
	}
	if s.fec.Pending() > 0 {
		if err := s.emitRepairs(); err != nil {
			return time.Millisecond / 10 // queue full: after the next write
		}
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
	if _, ok := s.fec.Deadline(); ok {
		_ = s.fecClose()
	}
	s.flushTo = s.tail
	return -1
}
