package mquic_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
)

// fecParams returns testParams with FEC at overhead over blocks of at most
// maxK packets.
func fecParams(t testing.TB, group netip.AddrPort, overhead float64, maxK int) mquic.Params {
	t.Helper()
	return fecParamsBlockTime(t, group, overhead, maxK, 0)
}

// fecParamsBlockTime is fecParams with a block time (0: the default).
func fecParamsBlockTime(t testing.TB, group netip.AddrPort, overhead float64, maxK int, blockTime time.Duration) mquic.Params {
	t.Helper()
	p := testParams(t, group)
	fp, err := fec.NewParams(overhead, maxK, blockTime)
	if err != nil {
		t.Fatal(err)
	}
	p.Extensions = append(p.Extensions, mquic.Extension{ID: fec.ExtensionID, Value: fp.Value()})
	return p
}

// fecPacket is a sent packet as the test sees it.
type fecPacket struct {
	pn      uint64
	wire    []byte
	streams map[uint64]*ranges.Set
	repair  *fec.Repair
}

func decodeFECPacket(t testing.TB, prot *protect.Protector, sidLen int, pkt []byte) fecPacket {
	t.Helper()
	fp := fecPacket{wire: append([]byte(nil), pkt...), streams: map[uint64]*ranges.Set{}}
	pn, payload, err := prot.Open(append([]byte(nil), pkt...), 1+sidLen, mquic.DefaultPacketNumberLen, 0, false)
	if err != nil {
		t.Fatalf("decode a packet: %v", err)
	}
	fp.pn = pn
	for len(payload) > 0 {
		if fec.IsFrame(payload) {
			r := &fec.Repair{}
			n, err := fec.ParseFrame(payload, r)
			if err != nil {
				t.Fatal(err)
			}
			fp.repair = r
			payload = payload[n:]
			continue
		}
		if manifest.IsFrame(payload) {
			_, n, err := manifest.ParseFrame(payload, manifest.DefaultDigestAlg)
			if err != nil {
				t.Fatal(err)
			}
			payload = payload[n:]
			continue
		}
		var f wire.Frame
		n, err := wire.ParseFrame(payload, &f)
		if err != nil {
			t.Fatalf("parse a packet: %v", err)
		}
		if f.Type.IsStream() && len(f.Stream.Data) > 0 {
			s := fp.streams[f.Stream.StreamID]
			if s == nil {
				s = &ranges.Set{}
				fp.streams[f.Stream.StreamID] = s
			}
			s.Add(f.Stream.Offset, f.Stream.Offset+uint64(len(f.Stream.Data)))
		}
		payload = payload[n:]
	}
	return fp
}

// fecOutcome is what the receiver must have made of a session, worked out
// from the packets as sent and dropped: a block whose lost source packets
// are no more than its repair packets that arrived is rebuilt whole;
// otherwise (or with no repair packet at all) its lost packets stay lost.
type fecOutcome struct {
	recovered, unrecoverableBlocks, recoveredBlocks, unrecovered uint64
	repairsArrived                                               uint64
	missing                                                      map[uint64]*ranges.Set // stream bytes that must stay missing
	blocks, repairPackets                                        int
}

