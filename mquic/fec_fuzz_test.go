package mquic_test

import (
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/protect"
)

// FuzzFECReceivePath feeds arbitrary datagrams, among a block of a NULL-suite
// session with FEC (4 source packets, 2 repair packets, one source packet
// lost), to a receiver. Whatever arrives — forged REPAIR frames, symbols of
// any length, blocks that overlap — the receiver must not panic, and every
// datagram and every rebuilt packet must end accepted or dropped for one
// reason.
func FuzzFECReceivePath(f *testing.F) {
	fp := fec.Params{Scheme: fec.SchemeReedSolomon8, MaxSourceCount: 4, MaxRepairCount: 2, BlockTime: time.Second}
	params := mquic.Params{Group: mcasttest.Group(), SessionID: []byte{1, 2, 3, 4}, CipherSuite: protect.SuiteNull, PacketNumberLen: 2,
		Extensions: []mquic.Extension{{ID: fec.ExtensionID, Value: fp.Value()}}}
	stream := func(off uint64, data string) []byte { return streamFrame(3, off, []byte(data), false) }
	// A block of packets 10..13 and its repair packets 14 and 15.
	enc, err := fec.NewEncoder(fp, 0.5, 1000)
	if err != nil {
		f.Fatal(err)
	}
	// Packet 13 is padded: its symbol leaves the padding out.
	var block [][]byte
	for i := range 4 {
		payload, padding := stream(uint64(5*i), "abcde"), 7*(i/3)
		enc.Add(10+uint64(i), payload, padding, true, time.Unix(0, 0))
		block = append(block, nullPacket(params.SessionID, 10+uint64(i), append(payload, make([]byte, padding)...)))
	}
	enc.Close()
	for j := range 2 {
		block = append(block, nullPacket(params.SessionID, 14+uint64(j), enc.AppendNext(nil)))
	}
	f.Add(block[1], block[4])
	f.Add(block[4], block[5])
	f.Add(nullPacket(params.SessionID, 14, fec.AppendFrame(nil, &fec.Repair{BlockID: 11, SourceCount: 2, RepairCount: 1, Symbol: []byte{0, 9, 9, 9}})), block[1])
	f.Add(nullPacket(params.SessionID, 20, fec.AppendFrame(nil, &fec.Repair{BlockID: 17, SourceCount: 3, RepairCount: 1, Symbol: make([]byte, 600)})), block[5])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: &fuzzHandler{}, ReorderThreshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		// Packet 10 is lost; a and b come among the others.
		for _, p := range [][]byte{block[1], a, block[2], block[3], b, block[4], block[5]} {
			r.HandlePacket(append([]byte(nil), p...), src)
		}
		r.Flush()
		st := r.Stats()
		total := st.Packets + st.DecryptFailed + st.WrongSource + st.NotShort + st.WrongSession + st.Duplicate + st.Stale + st.UnknownFrame + st.BadFrame + st.FEC.RepairSkipped
		if total != st.Datagrams+st.FEC.Recovered {
			t.Fatalf("%d datagrams and %d rebuilt, %d accounted for: %+v", st.Datagrams, st.FEC.Recovered, total, st)
		}
	})
}
