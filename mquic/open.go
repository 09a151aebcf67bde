package mquic

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// rxState is what an opener made of a datagram.
type rxState uint8

const (
	rxDropped  rxState = iota // dropped for why, before its frames were looked at
	rxOpened                  // decrypted, frames parsed (or frameErr set)
	rxDeferred                // checked and unmasked, to be decrypted in order (see opener.open)
)

// rxPacket is one datagram on its way through the receiver: opened by an
// opener, on any goroutine, then processed in order (Receiver.process).
type rxPacket struct {
	pkt       []byte // the datagram; decrypted in place
	src       netip.AddrPort
	state     rxState
	why       dropReason // rxDropped: why
	dcid      []byte     // dropWrongSession: the packet's DCID (aliases pkt)
	pnLen     int
	truncated uint64 // the packet number as the header carries it
	pn        uint64
	payload   []byte
	digest    manifest.Digest // asymmetric sessions: of the packet as sent
	hashed    bool            // digest is set (hashDigests)
	frames    []wire.Frame    // its QUIC frames; aliases the opener's space
	mans      []rxManifest    // its MANIFEST frames; aliases the opener's space
	frameErr  dropReason      // dropUnknownFrame or dropBadFrame, or 0
	others    bool            // frames other than MANIFEST and PADDING
	repair    fec.Repair      // its REPAIR frame (FEC sessions), if hasRepair
	hasRepair bool
}

// rxManifest is a parsed MANIFEST frame (asymmetric sessions).
type rxManifest struct {
	m   manifest.Manifest
	sig manifest.Signature // m's signature, if verified ahead
	// claimed: m's signature is to be verified ahead, with the others of
	// its batch, once every part is opened (rxBatch.verifyClaimed).
	claimed bool
}

// opener opens packets: the checks, the digest, header protection, AEAD and
// frame parsing of each packet, which need nothing from the packets before
// it but the largest packet number accepted. Each goroutine that opens has
// its own (a Protector is not safe for concurrent use). Its frames stay
// valid until reset.
type opener struct {
	r      *Receiver
	prot   *protect.Protector
	frames []wire.Frame
	mans   []rxManifest
	// pre, when set, claims the signatures of MANIFEST frames for
	// verification ahead as they are parsed, at now (asymmetric sessions,
	// on Run's openers, which verify them batch by batch).
	pre *manifest.Prechecker
	now time.Time
	// ahead: the opener runs ahead of the ordered processing (Run's); it
	// leaves likely repair packets to it (fec_recv.go, repairLikely).
	ahead bool
	// The REPAIR frame of the packet being parsed (fec_recv.go).
	repair    fec.Repair
	hasRepair bool
}

func (r *Receiver) newOpener(prot *protect.Protector) opener {
	return opener{r: r, prot: prot}
}

// reset makes the opener's frame space reusable: the frames of the packets
// it opened before are dropped.
func (o *opener) reset() { o.frames, o.mans = o.frames[:0], o.mans[:0] }

// decodeSafety bounds how far, in the packet-number space of a pnLen-byte
// encoding, a packet may be from the largest accepted packet number for an
// opener running ahead of the ordered processing to decode it: a quarter
// of the space. The ordered processing, whose largest packet number may
// have moved on meanwhile, then decodes it the same way unless an
// authenticated packet number jumped by more than another quarter in
// between. Shorter encodings than 3 bytes leave too little room: their
// packets are decrypted in order.
func decodeSafety(pnLen int) (uint64, bool) {
	if pnLen < 3 {
		return 0, false
	}
	return 1 << (8*pnLen - 2), true
}