func expectFEC(t testing.TB, params mquic.Params, sent [][]byte, dropped [][]byte) fecOutcome {
	t.Helper()
	prot, _ := params.Protector()
	isDropped := map[string]bool{}
	for _, p := range dropped {
		isDropped[string(p)] = true
	}
	byPN := map[uint64]fecPacket{}
	blocks := map[uint64]*fec.Repair{}
	arrived := map[uint64]int{} // block -> repair packets that arrived
	o := fecOutcome{missing: map[uint64]*ranges.Set{}}
	for _, p := range sent {
		fp := decodeFECPacket(t, prot, len(params.SessionID), p)
		byPN[fp.pn] = fp
		if r := fp.repair; r != nil {
			blocks[r.BlockID] = r
			o.repairPackets++
			if !isDropped[string(p)] {
				arrived[r.BlockID]++
				o.repairsArrived++
			}
		}
	}
	o.blocks = len(blocks)
	// Each block is a run of consecutive packet numbers: its source packets,
	// then its repair packets.
	for id, r := range blocks {
		for i := range r.SourceCount + r.RepairCount {
			fp, ok := byPN[id+uint64(i)]
			switch {
			case !ok:
				t.Fatalf("block %d: packet %d was never sent", id, id+uint64(i))
			case i < r.SourceCount && fp.repair != nil:
				t.Fatalf("block %d: packet %d, among its source packets, is a repair packet", id, fp.pn)
			case i >= r.SourceCount && (fp.repair == nil || fp.repair.BlockID != id || fp.repair.Index != i-r.SourceCount):
				t.Fatalf("block %d: packet %d is not its repair packet %d", id, fp.pn, i-r.SourceCount)
			}
		}
	}
	covered := map[uint64]bool{}
	for id, r := range blocks {
		lost := 0
		for i := range r.SourceCount {
			pn := id + uint64(i)
			covered[pn] = true
			if isDropped[string(byPN[pn].wire)] {
				lost++
			}
		}
		switch {
		case lost == 0:
		case arrived[id] == 0:
			for i := range r.SourceCount {
				covered[id+uint64(i)] = false
			}
		case lost <= arrived[id]:
			o.recovered += uint64(lost)
			o.recoveredBlocks++
		default:
			o.unrecoverableBlocks++
			o.unrecovered += uint64(lost)
			for i := range r.SourceCount {
				covered[id+uint64(i)] = false
			}
		}
	}
	for pn, fp := range byPN {
		if isDropped[string(fp.wire)] && !covered[pn] {
			for id, s := range fp.streams {
				if o.missing[id] == nil {
					o.missing[id] = &ranges.Set{}
				}
				for _, rg := range s.Ranges() {
					o.missing[id].Add(rg.Start, rg.End)
				}
			}
		}
	}
	return o
}

// fecRun is a receiver and a sender of one FEC test over lossy, the
// receiver's clock standing still while packets flow.
type fecRun struct {
	pat  pattern
	col  *collector
	rcv  *mquic.Receiver
	clk  *testClock
	stop func()
	rec  *recorder
	snd  *mquic.Sender
	sent func() int
}

