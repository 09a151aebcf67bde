package mquic_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// traceBuffer is the io.WriteCloser of a test trace.
type traceBuffer struct{ bytes.Buffer }

func (*traceBuffer) Close() error { return nil }

// startTrace starts a qlog trace of a session into buf, as a program would
// into a file, and returns its recorder.
func startTrace(buf *traceBuffer, sessionID []byte, isClient bool) qlogwriter.Recorder {
	fs := qlogwriter.NewConnectionFileSeq(buf, isClient, quic.ConnectionIDFromBytes(sessionID))
	go fs.Run()
	return fs.AddProducer()
}

// qlogFrame is a frame of a packet event, as encoded.
type qlogFrame struct {
	FrameType      string  `json:"frame_type"`
	StreamID       *uint64 `json:"stream_id"`
	Offset         uint64  `json:"offset"`
	Length         uint64  `json:"length"`
	Fin            bool    `json:"fin"`
	ErrorCode      uint64  `json:"error_code"`
	FinalSize      uint64  `json:"final_size"`
	FrameTypeBytes uint64  `json:"frame_type_bytes"`
	Raw            *struct {
		Length int `json:"length"`
	} `json:"raw"`
}

func (f qlogFrame) String() string {
	switch f.FrameType {
	case "stream":
		return fmt.Sprintf("stream(%d,%d,%d,%v)", *f.StreamID, f.Offset, f.Length, f.Fin)
	case "reset_stream":
		return fmt.Sprintf("reset_stream(%d,%d,%d)", *f.StreamID, f.ErrorCode, f.FinalSize)
	case "padding":
		return fmt.Sprintf("padding(%d)", f.Raw.Length)
	case "unknown":
		return fmt.Sprintf("unknown(%x,%d)", f.FrameTypeBytes, f.Raw.Length)
	}
	return f.FrameType
}

// qlogRecord is one JSON-SEQ record: the header's fields or an event's.
type qlogRecord struct {
	Trace *struct {
		EventSchemas []string `json:"event_schemas"`
		VantagePoint struct {
			Type string `json:"type"`
		} `json:"vantage_point"`
		CommonFields struct {
			GroupID string `json:"group_id"`
		} `json:"common_fields"`
	} `json:"trace"`
	Time *float64 `json:"time"`
	Name string   `json:"name"`
	Data struct {
		Header struct {
			PacketType   string  `json:"packet_type"`
			PacketNumber *uint64 `json:"packet_number"`
			DCID         string  `json:"dcid"`
		} `json:"header"`
		Raw struct {
			Length        int `json:"length"`
			PayloadLength int `json:"payload_length"`
		} `json:"raw"`
		Frames  []qlogFrame `json:"frames"`
		Trigger string      `json:"trigger"`
		Details struct {
			Reason string `json:"reason"`
		} `json:"details"`
	} `json:"data"`
}

func (r *qlogRecord) pn(t testing.TB) uint64 {
	t.Helper()
	if r.Data.Header.PacketNumber == nil {
		t.Fatalf("%s without a packet number", r.Name)
	}
	return *r.Data.Header.PacketNumber
}

func (r *qlogRecord) frames() string {
	var s []string
	for _, f := range r.Data.Frames {
		s = append(s, f.String())
	}
	return strings.Join(s, " ")
}

// parseTrace splits a JSON-SEQ trace (RFC 7464: each record starts with
// 0x1E and ends with a newline) and checks its header.
func parseTrace(t testing.TB, b []byte, vantage, groupID string) []qlogRecord {
	t.Helper()
	if len(b) == 0 || b[0] != 0x1e {
		t.Fatalf("trace does not start with a record separator: %q", b[:min(len(b), 20)])
	}
	var recs []qlogRecord
	for i, raw := range bytes.Split(b[1:], []byte{0x1e}) {
		if !bytes.HasSuffix(raw, []byte("\n")) {
			t.Fatalf("record %d does not end with a newline: %q", i, raw)
		}
		var r qlogRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, raw)
		}
		recs = append(recs, r)
	}
	h := recs[0].Trace
	if h == nil {
		t.Fatalf("first record is not a trace header: %+v", recs[0])
	}
	if h.VantagePoint.Type != vantage || h.CommonFields.GroupID != groupID {
		t.Errorf("trace header: vantage point %q, group ID %q; want %q, %q", h.VantagePoint.Type, h.CommonFields.GroupID, vantage, groupID)
	}
	if !slices.Contains(h.EventSchemas, "urn:ietf:params:qlog:events:quic-14") {
		t.Errorf("trace header does not declare the QUIC event schema: %v", h.EventSchemas)
	}
	for _, r := range recs[1:] {
		if r.Time == nil || r.Name == "" {
			t.Fatalf("event without time or name: %+v", r)
		}
	}
	return recs[1:]
}

