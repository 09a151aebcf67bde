package mquic_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/quicvarint"
)

// FuzzTracedReceive feeds arbitrary datagrams to a traced receiver of a
// NULL-suite session (so the fuzzer reaches the frames the trace lists).
// Whatever arrives, the trace must be valid JSON-SEQ, and each datagram
// must be in exactly one packet_received or packet_dropped event.
func FuzzTracedReceive(f *testing.F) {
	params := mquic.Params{Group: mcasttest.Group(), SessionID: []byte{1, 2, 3, 4}, CipherSuite: protect.SuiteNull, PacketNumberLen: 2}
	seed := func(pn uint64, frames ...[]byte) []byte { return nullPacket(params.SessionID, pn, frames...) }
	stream := func(id, off uint64, data string, fin bool) []byte { return streamFrame(id, off, []byte(data), fin) }
	f.Add(seed(1, stream(3, 0, "hello", false), []byte{0x01}, make([]byte, 7)), seed(5, stream(3, 5, " world", true)))
	f.Add(seed(7, wire.AppendResetStreamFrame(nil, wire.ResetStreamFrame{StreamID: 3, ErrorCode: 1, FinalSize: 3})), seed(2, []byte{0x02, 0x01, 0x00, 0x00, 0x00}))
	f.Add(seed(9, quicvarint.Append(nil, uint64(manifest.FrameType)), []byte{0, 1, 2}), []byte{0x40, 1, 2, 3, 5})
	f.Add(seed(10, []byte{0x21, 0x22}), seed(11, stream(7, 1<<40, "\"\\\x00<>", true)))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var buf traceBuffer
		rec := startTrace(&buf, params.SessionID, true)
		r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Tracer: rec})
		if err != nil {
			t.Fatal(err)
		}
		r.HandlePacket(seed(100, stream(3, 0, "prefix", false)), src)
		r.HandlePacket(append([]byte(nil), a...), src)
		r.HandlePacket(append([]byte(nil), b...), src)
		r.HandlePacket(append([]byte(nil), a...), src) // a replay
		r.Flush()
		rec.Close()
		st := r.Stats()
		raw := buf.Bytes()
		if len(raw) == 0 || raw[0] != 0x1e {
			t.Fatal("no trace")
		}
		var received, dropped uint64
		for i, rec := range bytes.Split(raw[1:], []byte{0x1e}) {
			var e struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(rec, &e); err != nil {
				t.Fatalf("record %d is not JSON: %v: %q", i, err, rec)
			}
			switch e.Name {
			case "transport:packet_received":
				received++
			case "transport:packet_dropped":
				dropped++
			}
		}
		if received != st.Packets || received+dropped != st.Datagrams {
			t.Fatalf("%d datagrams (%d accepted); trace: %d received, %d dropped", st.Datagrams, st.Packets, received, dropped)
		}
	})
}