func startFECRun(t *testing.T, params mquic.Params, sc *manifest.SignerConfig, lossy *mcasttest.Lossy, group netip.AddrPort) *fecRun {
	t.Helper()
	r := &fecRun{pat: newPattern(), clk: newTestClock(), rec: &recorder{}, sent: lossy.Sent}
	r.col = newCollector(r.pat)
	var err error
	r.rcv, err = mquic.NewReceiver(mcasttest.Receiver(t, group), mquic.ReceiverConfig{Params: params, Handler: r.col})
	if err != nil {
		t.Fatal(err)
	}
	r.rcv.SetClock(r.clk.Now)
	r.stop = runReceiver(t, r.rcv)
	r.snd, err = runSender(t, lossy, mquic.SenderConfig{Params: params, Manifests: sc, OnPacket: r.rec.onPacket})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// finish closes the sender, waits for every datagram sent, and lets time
// pass: undecided blocks are given up.
func (r *fecRun) finish(t *testing.T) {
	t.Helper()
	if err := r.snd.Close(); err != nil {
		t.Fatal(err)
	}
	waitDatagrams(r.rcv, uint64(r.sent()), 30*time.Second)
	r.stop()
	r.clk.Advance(time.Second)
	r.rcv.Tick()
	r.rcv.Flush()
	for _, err := range r.col.errs {
		t.Error(err)
	}
}

// checkMissing compares what each stream misses with the bytes of the
// packets FEC could not rebuild.
func (r *fecRun) checkMissing(t *testing.T, ids []uint64, size uint64, want fecOutcome) {
	t.Helper()
	for _, id := range ids {
		w := want.missing[id]
		if w == nil {
			w = &ranges.Set{}
		}
		var got ranges.Set
		for _, rg := range r.col.streams[id].got.Missing(nil, 0, size) {
			got.Add(rg.Start, rg.End)
		}
		if got.String() != w.String() {
			t.Errorf("stream %d: missing %v, want the bytes of the packets FEC could not rebuild %v", id, got.String(), w.String())
		}
	}
}

// fecTransfer sends streams × size bytes through lossy to a receiver with a
// clock that stands still while packets flow (so that only packet counts
// decide, never a slow machine), then lets time pass, and checks the
// receiver against expectFEC.
func fecTransfer(t *testing.T, params mquic.Params, sc *manifest.SignerConfig, lossy *mcasttest.Lossy, group netip.AddrPort, streams, size int) (fecOutcome, mquic.ReceiverStats, mquic.SenderStats) {
	t.Helper()
	r := startFECRun(t, params, sc, lossy, group)
	ids := sendStreams(t, r.snd, r.pat, streams, size)
	r.finish(t)
	want := expectFEC(t, params, r.rec.packets(), lossy.Dropped())
	st, ss := r.rcv.Stats(), r.snd.Stats()
	r.checkMissing(t, ids, uint64(size), want)
	for _, id := range ids {
		l, w := r.col.streams[id], want.missing[id]
		// What is missing was reported as gaps (the tail excepted), exactly.
		for _, g := range l.gaps.Ranges() {
			if !w.Contains(g.Start, g.End) {
				t.Errorf("stream %d: gap %v FEC rebuilt", id, g)
			}
		}
	}
	f := st.FEC
	if f.Recovered != want.recovered || f.BlocksRecovered != want.recoveredBlocks || f.BlocksUnrecoverable != want.unrecoverableBlocks ||
		f.Unrecovered != want.unrecovered || f.RepairPackets+f.RepairSkipped != want.repairsArrived || f.BadRepair != 0 {
		t.Errorf("receiver FEC %+v, want recovered %d in %d blocks, %d blocks (%d packets) unrecoverable, %d repair packets",
			f, want.recovered, want.recoveredBlocks, want.unrecoverableBlocks, want.unrecovered, want.repairsArrived)
	}
	if ss.FEC.RepairPackets != uint64(want.repairPackets) || ss.FEC.Blocks != uint64(want.blocks) {
		t.Errorf("sender FEC %+v, %d repair packets and %d blocks on the wire", ss.FEC, want.repairPackets, want.blocks)
	}
	// Every datagram and every rebuilt packet was accepted (none dropped;
	// in an asymmetric session, the last manifests' packets are listed by
	// no manifest).
	if st.Datagrams != uint64(lossy.Sent()) || st.Packets+st.Auth.UnconfirmedManifests+uint64(st.Auth.Held)+f.RepairSkipped != st.Datagrams+f.Recovered || st.Auth.Expired != 0 {
		t.Errorf("%d datagrams sent, %d read; %d accepted, %d rebuilt", lossy.Sent(), st.Datagrams, st.Packets, f.Recovered)
	}
	t.Logf("%s; sender %d packets, %d blocks, %d repair packets (%.1f %%); receiver rebuilt %d packets in %d blocks, %d blocks (%d packets) unrecoverable, %d gaps",
		lossy, ss.Packets, ss.FEC.Blocks, ss.FEC.RepairPackets, 100*float64(ss.FEC.RepairPackets)/float64(ss.FEC.SourcePackets),
		f.Recovered, f.BlocksRecovered, f.BlocksUnrecoverable, f.Unrecovered, st.Gaps)
	return want, st, ss
}

// TestFECRandomLoss: 2 % random loss with 5 % FEC over loopback multicast.
// Every block that lost no more packets than repair packets arrived is
// rebuilt; the packets of the others are exactly the gaps.
func TestFECRandomLoss(t *testing.T) {
	group := mcasttest.Group()
	params := fecParams(t, group, 0.05, 0)
	params.PeakFlowRate = 400_000_000
	lossy := mcasttest.NewLossy(mcasttest.Sender(t, group), 0.02, 21)
	want, _, _ := fecTransfer(t, params, nil, lossy, group, 8, 1<<20)
	if want.recovered == 0 {
		t.Fatal("no packet needed rebuilding")
	}
}

// TestFECSkipsRepairNotNeeded: in a lossless transfer, repair packets of
// blocks that lack nothing are dropped unopened by their packet numbers
// (FEC.RepairSkipped), all but the first of each block, whose REPAIR frame
// tells the receiver of its block; every packet is still accounted for and
// every byte delivered (fecTransfer).
func TestFECSkipsRepairNotNeeded(t *testing.T) {
	// Blocks close at K packets however slow the machine (a block time of
	// a minute), as in a bulk transfer: the receiver's openers, which may
	// run up to a few reads ahead, learn from the first block where the
	// next ones' repair packets fall.
	group := mcasttest.Group()
	params := fecParamsBlockTime(t, group, 0.05, 0, time.Minute)
	params.PeakFlowRate = 400_000_000
	want, st, ss := fecTransfer(t, params, nil, mcasttest.NewLossy(mcasttest.Sender(t, group), 0, 0), group, 8, 1<<20)
	f := st.FEC
	if f.RepairSkipped == 0 || f.RepairSkipped > ss.FEC.RepairPackets-uint64(want.blocks) || f.RepairPackets < uint64(want.blocks) {
		t.Fatalf("%d blocks, %d repair packets sent: %d opened, %d skipped", want.blocks, ss.FEC.RepairPackets, f.RepairPackets, f.RepairSkipped)
	}
	// A skipped packet arrived: it is no loss.
	if st.LostPackets != 0 {
		t.Fatalf("%d packets lost, none dropped (%d repair packets skipped)", st.LostPackets, f.RepairSkipped)
	}
	t.Logf("%d blocks, %d repair packets sent: %d opened, %d skipped", want.blocks, ss.FEC.RepairPackets, f.RepairPackets, f.RepairSkipped)
}

// TestFECSkippedRepairTraced: a receiver that reads a lossless session in
// one read (its first, whose packets are opened in order) opens the first
// repair packet of each block, which tells it of the block and decides it,
// and drops the others unopened: exactly those, each traced as
// packet_dropped (repair_not_needed) and none as lost.
func TestFECSkippedRepairTraced(t *testing.T) {
	params := fecParams(t, mcasttest.Group(), 0.05, 0)
	pkts := capturedSession(t, params, newPattern(), 1500*1100)
	prot, err := params.Protector()
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64 // the repair packets past the first of their block
	for _, p := range pkts {
		if fp := decodeFECPacket(t, prot, len(params.SessionID), p); fp.repair != nil && fp.repair.Index > 0 {
			want = append(want, fp.pn)
		}
	}
	var rbuf traceBuffer
	rrec := startTrace(&rbuf, params.SessionID, true)
	rcv, stop := runPipelined(t, newFeedConn([][][]byte{pkts}), mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, ReadBatch: len(pkts), Tracer: rrec})
	waitPipelined(rcv, len(pkts))
	stop()
	rrec.Close()
	var skipped []uint64
	for _, e := range parseTrace(t, rbuf.Bytes(), "client", fmt.Sprintf("%x", params.SessionID)) {
		switch e.Name {
		case "recovery:packet_lost":
			t.Errorf("packet %d traced lost", e.pn(t))
		case "transport:packet_dropped":
			if e.Data.Details.Reason != "repair_not_needed" || e.Data.Trigger != "general" {
				t.Errorf("packet %d dropped: %s %s", e.pn(t), e.Data.Trigger, e.Data.Details.Reason)
			}
			skipped = append(skipped, e.pn(t))
		}
	}
	st := rcv.Stats()
	if len(want) == 0 || !slices.Equal(skipped, want) || st.FEC.RepairSkipped != uint64(len(want)) || st.LostPackets != 0 ||
		st.Packets+st.FEC.RepairSkipped != st.Datagrams {
		t.Fatalf("skipped %v (%d counted), want %v; %d lost, %d of %d datagrams accepted", skipped, st.FEC.RepairSkipped, want, st.LostPackets, st.Packets, st.Datagrams)
	}
}

