package mquic_test

import (
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
)

// TestAsymConcurrentWritersManifests: with 16 streams written at once
// through the sender's bounded queue, every manifest goes out in every copy,
// the first copies in packet-number order and after the packets they list,
// so a receiver fed the packets in order releases them in order: no
// reordering, no gap. (Writers that blocked on a full queue used to starve
// the manifest writer, whose frames were then abandoned or overwritten.)
func TestAsymConcurrentWritersManifests(t *testing.T) {
	params, sc := asymParams(t, mcasttest.Group())
	params.PeakFlowRate = 500_000_000
	cc := &captureConn{}
	snd, err := runSender(t, cc, mquic.SenderConfig{Params: params, Manifests: sc})
	if err != nil {
		t.Fatal(err)
	}
	sendStreams(t, snd, newPattern(), 16, 1<<20)
	if err := snd.Close(); err != nil {
		t.Fatal(err)
	}
	pkts := cc.Packets()
	prot, _ := params.Protector()
	copies := map[uint32]int{}
	var lastFirst uint64
	for i, p := range pkts {
		sp := decodePacket(t, prot, len(params.SessionID), p)
		if sp.pn != uint64(i) {
			t.Fatalf("packet %d on the wire has packet number %d", i, sp.pn)
		}
		for _, m := range sp.manifests {
			copies[m.Seq]++
			if copies[m.Seq] > 1 {
				continue
			}
			if m.FirstPN < lastFirst || m.LastPN() >= sp.pn {
				t.Fatalf("packet %d: first copy of manifest %d lists %d..%d, after one listing from %d", sp.pn, m.Seq, m.FirstPN, m.LastPN(), lastFirst)
			}
			lastFirst = m.FirstPN
		}
	}
	for seq, n := range copies {
		if n != manifest.DefaultRedundancy {
			t.Errorf("manifest %d sent %d times, want %d", seq, n, manifest.DefaultRedundancy)
		}
	}
	col := newCollector(newPattern())
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		r.HandlePacket(p, src)
	}
	if st := r.Stats(); st.ReorderedPackets != 0 || st.Gaps != 0 {
		t.Fatalf("in-order packets: %d accepted out of order, %d gaps", st.ReorderedPackets, st.Gaps)
	}
}
