package mquic

import (
	"encoding/hex"
	"time"

	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
	"github.com/quic-go/quic-go/qlogwriter/jsontext"
)

// qlog tracing (spec/transport.md, "qlog"). The events are those of the
// qlog QUIC event schema (importing quic-go's qlog package registers it, so
// trace headers declare it) with the names quic-go uses. They are encoded
// here rather than with quic-go's event types because those cannot express
// PADDING or extension (MANIFEST) frames.

// Names of the events this package records.
const (
	eventPacketSent     = "transport:packet_sent"
	eventPacketReceived = "transport:packet_received"
	eventPacketDropped  = "transport:packet_dropped"
	eventPacketBuffered = "transport:packet_buffered"
	eventPacketLost     = "recovery:packet_lost"
)

// packetType1RTT is the qlog packet type of every packet of a session.
const packetType1RTT = string(qlog.PacketType1RTT)

// dropReason is why the receiver dropped a datagram: one per ReceiverStats
// drop counter, plus heldForManifest for packet_buffered.
type dropReason uint8

const (
	dropWrongSource dropReason = iota
	dropNotShort
	dropWrongSession
	dropDecryptFailed
	dropDuplicate
	dropStale
	dropUnknownFrame
	dropBadFrame
	dropBadManifest
	dropRepairSkipped // FEC: a repair packet not needed, left unopened
	heldForManifest
)

// qlog returns the qlog trigger of r and the details.reason that says
// which of the receiver's checks failed.
func (r dropReason) qlog() (trigger, reason string) {
	switch r {
	case dropWrongSource:
		return "rejected", "wrong_source"
	case dropNotShort:
		return "invalid", "not_short_header"
	case dropWrongSession:
		return "connection_unknown", "wrong_session"
	case dropDecryptFailed:
		return "decryption_failure", "decryption_failed"
	case dropDuplicate:
		return "duplicate", "duplicate"
	case dropStale:
		return "rejected", "stale"
	case dropUnknownFrame:
		return "invalid", "unknown_frame_type"
	case dropBadFrame:
		return "invalid", "malformed_frame"
	case dropBadManifest:
		return "rejected", "bad_manifest"
	case dropRepairSkipped:
		return "general", "repair_not_needed"
	case heldForManifest:
		return "unknown", "manifest_pending"
	}
	return "general", "unknown"
}

// traceFrame summarizes one frame of a traced packet.
type traceFrame struct {
	typ     wire.FrameType // FrameTypeStream for every STREAM type
	known   bool           // wire.ParseFrame (or the MANIFEST parser) understood it
	wireLen int            // bytes on the wire (PADDING: the whole run)
	stream  uint64
	offset  uint64
	dataLen int
	fin     bool
	code    uint64 // RESET_STREAM error code
	final   uint64 // RESET_STREAM final size
}

// traceFrames appends the summaries of the frames of a plaintext payload to
// dst. It stops at the first frame it cannot parse, which it lists as an
// unknown frame spanning the rest of the payload.
func traceFrames(dst []traceFrame, payload []byte) []traceFrame {
	var f wire.Frame
	for b := payload; len(b) > 0; {
		if manifest.IsFrame(b) {
			// The frame only: the payloads traced were built by the
			// sender, or their manifests parsed by the receiver.
			if _, n, err := manifest.SplitFrame(b); err == nil {
				dst = append(dst, traceFrame{typ: manifest.FrameType, known: true, wireLen: n})
				b = b[n:]
				continue
			}
		}
		if fec.IsFrame(b) {
			var r fec.Repair
			if n, err := fec.ParseFrame(b, &r); err == nil {
				dst = append(dst, traceFrame{typ: fec.FrameType, known: true, wireLen: n})
				b = b[n:]
				continue
			}
		}
		n, err := wire.ParseFrame(b, &f)
		if err != nil {
			// f.Type is the type of the frame that did not parse, known or not.
			return append(dst, traceFrame{typ: f.Type, wireLen: len(b)})
		}
		t := traceFrame{typ: f.Type, known: true, wireLen: n}
		switch {
		case f.Type.IsStream():
			t.stream, t.offset, t.dataLen, t.fin = f.Stream.StreamID, f.Stream.Offset, len(f.Stream.Data), f.Stream.Fin
		case f.Type == wire.FrameTypeResetStream:
			t.stream, t.code, t.final = f.ResetStream.StreamID, f.ResetStream.ErrorCode, f.ResetStream.FinalSize
		}
		dst = append(dst, t)
		b = b[n:]
	}
	return dst
}