// TestFECBursts: bursts of 8 lost packets (fewer than a full block's 10
// repair packets) every 400 packets are all rebuilt; then bursts of 20 are
// not, and become exactly the gaps.
func TestFECBursts(t *testing.T) {
	for _, burst := range []int{8, 20} {
		t.Run(fmt.Sprintf("burst%d", burst), func(t *testing.T) {
			group := mcasttest.Group()
			params := fecParams(t, group, 0.05, 0)
			params.PeakFlowRate = 400_000_000
			lossy := mcasttest.NewLossy(mcasttest.Sender(t, group), 0, 0)
			n := 0
			lossy.DropIf(func([]byte) bool {
				n++
				return n%400 >= 150 && n%400 < 150+burst
			})
			want, _, _ := fecTransfer(t, params, nil, lossy, group, 4, 1<<20)
			switch {
			case burst <= 10 && (want.unrecovered != 0 || want.recovered == 0):
				t.Fatalf("bursts of %d: %d rebuilt, %d not", burst, want.recovered, want.unrecovered)
			case burst > 10 && want.unrecovered == 0:
				t.Fatalf("bursts of %d all rebuilt?", burst)
			}
		})
	}
}

// TestFECAsymmetric: in an asymmetric session, repair packets are listed by
// manifests like any packet, and a rebuilt packet is accepted only once a
// signed manifest lists its digest: the datagram rebuilt is the one sent,
// byte for byte. Bursts of 8 lost packets, manifests among them, are all
// rebuilt.
func TestFECAsymmetric(t *testing.T) {
	group := mcasttest.Group()
	params, sc := asymParams(t, group)
	fp, _ := fec.NewParams(0.05, 0, 0)
	params.Extensions = append(params.Extensions, mquic.Extension{ID: fec.ExtensionID, Value: fp.Value()})
	params.PeakFlowRate = 400_000_000
	lossy := mcasttest.NewLossy(mcasttest.Sender(t, group), 0, 0)
	n := 0
	lossy.DropIf(func([]byte) bool {
		n++
		return n%400 >= 150 && n%400 < 158
	})
	want, st, _ := fecTransfer(t, params, sc, lossy, group, 4, 1<<20)
	if want.recovered == 0 || want.unrecovered != 0 || st.Auth.Expired != 0 {
		t.Fatalf("%d rebuilt, %d not, %d expired", want.recovered, want.unrecovered, st.Auth.Expired)
	}
	// Asymmetric sessions open every repair packet (spec, "Blocks at the
	// receiver").
	if st.FEC.RepairSkipped != 0 {
		t.Fatalf("%d repair packets skipped in an asymmetric session", st.FEC.RepairSkipped)
	}
	accounted(t, st)
}