// wireFrames decodes a packet as it went on the wire, independently of the
// trace, and describes its frames as qlogFrame.String does.
func wireFrames(t testing.TB, params mquic.Params, pkt []byte) (uint64, string) {
	t.Helper()
	prot, err := params.Protector()
	if err != nil {
		t.Fatal(err)
	}
	pn, payload, err := prot.Open(append([]byte(nil), pkt...), 1+len(params.SessionID), params.PNLen(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	var f wire.Frame
	for len(payload) > 0 {
		if manifest.IsFrame(payload) {
			_, n, err := manifest.ParseFrame(payload, manifest.DefaultDigestAlg)
			if err != nil {
				t.Fatal(err)
			}
			s = append(s, fmt.Sprintf("unknown(%x,%d)", uint64(manifest.FrameType), n))
			payload = payload[n:]
			continue
		}
		n, err := wire.ParseFrame(payload, &f)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Type.IsStream():
			s = append(s, fmt.Sprintf("stream(%d,%d,%d,%v)", f.Stream.StreamID, f.Stream.Offset, len(f.Stream.Data), f.Stream.Fin))
		case f.Type == wire.FrameTypeResetStream:
			s = append(s, fmt.Sprintf("reset_stream(%d,%d,%d)", f.ResetStream.StreamID, f.ResetStream.ErrorCode, f.ResetStream.FinalSize))
		case f.Type == wire.FrameTypePadding:
			s = append(s, fmt.Sprintf("padding(%d)", n))
		case f.Type == wire.FrameTypePing:
			s = append(s, "ping")
		default:
			t.Fatalf("packet %d: unexpected frame %v", pn, f.Type)
		}
		payload = payload[n:]
	}
	return pn, strings.Join(s, " ")
}

// sentPackets keeps what a sender seals, by packet number.
type sentPackets struct {
	mu   sync.Mutex
	pns  []uint64
	pkts map[uint64][]byte
}

func (s *sentPackets) onPacket(pn uint64, pkt []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pkts == nil {
		s.pkts = map[uint64][]byte{}
	}
	s.pns = append(s.pns, pn)
	s.pkts[pn] = append([]byte(nil), pkt...)
}

// TestQlogTrace traces both ends of a short session over loopback
// multicast, with two packets dropped on the way, then feeds the receiver
// a replay, a packet from another source and a truncated packet. It parses
// both traces back and checks them against the packets as they went on the
// wire, decoded independently: every packet sent is in packet_sent with its
// length and frames, every packet that arrived is in packet_received with
// the same frames, the two dropped are packet_lost and nothing else is, and
// each bad datagram is packet_dropped with its reason.
func TestQlogTrace(t *testing.T) {
	group := mcasttest.Group()
	params := testParams(t, group)
	params.PacketNumberLen = 1 // so that a lone PING needs PADDING for the header-protection sample
	rconn := mcasttest.Receiver(t, group)
	lossy := mcasttest.NewLossy(mcasttest.Sender(t, group), 0, 1)
	written := 0
	lossy.DropIf(func([]byte) bool { written++; return written == 4 || written == 10 })

	var sbuf, rbuf traceBuffer
	srec := startTrace(&sbuf, params.SessionID, false)
	rrec := startTrace(&rbuf, params.SessionID, true)
	rcv, err := mquic.NewReceiver(rconn, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Tracer: rrec})
	if err != nil {
		t.Fatal(err)
	}
	stop := runReceiver(t, rcv)
	sent := &sentPackets{}
	const firstPN = 100
	snd, err := runSender(t, lossy, mquic.SenderConfig{Params: params, FirstPacketNumber: firstPN, KeepAlive: -1,
		OnPacket: sent.onPacket, Tracer: srec})
	if err != nil {
		t.Fatal(err)
	}
	pat := newPattern()
	sendStreams(t, snd, pat, 2, 8000) // streams 3 and 7
	st, err := snd.OpenStream()       // stream 11, reset after 500 bytes
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 500)
	pat.fill(buf, st.ID(), 0)
	if _, err := st.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := st.Reset(0x10b); err != nil {
		t.Fatal(err)
	}
	if err := snd.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := snd.Ping(); err != nil { // a packet of its own, padded for header protection
		t.Fatal(err)
	}
	sendStreams(t, snd, pat, 1, 6000) // stream 15: packets after the losses
	if err := snd.Close(); err != nil {
		t.Fatal(err)
	}
	srec.Close()

	dropped := map[uint64]bool{}
	for _, p := range lossy.Dropped() {
		pn, _ := wireFrames(t, params, p)
		dropped[pn] = true
	}
	if len(dropped) != 2 {
		t.Fatalf("%d packets dropped, want 2", len(dropped))
	}
	want := uint64(len(sent.pns) - len(dropped))
	deadline := time.Now().Add(10 * time.Second)
	for rcv.Stats().Packets < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := rcv.Stats().Packets; got != want {
		t.Fatalf("receiver accepted %d packets, want %d", got, want)
	}
	// Bad datagrams, fed directly.
	replayPN := sent.pns[len(sent.pns)/2]
	for dropped[replayPN] {
		replayPN++
	}
	replay := sent.pkts[replayPN]
	other := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), src.Port())
	rcv.HandlePacket(append([]byte(nil), replay...), src)
	rcv.HandlePacket(append([]byte(nil), replay...), other)
	rcv.HandlePacket(append([]byte(nil), replay[:len(replay)-3]...), src)
	stop()
	rrec.Close()

	sid := fmt.Sprintf("%x", params.SessionID)
	// Sender: one packet_sent per packet, in order, as on the wire.
	sevents := parseTrace(t, sbuf.Bytes(), "server", sid)
	if len(sevents) != len(sent.pns) {
		t.Fatalf("%d sender events for %d packets", len(sevents), len(sent.pns))
	}
	sentFrames := map[uint64]string{}
	var sawReset, sawPing, sawFin bool
	for i, e := range sevents {
		pn := sent.pns[i]
		if e.Name != "transport:packet_sent" || e.pn(t) != pn || e.Data.Header.PacketType != "1RTT" || e.Data.Header.DCID != sid {
			t.Fatalf("sender event %d: %s %+v, want packet_sent of packet %d", i, e.Name, e.Data.Header, pn)
		}
		if e.Data.Raw.Length != len(sent.pkts[pn]) {
			t.Errorf("packet %d: raw.length %d, sent %d bytes", pn, e.Data.Raw.Length, len(sent.pkts[pn]))
		}
		if e.Data.Raw.PayloadLength <= 0 || e.Data.Raw.PayloadLength >= e.Data.Raw.Length {
			t.Errorf("packet %d: raw.payload_length %d of %d", pn, e.Data.Raw.PayloadLength, e.Data.Raw.Length)
		}
		wpn, wf := wireFrames(t, params, sent.pkts[pn])
		if got := e.frames(); wpn != pn || got != wf {
			t.Errorf("packet %d: traced frames %q, on the wire (packet %d) %q", pn, got, wpn, wf)
		}
		sentFrames[pn] = e.frames()
		sawReset = sawReset || strings.Contains(wf, "reset_stream(11,267,500)")
		sawPing = sawPing || strings.HasPrefix(wf, "ping padding(")
		sawFin = sawFin || strings.Contains(wf, ",true)")
	}
	if !sawReset || !sawPing || !sawFin {
		t.Errorf("trace lacks the RESET_STREAM (%v), the PING packet (%v) or a FIN (%v)", sawReset, sawPing, sawFin)
	}

	// Receiver.
	revents := parseTrace(t, rbuf.Bytes(), "client", sid)
	var lost []uint64
	received := map[uint64]bool{}
	var drops []string
	for _, e := range revents {
		switch e.Name {
		case "transport:packet_received":
			pn := e.pn(t)
			if received[pn] || dropped[pn] {
				t.Errorf("packet %d received twice, or although dropped", pn)
			}
			received[pn] = true
			if e.frames() != sentFrames[pn] || e.Data.Raw.Length != len(sent.pkts[pn]) {
				t.Errorf("packet %d: received %q (%d bytes), sent %q (%d bytes)", pn, e.frames(), e.Data.Raw.Length, sentFrames[pn], len(sent.pkts[pn]))
			}
		case "recovery:packet_lost":
			if e.Data.Trigger != "reordering_threshold" {
				t.Errorf("packet_lost trigger %q", e.Data.Trigger)
			}
			lost = append(lost, e.pn(t))
		case "transport:packet_dropped":
			d := e.Data
			s := fmt.Sprintf("%s/%s/%s", d.Trigger, d.Details.Reason, d.Header.PacketType)
			if d.Header.PacketNumber != nil {
				s += fmt.Sprint("/", *d.Header.PacketNumber)
			}
			drops = append(drops, s)
		default:
			t.Errorf("unexpected receiver event %s", e.Name)
		}
	}
	if uint64(len(received)) != want {
		t.Errorf("%d packets in packet_received, want %d", len(received), want)
	}
	slices.Sort(lost)
	wantLost := make([]uint64, 0, len(dropped))
	for pn := range dropped {
		wantLost = append(wantLost, pn)
	}
	slices.Sort(wantLost)
	if !slices.Equal(lost, wantLost) {
		t.Errorf("packet_lost %v, dropped %v", lost, wantLost)
	}
	wantDrops := []string{
		fmt.Sprintf("duplicate/duplicate/1RTT/%d", replayPN),
		"rejected/wrong_source/unknown",
		"decryption_failure/decryption_failed/1RTT",
	}
	if !slices.Equal(drops, wantDrops) {
		t.Errorf("packet_dropped events %q, want %q", drops, wantDrops)
	}
}