func (t *traceFrame) encode(h *encoder) {
	h.token(jsontext.BeginObject)
	name := t.typ.QlogName()
	if !t.known || name == "" {
		// MANIFEST, REPAIR, frames of other extensions, and what did not parse.
		h.str("frame_type", "unknown")
		h.uint("frame_type_bytes", uint64(t.typ))
		h.raw(t.wireLen, -1)
		h.token(jsontext.EndObject)
		return
	}
	h.str("frame_type", name)
	switch {
	case t.typ.IsStream():
		h.uint("stream_id", t.stream)
		h.uint("offset", t.offset)
		h.uint("length", uint64(t.dataLen))
		if t.fin {
			h.key("fin")
			h.token(jsontext.True)
		}
	case t.typ == wire.FrameTypeResetStream:
		h.uint("stream_id", t.stream)
		h.uint("error_code", t.code)
		h.uint("final_size", t.final)
	case t.typ == wire.FrameTypePing:
	default:
		// PADDING (its length is the run of zero bytes) and prohibited
		// frames, which are only skipped.
		h.raw(t.wireLen, -1)
	}
	h.token(jsontext.EndObject)
}

// encoder writes tokens and keeps the first error.
type encoder struct {
	enc *jsontext.Encoder
	err error
}

func (h *encoder) token(t jsontext.Token) {
	if h.err == nil {
		h.err = h.enc.WriteToken(t)
	}
}

func (h *encoder) key(k string) { h.token(jsontext.String(k)) }

func (h *encoder) str(k, v string) {
	h.key(k)
	h.token(jsontext.String(v))
}

func (h *encoder) uint(k string, v uint64) {
	h.key(k)
	h.token(jsontext.Uint(v))
}

// raw writes a RawInfo object; a negative payload length is left out.
func (h *encoder) raw(length, payloadLength int) {
	h.key("raw")
	h.token(jsontext.BeginObject)
	h.uint("length", uint64(length))
	if payloadLength >= 0 {
		h.uint("payload_length", uint64(payloadLength))
	}
	h.token(jsontext.EndObject)
}

// header writes a packet header: a 1-RTT packet with the session ID as its
// DCID, and its packet number when known.
func (h *encoder) header(typ, dcid string, pn uint64, havePN bool) {
	h.key("header")
	h.token(jsontext.BeginObject)
	h.str("packet_type", typ)
	if havePN {
		h.uint("packet_number", pn)
	}
	if dcid != "" {
		h.str("dcid", dcid)
	}
	h.token(jsontext.EndObject)
}

// packetEvent is packet_sent or packet_received.
type packetEvent struct {
	name       string
	dcid       string
	pn         uint64
	length     int // UDP payload bytes
	payloadLen int // plaintext frame bytes
	frames     []traceFrame
}

func (e *packetEvent) Name() string { return e.name }

func (e *packetEvent) Encode(enc *jsontext.Encoder, _ time.Time) error {
	h := encoder{enc: enc}
	h.token(jsontext.BeginObject)
	h.header(packetType1RTT, e.dcid, e.pn, true)
	h.raw(e.length, e.payloadLen)
	h.key("frames")
	h.token(jsontext.BeginArray)
	for i := range e.frames {
		e.frames[i].encode(&h)
	}
	h.token(jsontext.EndArray)
	h.token(jsontext.EndObject)
	return h.err
}

// dropEvent is packet_dropped, or packet_buffered for a packet held for its
// manifest (heldForManifest).
type dropEvent struct {
	typ    string // packet_type
	dcid   string
	pn     uint64
	havePN bool
	length int
	why    dropReason
	frames []traceFrame // packet_buffered: what the packet carries
}

func (e *dropEvent) Name() string {
	if e.why == heldForManifest {
		return eventPacketBuffered
	}
	return eventPacketDropped
}

func (e *dropEvent) Encode(enc *jsontext.Encoder, _ time.Time) error {
	h := encoder{enc: enc}
	h.token(jsontext.BeginObject)
	h.header(e.typ, e.dcid, e.pn, e.havePN)
	h.raw(e.length, -1)
	trigger, reason := e.why.qlog()
	h.str("trigger", trigger)
	h.key("details")
	h.token(jsontext.BeginObject)
	h.str("reason", reason)
	h.token(jsontext.EndObject)
	if e.why == heldForManifest {
		// Not in the qlog schema's packet_buffered: the frames of a held
		// packet of only MANIFEST frames appear nowhere else (they are used
		// at once and not kept for packet_received).
		h.key("frames")
		h.token(jsontext.BeginArray)
		for i := range e.frames {
			e.frames[i].encode(&h)
		}
		h.token(jsontext.EndArray)
	}
	h.token(jsontext.EndObject)
	return h.err
}