// TestFECPathsAllocateNothing: with FEC, sending (repair packets included)
// and receiving (rebuilding lost packets included) allocate nothing per
// packet once buffers have grown.
func TestFECPathsAllocateNothing(t *testing.T) {
	params := fecParams(t, mcasttest.Group(), 0.05, 0)
	snd, err := runSender(t, &discardConn{}, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	for range 1000 { // warm up
		st.WriteChunk(chunk)
	}
	if a := testing.AllocsPerRun(4000, func() { st.WriteChunk(chunk) }); a != 0 {
		t.Errorf("sender: %v allocations per packet", a)
	}
	if snd.Stats().FEC.RepairPackets == 0 {
		t.Fatal("no repair packet sent")
	}

	pkts := capturedSession(t, params, newPattern(), 8000*1100)
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	next := func() {
		if i%97 != 5 { // lose some: each block rebuilds two or three
			r.HandlePacket(pkts[i], src)
		}
		i++
	}
	for range 3000 {
		next()
	}
	before := r.Stats().FEC.Recovered
	if a := testing.AllocsPerRun(4000, next); a != 0 {
		t.Errorf("receiver: %v allocations per packet", a)
	}
	if r.Stats().FEC.Recovered == before {
		t.Fatal("nothing rebuilt")
	}
}

// backlogConn serves prepared reads like feedConn, and moves the receiver's
// clock on by step at every read: a receiver that takes step to handle each
// read while its socket holds more.
type backlogConn struct {
	*feedConn
	clk  *testClock
	step time.Duration
}

func (c *backlogConn) ReadBatch(msgs []mcast.Message) (int, error) {
	n, err := c.feedConn.ReadBatch(msgs)
	if n > 0 {
		c.clk.Advance(c.step)
	}
	return n, err
}

// TestFECWaitCountsOnlyDrainedTime: a receiver far behind its socket reads
// full batches, each 40 ms after the last, so the repair packets of a block
// that lost a packet are read 400 ms after the hole showed, long past every
// wait on the read clock (ReorderDelay 20 ms, 2 × BlockTime + ReorderDelay
// = 120 ms). They were in the socket all along: the waits count only time
// in which the receiver had drained its socket, so the hole is rebuilt, not
// declared a gap.
func TestFECWaitCountsOnlyDrainedTime(t *testing.T) {
	params := fecParams(t, mcasttest.Group(), 0.05, 0)
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 600*1100)
	const lost = 40
	var kept [][]byte
	for i, p := range pkts {
		if i != lost {
			kept = append(kept, p)
		}
	}
	const readBatch = 16
	clk := newTestClock()
	conn := &backlogConn{feedConn: newFeedConn(batched(kept, readBatch)), clk: clk, step: 40 * time.Millisecond}
	col := newCollector(pat)
	rcv, err := mquic.NewReceiver(conn, mquic.ReceiverConfig{Params: params, Handler: col, ReadBatch: readBatch})
	if err != nil {
		t.Fatal(err)
	}
	rcv.SetClock(clk.Now)
	stop := runReceiver(t, rcv)
	waitDatagrams(rcv, uint64(len(kept)), 30*time.Second)
	stop()
	rcv.Flush()
	for _, err := range col.errs {
		t.Error(err)
	}
	st := rcv.Stats()
	if st.FEC.Recovered != 1 || st.Gaps != 0 {
		t.Fatalf("packet %d lost: %d rebuilt, %d gaps declared (FEC %+v)", lost, st.FEC.Recovered, st.Gaps, st.FEC)
	}
}

