// Package forger is a key-holding attacker for the project's adversarial
// tests: it knows a session's parameters and keys, as every receiver of a
// symmetric session does, and builds packets sealed with them — forged
// pushes, floods of promises, huge Content-Length headers, sparse stream
// IDs, one-byte stream-0 frames, packet-number jumps, forged MANIFEST
// frames — and sends them, or replays captured packets, to the session's
// group from the session's source address.
//
// A Forger only builds packets; a Sink sends them: Dial (a UDP socket bound
// to the source address, for loopback and for a forger on the sender's
// host), DialSpoofed (a raw IPv4 socket that writes any source address,
// for a forger on another host of a test network; root only) or SinkFunc
// (straight into a receiver's HandlePacket, for tests on an injectable
// clock). Every socket names its interface and sends with TTL 1.
//
// It learns a session from its advertisement (Discover reads it over TLS,
// like any receiver) and keeps its forgeries in step with the real sender
// by observing real packets (Observe): the next packet number, the end of
// stream 0, the next push stream and push ID.
package forger

import (
	"errors"
	"fmt"
	"sync"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// MaxPacketSize is the largest packet the forger builds.
const MaxPacketSize = 1200

// Forger builds packets sealed with a session's keys. Its methods are safe
// for concurrent use.
type Forger struct {
	params mquic.Params
	pnLen  int

	mu         sync.Mutex
	prot       *protect.Protector
	open       *protect.Protector
	nextPN     uint64
	largest    uint64 // largest real packet number observed
	observed   bool
	stream0    uint64 // next offset of stream 0
	nextStream uint64 // next push stream ID
	nextPush   uint64 // next push ID
}

// New returns a forger for the session p (whose keys it must hold). Its
// first packet number is 0, its stream-0 offset 0, its first push stream 3
// and its first push ID 0 until set or observed.
func New(p mquic.Params) (*Forger, error) {
	p = p.Clone()
	prot, err := p.Protector()
	if err != nil {
		return nil, fmt.Errorf("forger: %w", err)
	}
	return &Forger{params: p, pnLen: p.PNLen(), prot: prot, open: prot.Clone(), nextStream: 3}, nil
}

// FromAdvertisement returns a forger for the advertised session.
func FromAdvertisement(ad *altsvc.Advertisement) (*Forger, error) {
	if ad.Session.CipherSuite != protect.SuiteNull && len(ad.Session.Secret) == 0 && len(ad.Session.Key) == 0 {
		return nil, errors.New("forger: the advertisement carries no keys (read it over TLS)")
	}
	return New(ad.Session)
}

// Params returns the session's parameters.
func (f *Forger) Params() mquic.Params { return f.params.Clone() }

// SetNextPN sets the packet number of the next packet Seal builds: a
// packet-number jump when far ahead of the real sender's.
func (f *Forger) SetNextPN(pn uint64) {
	f.mu.Lock()
	f.nextPN = pn
	f.mu.Unlock()
}

// NextPN returns the packet number of the next packet Seal builds.
func (f *Forger) NextPN() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nextPN
}

// SetStream0Offset sets where the next forged frame on stream 0 starts.
func (f *Forger) SetStream0Offset(off uint64) {
	f.mu.Lock()
	f.stream0 = off
	f.mu.Unlock()
}

// SetNextStream sets the ID of the next push stream (a server-initiated
// unidirectional stream ID: 3 modulo 4).
func (f *Forger) SetNextStream(id uint64) {
	f.mu.Lock()
	f.nextStream = id
	f.mu.Unlock()
}

// SetNextPushID sets the next push ID a forged push takes.
func (f *Forger) SetNextPushID(id uint64) {
	f.mu.Lock()
	f.nextPush = id
	f.mu.Unlock()
}

// Seal returns a packet carrying payload (QUIC frames) with the next packet
// number, padded to the minimum header protection needs.
func (f *Forger) Seal(payload []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	pn := f.nextPN
	f.nextPN++
	return f.sealLocked(pn, payload)
}

// SealPN returns a packet carrying payload with packet number pn, leaving
// the next packet number as it is: a replay of a number, or a one-off jump.
func (f *Forger) SealPN(pn uint64, payload []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sealLocked(pn, payload)
}

func (f *Forger) sealLocked(pn uint64, payload []byte) []byte {
	sid := f.params.SessionID
	b := wire.AppendShortHeader(make([]byte, 0, 1+len(sid)+f.pnLen+len(payload)+64), sid, pn, f.pnLen)
	b = append(b, payload...)
	if min := f.prot.MinPayload(f.pnLen); len(payload) < min {
		b = wire.AppendPadding(b, min-len(payload))
	}
	return f.prot.Seal(b, 1+len(sid), pn)
}

// MaxPayload is the most frame bytes one packet of Seal carries within
// MaxPacketSize.
func (f *Forger) MaxPayload() int {
	return MaxPacketSize - 1 - len(f.params.SessionID) - f.pnLen - f.prot.Overhead()
}

// Observed is what Observe read from a real packet.
type Observed struct {
	PN     uint64
	Frames []wire.Frame // aliasing the copy Observe decrypted
}

// Observe opens a copy of a real packet of the session and moves the
// forger's state past it: the next packet number, the end of stream 0, the
// next push stream ID and, from push stream headers and PUSH_PROMISE frames
// that start a STREAM frame, the next push ID. pkt is not modified.
func (f *Forger) Observe(pkt []byte) (Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := append([]byte(nil), pkt...)
	dcid, pnOff, err := wire.ParseShortHeader(c, len(f.params.SessionID))
	if err != nil || string(dcid) != string(f.params.SessionID) {
		return Observed{}, fmt.Errorf("forger: observe: not a packet of the session")
	}
	pn, payload, err := f.open.Open(c, pnOff, f.pnLen, f.largest, f.observed)
	if err != nil {
		return Observed{}, fmt.Errorf("forger: observe: %w", err)
	}
	if !f.observed || pn > f.largest {
		f.largest, f.observed = pn, true
	}
	f.nextPN = max(f.nextPN, pn+1)
	var frames []wire.Frame
	for len(payload) > 0 {
		var fr wire.Frame
		n, err := wire.ParseFrame(payload, &fr)
		if err != nil {
			break // a MANIFEST frame, or another extension: the rest is not ours to read
		}
		payload = payload[n:]
		frames = append(frames, fr)
		if !fr.Type.IsStream() {
			continue
		}
		s := &fr.Stream
		end := s.Offset + uint64(len(s.Data))
		switch {
		case s.StreamID == 0:
			f.stream0 = max(f.stream0, end)
			if s.Offset == 0 || len(s.Data) > 0 {
				if id, ok := promisedPushID(s.Data); ok {
					f.nextPush = max(f.nextPush, id+1)
				}
			}
		case s.StreamID%4 == 3:
			f.nextStream = max(f.nextStream, s.StreamID+4)
			if s.Offset == 0 {
				if id, ok := pushStreamID(s.Data); ok {
					f.nextPush = max(f.nextPush, id+1)
				}
			}
		}
	}
	return Observed{PN: pn, Frames: frames}, nil
}
