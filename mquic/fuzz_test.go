package mquic_test

import (
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// nullPacket builds an unprotected (NULL-suite) packet with a 2-byte
// packet number, for fuzz seeds.
func nullPacket(sessionID []byte, pn uint64, frames ...[]byte) []byte {
	b := wire.AppendShortHeader(nil, sessionID, pn, 2)
	for _, fr := range frames {
		b = append(b, fr...)
	}
	return b
}

// FuzzReceivePath feeds arbitrary datagrams to a receiver of a NULL-suite
// session (so the fuzzer reaches frame parsing and reassembly) after a valid
// prefix of packets. Whatever arrives, the receiver must not panic, must
// account for every datagram, and must deliver in-order data without
// overlaps.
func FuzzReceivePath(f *testing.F) {
	params := mquic.Params{Group: mcasttest.Group(), SessionID: []byte{1, 2, 3, 4}, CipherSuite: protect.SuiteNull, PacketNumberLen: 2}
	seed := func(pn uint64, frames ...[]byte) []byte { return nullPacket(params.SessionID, pn, frames...) }
	stream := func(id, off uint64, data string, fin bool) []byte { return streamFrame(id, off, []byte(data), fin) }
	f.Add(seed(1, stream(3, 0, "hello", false)), seed(2, stream(3, 5, " world", true)))
	f.Add(seed(2, stream(3, 5, " world", true)), seed(1, stream(3, 0, "hello", false)))
	f.Add(seed(5, []byte{0x01}, make([]byte, 10)), seed(5, []byte{0x01}))
	f.Add(seed(7, wire.AppendResetStreamFrame(nil, wire.ResetStreamFrame{StreamID: 3, ErrorCode: 1, FinalSize: 3})), seed(8, stream(3, 0, "abcdef", false)))
	f.Add(seed(9, []byte{0x02, 0x01, 0x00, 0x00, 0x00}, stream(0, 0, "x", false)), []byte{0x40, 1, 2, 3, 4})
	f.Add(seed(10, stream(0, 1<<61, "z", true)), seed(11, []byte{0x1c, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		h := &fuzzHandler{}
		r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: h, ReorderThreshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		batch := [][]byte{seed(100, stream(3, 0, "prefix", false)), a, b, a} // a replayed
		for _, p := range batch {
			r.HandlePacket(append([]byte(nil), p...), src)
		}
		r.Flush()
		st := r.Stats()
		// Run's pipeline, opening in parallel, ends the same.
		cfg := mquic.ReceiverConfig{Params: params, Handler: &fuzzHandler{}, ReorderThreshold: 1, Workers: 2}
		if got := receivePipelined(t, cfg, [][][]byte{batch}); packetCounters(got) != packetCounters(st) {
			t.Fatalf("pipelined %v, one at a time %v", packetCounters(got), packetCounters(st))
		}
		total := st.Packets + st.DecryptFailed + st.WrongSource + st.NotShort + st.WrongSession + st.Duplicate + st.Stale + st.UnknownFrame + st.BadFrame
		if total != st.Datagrams {
			t.Fatalf("%d datagrams, %d accounted for", st.Datagrams, total)
		}
		for id, next := range h.next {
			if next > 1<<62 {
				t.Fatalf("stream %d delivered beyond 2^62", id)
			}
		}
	})
}

type fuzzHandler struct{ next map[uint64]uint64 }

func (h *fuzzHandler) OpenStream(s *mquic.RecvStream) mquic.StreamHandler {
	if h.next == nil {
		h.next = map[uint64]uint64{}
	}
	return &fuzzStream{h: h, id: s.ID()}
}

type fuzzStream struct {
	h  *fuzzHandler
	id uint64
}

func (s *fuzzStream) Data(off uint64, p []byte) {
	s.h.next[s.id] = max(s.h.next[s.id], off+uint64(len(p)))
}
func (s *fuzzStream) Gap(from, to uint64)  { s.h.next[s.id] = max(s.h.next[s.id], to) }
func (s *fuzzStream) Finish(uint64)        {}
func (s *fuzzStream) Reset(uint64, uint64) {}