// TestFECRebuildsWithinOneLargeRead: a receiver far behind its socket reads
// a whole session in one batch, so that more than the decoder's ring of
// packets follows, in the same read, the repair packet that rebuilds a lost
// one. The rebuilt packet is processed all the same (it used to wait for
// the end of the read, by which time later packets had taken its place in
// the ring, and it was dropped: the hole became a gap that FEC had filled).
// And a block that lost more than it has repair packets counts exactly the
// packets it lost as unrecovered (it was given up at the end of the read,
// when later packets had taken the places of some it had received).
func TestFECRebuildsWithinOneLargeRead(t *testing.T) {
	params := fecParams(t, mcasttest.Group(), 0.05, 0)
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 1500*1100)
	// Blocks of 200 + 10: packet 40 in the first; 15 packets of the second.
	const lost, burst, burstLen = 40, 250, 15
	var kept [][]byte
	for i, p := range pkts {
		if i != lost && (i < burst || i >= burst+burstLen) {
			kept = append(kept, p)
		}
	}
	col := newCollector(pat)
	rcv, stop := runPipelined(t, newFeedConn([][][]byte{kept}), mquic.ReceiverConfig{Params: params, Handler: col, ReadBatch: len(kept)})
	waitPipelined(rcv, len(kept))
	stop()
	rcv.Flush()
	for _, err := range col.errs {
		t.Error(err)
	}
	st := rcv.Stats()
	if st.FEC.Recovered != 1 || st.Gaps != 1 || st.Packets+st.FEC.RepairSkipped != st.Datagrams+1 {
		t.Errorf("packet %d and %d after %d lost: %d rebuilt, %d of %d datagrams and rebuilt packets accepted (%d repair packets skipped), %d gaps (want 1: the burst)",
			lost, burstLen, burst, st.FEC.Recovered, st.Packets, st.Datagrams+st.FEC.Recovered, st.FEC.RepairSkipped, st.Gaps)
	}
	if f := st.FEC; f.BlocksRecovered != 1 || f.BlocksUnrecoverable != 1 || f.Unrecovered != burstLen {
		t.Errorf("FEC %+v: want 1 block rebuilt, 1 given up with %d packets unrecovered", f, burstLen)
	}
}