// lostEvent is packet_lost: a packet number not received although
// ReorderThreshold later ones were.
type lostEvent struct {
	dcid string
	pn   uint64
}

func (e *lostEvent) Name() string { return eventPacketLost }

func (e *lostEvent) Encode(enc *jsontext.Encoder, _ time.Time) error {
	h := encoder{enc: enc}
	h.token(jsontext.BeginObject)
	h.header(packetType1RTT, e.dcid, e.pn, true)
	h.str("trigger", "reordering_threshold")
	h.token(jsontext.EndObject)
	return h.err
}

// sendTrace records a Sender's packets.
type sendTrace struct {
	rec  qlogwriter.Recorder
	dcid string
}

func newSendTrace(rec qlogwriter.Recorder, sessionID []byte) *sendTrace {
	if rec == nil {
		return nil
	}
	return &sendTrace{rec: rec, dcid: hex.EncodeToString(sessionID)}
}

// sent records a packet about to be sealed: payload is its plaintext
// frames, wireLen its length once sealed.
func (t *sendTrace) sent(pn uint64, payload []byte, wireLen int) {
	t.rec.RecordEvent(&packetEvent{
		name: eventPacketSent, dcid: t.dcid, pn: pn, length: wireLen, payloadLen: len(payload),
		frames: traceFrames(nil, payload),
	})
}

// recvTrace records a Receiver's packets. It keeps its own window of the
// packet numbers that arrived (decrypted, held ones included) to tell lost
// packets from packets waiting for a manifest.
type recvTrace struct {
	rec       qlogwriter.Recorder
	dcid      string
	seen      pnWindow
	threshold uint64
	lossNext  uint64 // lowest packet number not judged yet
}

func newRecvTrace(rec qlogwriter.Recorder, sessionID []byte, window, threshold int) *recvTrace {
	if rec == nil {
		return nil
	}
	return &recvTrace{rec: rec, dcid: hex.EncodeToString(sessionID), seen: newPNWindow(window), threshold: uint64(threshold)}
}

func (t *recvTrace) received(pn uint64, payload []byte, wireLen int) {
	t.rec.RecordEvent(&packetEvent{
		name: eventPacketReceived, dcid: t.dcid, pn: pn, length: wireLen, payloadLen: len(payload),
		frames: traceFrames(nil, payload),
	})
}

// dropped records a datagram dropped before decryption: pktType is
// "unknown" when it is not a short-header packet, dcid "" when its DCID is
// unknown.
func (t *recvTrace) dropped(pktType, dcid string, wireLen int, why dropReason) {
	t.rec.RecordEvent(&dropEvent{typ: pktType, dcid: dcid, length: wireLen, why: why})
}

// droppedPN records a packet dropped after decryption.
func (t *recvTrace) droppedPN(pn uint64, wireLen int, why dropReason) {
	t.rec.RecordEvent(&dropEvent{typ: packetType1RTT, dcid: t.dcid, pn: pn, havePN: true, length: wireLen, why: why})
}

// held records a packet held until a manifest lists it.
func (t *recvTrace) held(pn uint64, payload []byte, wireLen int) {
	t.rec.RecordEvent(&dropEvent{typ: packetType1RTT, dcid: t.dcid, pn: pn, havePN: true, length: wireLen,
		why: heldForManifest, frames: traceFrames(nil, payload)})
}

// arrived notes a decrypted packet number and records as lost every older
// one that has not arrived although threshold later ones have (RFC 9002's
// packet threshold). Packet numbers older than the window are not judged.
func (t *recvTrace) arrived(pn uint64) {
	first := !t.seen.have
	if t.seen.check(pn) != pnNew {
		return
	}
	t.seen.mark(pn)
	if first {
		t.lossNext = pn
	}
	largest := t.seen.largest
	if largest < t.threshold {
		return
	}
	end := largest - t.threshold // judge up to and including end
	if t.lossNext+t.seen.size <= largest {
		t.lossNext = largest - t.seen.size + 1 // older ones are out of the window
	}
	for ; t.lossNext <= end; t.lossNext++ {
		if t.seen.check(t.lossNext) == pnNew {
			t.rec.RecordEvent(&lostEvent{dcid: t.dcid, pn: t.lossNext})
		}
	}
}