// open checks and opens p against largest (have: whether any packet was
// accepted) with the session's packet-number length pnLen (0: not learnt
// yet). When it cannot be sure to decode the packet number as the ordered
// processing would, it stops after header protection (rxDeferred).
func (o *opener) open(p *rxPacket, largest uint64, have bool, pnLen int) {
	r := o.r
	pkt := p.pkt
	if p.state == rxDeferred {
		// Unmasked already by an opener that ran ahead.
		pn := p.truncated
		if have {
			pn = wire.DecodePacketNumber(largest, p.truncated, p.pnLen)
		}
		o.decrypt(p, pn)
		return
	}
	if r.source.IsValid() && p.src.Addr().Unmap() != r.source {
		p.state, p.why = rxDropped, dropWrongSource
		return
	}
	dcid, pnOffset, err := wire.ParseShortHeader(pkt, len(r.sessionID))
	if err != nil {
		p.state, p.why = rxDropped, dropNotShort
		return
	}
	if !bytes.Equal(dcid, r.sessionID) {
		p.state, p.why, p.dcid = rxDropped, dropWrongSession, dcid
		return
	}
	if pnLen == 0 {
		if o.prot.HeaderProtection() {
			pnLen = DefaultPacketNumberLen
		} else {
			pnLen = int(pkt[0]&0x03) + 1
		}
	}
	if r.asym && !p.hashed {
		// The digest covers the packet as sent: take it before decryption
		// in place.
		p.digest = manifest.Sum(pkt)
	}
	p.pnLen = pnLen
	p.truncated, err = o.prot.Unmask(pkt, pnOffset, pnLen)
	if err != nil {
		p.state, p.why = rxDropped, dropDecryptFailed
		return
	}
	pn := p.truncated
	if have {
		pn = wire.DecodePacketNumber(largest, p.truncated, pnLen)
		safe, ok := decodeSafety(pnLen)
		if !ok || pn+safe <= largest || pn >= largest+safe {
			p.state = rxDeferred
			return
		}
	} else if o != &r.seq {
		// The first packet number fixes the decoding of the others: the
		// first packets are decrypted in order.
		p.state = rxDeferred
		return
	}
	if o.ahead && r.fec != nil && r.fec.repairLikely(pn) {
		// Likely a repair packet that the ordered processing will find
		// not needed (Receiver.skipRepair): it decides before decrypting.
		p.state = rxDeferred
		return
	}
	o.decrypt(p, pn)
}

// decrypt opens the AEAD of an unmasked packet with its full packet number
// and parses its frames.
func (o *opener) decrypt(p *rxPacket, pn uint64) {
	payload, err := o.prot.Decrypt(p.pkt, 1+len(o.r.sessionID), p.pnLen, pn)
	if err != nil {
		p.state, p.why = rxDropped, dropDecryptFailed
		return
	}
	p.state, p.pn, p.payload = rxOpened, pn, payload
	p.frames, p.mans, p.frameErr, p.others = o.parse(payload)
	p.repair, p.hasRepair = o.repair, o.hasRepair
}

// parse parses every frame of a payload into the opener's frame space and
// returns them, or the reason to drop the packet at the first frame that
// is unknown or malformed.
func (o *opener) parse(payload []byte) (frames []wire.Frame, mans []rxManifest, why dropReason, others bool) {
	fstart, mstart := len(o.frames), len(o.mans)
	o.hasRepair = false
	for b := payload; len(b) > 0; {
		var n int
		var err error
		if o.r.asym && manifest.IsFrame(b) {
			o.mans = append(o.mans, rxManifest{})
			rm := &o.mans[len(o.mans)-1]
			rm.m, n, err = manifest.ParseFrame(b, o.r.auth.Profile().Digest)
			if err == nil && o.pre != nil {
				rm.claimed = o.pre.Claim(&rm.m, o.now)
			}
		} else if o.r.fec != nil && fec.IsFrame(b) {
			n, err = o.parseRepair(b)
			others = true
		} else {
			o.frames = append(o.frames, wire.Frame{})
			f := &o.frames[len(o.frames)-1]
			n, err = wire.ParseFrame(b, f)
			if err == nil && f.Type != wire.FrameTypePadding {
				others = true
			}
		}
		if err != nil {
			o.frames, o.mans, o.hasRepair = o.frames[:fstart], o.mans[:mstart], false
			if errors.Is(err, wire.ErrUnknownFrameType) {
				return nil, nil, dropUnknownFrame, false
			}
			return nil, nil, dropBadFrame, false
		}
		b = b[n:]
	}
	return o.frames[fstart:len(o.frames):len(o.frames)], o.mans[mstart:len(o.mans):len(o.mans)], 0, others
}