// TestFECOneDatagramSize: in a bulk transfer with FEC, full source packets
// and repair packets are datagrams of one size (MaxPacketSize), so that GSO
// and GRO keep them in whole trains, written with Write and WriteChunk.
// With FECUnpadded, nothing is padded: full source packets are shorter by
// what a repair packet adds to a symbol, and fewer bytes go on the wire.
func TestFECOneDatagramSize(t *testing.T) {
	params := fecParams(t, mcasttest.Group(), 0.05, 0)
	prot, _ := params.Protector()
	wire := map[bool]int{} // by unpadded
	for _, unpadded := range []bool{false, true} {
		for _, chunks := range []bool{false, true} {
			cc := &captureConn{}
			snd, err := runSender(t, cc, mquic.SenderConfig{Params: params, FECUnpadded: unpadded})
			if err != nil {
				t.Fatal(err)
			}
			if chunks {
				st, _ := snd.OpenStream()
				chunk := make([]byte, snd.MaxChunk())
				for range 1000 {
					if err := st.WriteChunk(chunk); err != nil {
						t.Fatal(err)
					}
				}
				st.Close()
			} else {
				sendStreams(t, snd, newPattern(), 1, 1<<20)
			}
			snd.Close()
			if c := snd.FECPaddingCost(); (c == 0) != unpadded {
				t.Errorf("unpadded %v: FECPaddingCost %v", unpadded, c)
			}
			// A full source packet: padded, MaxPacketSize; unpadded, at most
			// the largest payload sealed (a chunk leaves a few bytes of it).
			full, largest := mquic.DefaultMaxPacketSize, mquic.DefaultMaxPacketSize
			if unpadded {
				largest = len(params.SessionID) + 1 + 4 + snd.MaxPayload() + 16
			}
			sizes := map[int]int{}
			var repairSizes []int
			for _, pkt := range cc.Packets() {
				wire[unpadded] += len(pkt)
				p := decodeFECPacket(t, prot, len(params.SessionID), pkt)
				if p.repair != nil {
					repairSizes = append(repairSizes, len(pkt))
					continue
				}
				sizes[len(pkt)]++
				if sizes[len(pkt)] > sizes[full] {
					full = len(pkt)
				}
			}
			if len(repairSizes) == 0 {
				t.Fatal("no repair packet")
			}
			if full > largest || full < largest-64 { // the sender's slack for "full"
				t.Errorf("unpadded %v, chunks %v: full source packets of %d bytes, want %d at most", unpadded, chunks, full, largest)
			}
			for _, n := range repairSizes {
				if n > mquic.DefaultMaxPacketSize || (!unpadded && n != full) || (unpadded && n <= largest) {
					t.Fatalf("unpadded %v, chunks %v: a repair packet of %d bytes, full source packets of %d", unpadded, chunks, n, full)
				}
			}
			// The last packets (the stream's end, its FIN) may be short;
			// unpadded, a chunk's packet is as long as its STREAM frame
			// header (the offset's varint grows).
			odd := len(cc.Packets()) - len(repairSizes)
			for n, c := range sizes {
				if n == full || (unpadded && n <= largest && n >= largest-64) {
					odd -= c
				}
			}
			if odd > 2 {
				t.Errorf("unpadded %v, chunks %v: source packets by size %v", unpadded, chunks, sizes)
			}
		}
	}
	if wire[true] >= wire[false] {
		t.Errorf("%d bytes on the wire unpadded, %d padded", wire[true], wire[false])
	}
	t.Logf("%d bytes on the wire padded, %d unpadded", wire[false], wire[true])
}
