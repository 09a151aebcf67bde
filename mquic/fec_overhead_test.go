package mquic_test

import (
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
)

// TestFECOverheadChanges: a session advertises FEC with up to 50 repair
// packets per 200 (25 %) but its sender starts with none
// (SetRepairOverhead(0)), then adds 10 %, then none again, under 5 %
// random loss. The receiver takes blocks with fewer repair packets than
// the maximum, and a session that sends none for a while: what it lost
// without FEC, and what FEC could not rebuild, are exactly its gaps;
// everything else is rebuilt.
func TestFECOverheadChanges(t *testing.T) {
	group := mcasttest.Group()
	params := fecParams(t, group, 0.25, 0)
	params.PeakFlowRate = 400_000_000
	lossy := mcasttest.NewLossy(mcasttest.Sender(t, group), 0.05, 7)
	r := startFECRun(t, params, nil, lossy, group)
	snd, rec := r.snd, r.rec
	if err := snd.SetRepairOverhead(0.3); err == nil {
		t.Error("SetRepairOverhead(0.3) with at most 25 % advertised: no error")
	}
	if err := snd.SetRepairOverhead(0); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 19
	ids := sendStreams(t, snd, r.pat, 4, size)
	if st := snd.Stats().FEC; st.RepairPackets != 0 || st.Blocks != 0 || st.Overhead != 0 {
		t.Fatalf("at overhead 0: %+v, want no block and no repair packet", st)
	}
	firstFEC := uint64(len(rec.packets()))
	if err := snd.SetRepairOverhead(0.1); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, sendStreams(t, snd, r.pat, 4, size)...)
	mid := snd.Stats().FEC
	if mid.RepairPackets == 0 || mid.Overhead != 0.1 || mid.OverheadChanges != 2 {
		t.Fatalf("at overhead 0.1: %+v, want repair packets", mid)
	}
	if err := snd.SetRepairOverhead(0); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, sendStreams(t, snd, r.pat, 4, size)...)
	r.finish(t)
	end := snd.Stats().FEC
	if end.Blocks > mid.Blocks+1 {
		t.Errorf("back at overhead 0: %d blocks, %d before (only the block open then may close with repair packets)", end.Blocks, mid.Blocks)
	}
	// Every block has ⌈0.1 k⌉ repair packets, and none covers the first
	// phase's packets; those are not padded to the size of repair packets
	// (there are none to match), the second phase's full ones are.
	prot, _ := params.Protector()
	full := map[bool]int{}
	for i, p := range rec.packets() {
		if len(p) == mquic.DefaultMaxPacketSize {
			full[uint64(i) < firstFEC]++
		}
		fp := decodeFECPacket(t, prot, len(params.SessionID), p)
		if r := fp.repair; r != nil {
			if r.RepairCount != fec.RepairCount(0.1, r.SourceCount) || uint64(i) < firstFEC {
				t.Fatalf("packet %d: block %d of %d+%d packets; want ⌈0.1 k⌉ repair packets, after packet %d", i, r.BlockID, r.SourceCount, r.RepairCount, firstFEC)
			}
		}
	}
	if full[true] != 0 || full[false] == 0 {
		t.Errorf("%d packets of %d bytes at overhead 0, %d at 0.1; want none, then some", full[true], mquic.DefaultMaxPacketSize, full[false])
	}
	want := expectFEC(t, params, rec.packets(), lossy.Dropped())
	st := r.rcv.Stats()
	r.checkMissing(t, ids, size, want)
	f := st.FEC
	if want.recovered == 0 || f.Recovered != want.recovered || f.BlocksUnrecoverable != want.unrecoverableBlocks || f.BadRepair != 0 {
		t.Errorf("receiver FEC %+v, want %d rebuilt, %d blocks unrecoverable", f, want.recovered, want.unrecoverableBlocks)
	}
	t.Logf("%s; sender %d blocks, %d repair packets; receiver rebuilt %d, %d gaps", lossy, end.Blocks, end.RepairPackets, f.Recovered, st.Gaps)
}