// TestQlogTraceHeldPackets traces both ends of an asymmetric session whose
// packets reach the receiver before the manifests that list them: the
// MANIFEST frames are listed as unknown frames of their type, each data
// packet is packet_buffered when it arrives and packet_received when a
// manifest releases it.
func TestQlogTraceHeldPackets(t *testing.T) {
	params, sc := asymParams(t, mcasttest.Group())
	var sbuf, rbuf traceBuffer
	srec := startTrace(&sbuf, params.SessionID, false)
	cc := &captureConn{}
	snd, err := runSender(t, cc, mquic.SenderConfig{Params: params, Manifests: sc, Tracer: srec})
	if err != nil {
		t.Fatal(err)
	}
	sendStreams(t, snd, newPattern(), 1, 100000)
	snd.Close()
	srec.Close()
	pkts := cc.Packets()
	sid := fmt.Sprintf("%x", params.SessionID)
	mf := fmt.Sprintf("unknown(%x,", uint64(manifest.FrameType))
	sentManifests := 0
	for i, e := range parseTrace(t, sbuf.Bytes(), "server", sid) {
		pn, wf := wireFrames(t, params, pkts[i])
		if e.pn(t) != pn || e.frames() != wf {
			t.Errorf("packet %d: traced %d %q, on the wire %q", i, e.pn(t), e.frames(), wf)
		}
		sentManifests += strings.Count(wf, mf)
	}

	rrec := startTrace(&rbuf, params.SessionID, true)
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Tracer: rrec})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		r.HandlePacket(append([]byte(nil), p...), src)
	}
	st := r.Stats()
	rrec.Close()
	buffered, received, manifests := map[uint64]bool{}, map[uint64]bool{}, 0
	for _, e := range parseTrace(t, rbuf.Bytes(), "client", sid) {
		switch e.Name {
		case "transport:packet_buffered":
			pn := e.pn(t)
			if e.Data.Details.Reason != "manifest_pending" {
				t.Errorf("packet_buffered reason %q", e.Data.Details.Reason)
			}
			buffered[pn] = true
			_, wf := wireFrames(t, params, pkts[pn])
			if e.frames() != wf {
				t.Errorf("packet %d: buffered %q, sent %q", pn, e.frames(), wf)
			}
			manifests += strings.Count(wf, mf)
		case "transport:packet_received":
			pn := e.pn(t)
			received[pn] = true
			_, wf := wireFrames(t, params, pkts[pn])
			switch {
			case e.frames() == wf:
			case e.frames() == "" && !strings.Contains(wf, "stream("):
				// Only MANIFEST frames, used when the packet arrived; a later
				// manifest confirmed it, but its payload was not kept.
			default:
				t.Errorf("packet %d: received %q, sent %q", pn, e.frames(), wf)
			}
		default:
			t.Errorf("unexpected event %s: %+v", e.Name, e.Data)
		}
	}
	t.Logf("%d packets, %d MANIFEST frames sent; %d buffered (%d MANIFEST frames), %d received",
		len(pkts), sentManifests, len(buffered), manifests, len(received))
	if uint64(len(received)) != st.Packets {
		t.Errorf("%d packets in packet_received; the receiver accepted %d", len(received), st.Packets)
	}
	if sentManifests == 0 || manifests != sentManifests || len(buffered) < len(pkts)/2 {
		t.Fatalf("%d MANIFEST frames sent, %d in buffered packets; %d of %d packets buffered", sentManifests, manifests, len(buffered), len(pkts))
	}
	for pn := range buffered {
		_, wf := wireFrames(t, params, pkts[pn])
		if !received[pn] && strings.Contains(wf, "stream(") {
			t.Errorf("packet %d (%s) buffered but never received", pn, wf)
		}
	}
}

// TestQlogLossThreshold feeds a session's packets out of order: a packet
// is packet_lost once ReorderThreshold (3) later packets have arrived
// without it, and not before, whether or not it arrives afterwards.
func TestQlogLossThreshold(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pkts := capturedSession(t, params, newPattern(), 16*1100)
	if len(pkts) < 16 {
		t.Fatalf("%d packets", len(pkts))
	}
	var rbuf traceBuffer
	rrec := startTrace(&rbuf, params.SessionID, true)
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Tracer: rrec})
	if err != nil {
		t.Fatal(err)
	}
	// 1 comes two packets late, 8 four packets late (after it was declared
	// lost), 14 never, but fewer than three packets follow it.
	order := []int{2, 3, 1, 4, 5, 6, 7, 9, 10, 11, 12, 8, 13, 15}
	r.HandlePacket(append([]byte(nil), pkts[0]...), src)
	for _, i := range order {
		r.HandlePacket(append([]byte(nil), pkts[i]...), src)
	}
	rrec.Close()
	var lost []uint64
	var events []string
	for _, e := range parseTrace(t, rbuf.Bytes(), "client", fmt.Sprintf("%x", params.SessionID)) {
		events = append(events, fmt.Sprintf("%s %d", strings.TrimPrefix(strings.TrimPrefix(e.Name, "transport:"), "recovery:"), e.pn(t)))
		if e.Name == "recovery:packet_lost" {
			lost = append(lost, e.pn(t))
		}
	}
	if !slices.Equal(lost, []uint64{8}) {
		t.Errorf("packet_lost %v, want [8]; events: %q", lost, events)
	}
	// 8 is declared lost when 11 arrives, before 11 is handled.
	if i := slices.Index(events, "packet_lost 8"); i < 1 || i+1 >= len(events) || events[i-1] != "packet_received 10" || events[i+1] != "packet_received 11" {
		t.Errorf("packet 8 not declared lost right after packet 11 arrived: %q", events)
	}
}

// discardTrace is the io.WriteCloser of a trace that keeps nothing.
type discardTrace struct{}

func (discardTrace) Write(p []byte) (int, error) { return len(p), nil }
func (discardTrace) Close() error                { return nil }

// BenchmarkPacketizeTraced is BenchmarkPacketize with tracing on: the cost
// of a packet_sent record (encoded by the trace's goroutine).
func BenchmarkPacketizeTraced(b *testing.B) {
	params := testParams(b, mcasttest.Group())
	fs := qlogwriter.NewConnectionFileSeq(discardTrace{}, false, quic.ConnectionIDFromBytes(params.SessionID))
	go fs.Run()
	rec := fs.AddProducer()
	defer rec.Close()
	snd, err := runSender(b, &discardConn{}, mquic.SenderConfig{Params: params, Tracer: rec})
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if err := st.WriteChunk(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
